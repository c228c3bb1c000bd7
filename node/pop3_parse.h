/* pop3_parse: the pure pieces of POP3 (RFC 1939, 2449, 5034): reading a
 * command line, and turning a stored message into a multi-line response
 * (CRLF line ends, dot-stuffing, TOP's line limit) a piece at a time. */
#ifndef MAILNODE_POP3_PARSE_H
#define MAILNODE_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 2449 allows 255 octets for a command and 512 for a reply; a SASL
 * response line (RFC 5034) may be longer. */
#define POP3_LINE_MAX		2048
#define POP3_ARG_MAX		255	/* USER, PASS and the AUTH mechanism */

enum pop3_verb {
	POP3_USER, POP3_PASS, POP3_APOP, POP3_AUTH, POP3_STLS, POP3_CAPA, POP3_QUIT,
	POP3_STAT, POP3_LIST, POP3_RETR, POP3_DELE, POP3_NOOP, POP3_RSET, POP3_TOP, POP3_UIDL,
};

struct pop3_cmd {
	enum pop3_verb	 verb;
	const char	*name;		/* the verb's canonical name */
	/* USER, PASS: the argument (PASS keeps spaces); AUTH: the mechanism;
	 * points into the parsed line, arglen bytes. */
	const char	*arg;
	size_t		 arglen;
	const char	*arg2;		/* AUTH's initial response, or NULL */
	size_t		 arg2len;
	bool		 has_msg;	/* LIST, UIDL: a message number was given */
	uint32_t	 msg;		/* message number (1 and up) */
	uint64_t	 lines;		/* TOP's line count */
};

/* Parse one command line (without its CRLF). 0, or -1 with a reason fit
 * for "-ERR <why>". */
int	 pop3_parse(const char *line, size_t len, struct pop3_cmd *, const char **why);

/* A message going out as a multi-line response. */
struct pop3_stuffer {
	bool		 line_start;	/* the next byte begins a line */
	bool		 cr;		/* the last byte sent was a CR */
	bool		 in_header;
	size_t		 line_len;	/* bytes of the current line, CR not counted */
	uint64_t	 body_lines;	/* TOP: body lines still to send */
	bool		 limited;	/* TOP (else RETR: everything) */
	bool		 done;		/* TOP's limit is reached: send no more */
};

/* RETR: top false; TOP: the header, the empty line and body_lines lines. */
void	 pop3_stuff_init(struct pop3_stuffer *, bool top, uint64_t body_lines);
/* Append n bytes of the stored message, transformed, to out. Returns the
 * bytes taken (fewer than n once done), or -1 on allocation failure. */
ssize_t	 pop3_stuff(struct pop3_stuffer *, const char *in, size_t n, struct buf *out);
/* Close the response: end an open last line, then ".". */
int	 pop3_stuff_end(struct pop3_stuffer *, struct buf *out);

#endif
