/* mime: a message parsed once (RFC 5322 + MIME, RFC 2045-2047) into what
 * IMAP FETCH needs: ENVELOPE, BODY, BODYSTRUCTURE and the byte ranges of
 * body sections, the latter kept as a compact text index per message. */
#ifndef MAILNODE_MIME_H
#define MAILNODE_MIME_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* A hostile message cannot make the parser recurse or allocate without
 * bound: deeper nesting is shown as an opaque part, more parts are not
 * split out (their bytes stay inside the enclosing part). */
#define MIME_MAX_DEPTH		32
#define MIME_MAX_PARTS		1000

struct mime_message;

/* Parse len bytes (the message as stored). The result does not point into
 * data. -1 only on allocation failure: malformed input parses best-effort. */
int	 mime_parse(const char *data, size_t len, struct mime_message **out);
void	 mime_free(struct mime_message *);

/* Append the IMAP ENVELOPE list (RFC 3501 7.4.2) of the message. */
int	 mime_envelope(const struct mime_message *, struct buf *out);
/* Append BODY (extended false) or BODYSTRUCTURE (extended true). */
int	 mime_bodystructure(const struct mime_message *, bool extended, struct buf *out);
/* Append the part offsets as compact text (stored with the message). */
int	 mime_index_encode(const struct mime_message *, struct buf *out);
/* The byte range of a section of the message an index describes: "" the
 * whole message, "HEADER", "TEXT", "1.2", "1.2.MIME", "1.2.HEADER",
 * "1.2.TEXT" (message/rfc822 parts nest; specifiers in any case). -1 when
 * the message has no such section or the index is damaged. */
int	 mime_index_section(const char *index, const char *section, size_t *off, size_t *len);

#endif
