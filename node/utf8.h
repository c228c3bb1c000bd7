/* utf8: the one check of a well-formed UTF-8 sequence (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), for the modules that
 * validate or split UTF-8 text. */
#ifndef MAILNODE_UTF8_H
#define MAILNODE_UTF8_H

#include <stddef.h>

/* Length of the well-formed sequence at p (left bytes there, at least 1):
 * 1 for ASCII, 2 to 4, or 0 when there is none. */
size_t	 utf8_seq(const unsigned char *p, size_t left);

#endif
