/* mutf7: IMAP's modified UTF-7 for mailbox names (RFC 3501 5.1.3), to and
 * from the UTF-8 the store keeps. */
#ifndef MAILNODE_MUTF7_H
#define MAILNODE_MUTF7_H

#include <stddef.h>

#include "buf.h"

/* Append the modified UTF-7 form of a UTF-8 string; -1 on invalid UTF-8
 * (or allocation failure). */
int	 mutf7_encode(const char *utf8, struct buf *out);
/* Append the UTF-8 form of len bytes of modified UTF-7; -1 when they are
 * not valid modified UTF-7 (bad base64, unpaired surrogates, printable
 * ASCII encoded, a missing '-', ...). */
int	 mutf7_decode(const char *s, size_t len, struct buf *out);

#endif
