/* imap_search: SEARCH keys and SORT criteria evaluated against messages,
 * and the header reading both need. Runs on database workers; the message
 * text is read from its body file only when a key needs it (header keys
 * and SORT only its header), encoded words decoded (RFC 2047). */
#ifndef MAILNODE_IMAP_SEARCH_H
#define MAILNODE_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "imap_parse.h"

struct imap_search_msg {
	uint32_t	 seq, uid;
	uint8_t		 flags;		/* IMAP_FLAG_* without \Recent */
	bool		 recent;
	const char	*keywords;	/* NULL or space separated */
	uint64_t	 size, modseq;
	int64_t		 internal_date;
	const char	*path;		/* body file */
	const char	*index;		/* NULL or part offsets: header keys read only the header */
	/* Filled on first need: the header, or the whole message. */
	struct buf	 text;
	bool		 loaded, load_failed, header_only;
};

/* Does m match the key tree? maxseq and maxuid stand for "*". */
bool	 imap_search_match(const struct imap_search *, struct imap_search_msg *m,
	    uint32_t maxseq, uint32_t maxuid);
/* The largest modseq a MODSEQ key of the tree names (0: none), so the
 * reply can carry (MODSEQ n). */
bool	 imap_search_has_modseq(const struct imap_search *);
void	 imap_search_msg_free(struct imap_search_msg *);

/* Sort msgs (n) by the criteria; ties keep sequence order. Reads headers
 * as needed. -1 on allocation failure. */
int	 imap_sort_msgs(struct imap_search_msg *msgs, size_t n, const enum imap_sort_key *keys,
	    const bool *reverse, size_t nkeys);

/* Header block of a message: the bytes up to and including the blank line. */
size_t	 imap_header_len(const char *msg, size_t len);
/* The unfolded values of every field named name (case-insensitive),
 * joined with ", " into out (NUL-terminated). 0 found, -1 not there. */
int	 imap_header_get(const char *hdr, size_t len, const char *name, struct buf *out);
/* The header lines whose names are (or with not, are not) in fields,
 * with the final blank line (RFC 3501 HEADER.FIELDS). */
int	 imap_header_filter(const char *hdr, size_t len, char *const *fields, size_t nfields, bool not,
	    struct buf *out);
/* An RFC 5322 date; the instant (UTC) and the day in its own zone. */
int	 imap_rfc5322_date(const char *s, time_t *instant, time_t *day);

#endif
