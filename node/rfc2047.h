/* rfc2047: encoded words (=?charset?B|Q?text?=) of header field values
 * decoded to UTF-8, for SEARCH header keys and the SORT base subject. */
#ifndef MAILNODE_RFC2047_H
#define MAILNODE_RFC2047_H

#include <stddef.h>

#include "buf.h"

/* Longest encoded word decoded. RFC 2047 allows 75 characters; senders
 * exceed that, so be lenient, but a word stays bounded. */
#define RFC2047_WORD_MAX	1024

/* Append value (len bytes, unfolded) to out with its encoded words
 * decoded: B and Q, in UTF-8, US-ASCII and ISO-8859-1. A word in another
 * charset, malformed, or decoding to invalid UTF-8 or a control character
 * is copied as it is. White space between two decoded words goes (RFC
 * 2047 6.2). Valid UTF-8 in gives valid UTF-8 out, at most twice as long.
 * -1 only when out cannot grow. */
int	 rfc2047_decode(const char *value, size_t len, struct buf *out);

#endif
