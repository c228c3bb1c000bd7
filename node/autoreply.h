/* autoreply: a mailbox's automatic reply (Mailbox spec.autoreply), sent
 * after a local delivery by the rules of RFC 3834: never to the null
 * sender or to list and daemon addresses, never to mail that is itself
 * automatic or from a list, only to mail addressed to the mailbox in To or
 * Cc, and at most once per sender in AUTOREPLY_INTERVAL_DAYS, across nodes.
 * Blocking: for the queue runner's thread. */
#ifndef MAILNODE_AUTOREPLY_H
#define MAILNODE_AUTOREPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <mysql.h>

#include "buf.h"

#define AUTOREPLY_INTERVAL_DAYS	7
#define AUTOREPLY_HEADER_MAX	(64 * 1024)	/* of the original, read and parsed */
#define AUTOREPLY_MSGID_MAX	250

/* What the original message's header says about replying to it. */
struct autoreply_original {
	const char	*suppress;	/* why no reply is due (static text), or NULL */
	bool		 addressed;	/* one of the mailbox's addresses is in To or Cc */
	char		 message_id[AUTOREPLY_MSGID_MAX + 3];	/* "<...>" or "" */
	struct buf	 references;	/* ids for the reply's References, space separated */
};

/* Read the header block of msg (at most AUTOREPLY_HEADER_MAX bytes of it
 * count). addrs are the mailbox's addresses, lower case. -1 only when
 * memory runs out. */
int	 autoreply_inspect(const char *msg, size_t len, const char *const *addrs, size_t naddrs,
	    struct autoreply_original *);
void	 autoreply_original_free(struct autoreply_original *);
/* Whether an envelope sender may get an automatic reply at all. */
bool	 autoreply_sender_ok(const char *sender);
/* An RFC 3339 date-time (as the schema checks it) as an instant. */
int	 autoreply_time(const char *s, time_t *out);

struct autoreply_reply {
	const char	*from;		/* the mailbox */
	const char	*to;		/* the original's envelope sender */
	const char	*subject;	/* UTF-8 */
	const char	*body;		/* UTF-8, LF or CRLF lines */
	const char	*host;		/* for the Message-ID */
	const struct autoreply_original *orig;
	time_t		 now;
};

/* The reply as a message (CRLF lines). -1 when memory runs out. */
int	 autoreply_compose(struct buf *out, const struct autoreply_reply *);

/* After a successful local delivery of the message in dir/file to a
 * mailbox: send its autoreply if it is on and the rules allow. Never fails
 * the delivery; problems are logged. */
void	 autoreply_after_delivery(MYSQL *, uint64_t mailbox_id, const char *sender,
	    const char *dir, const char *file);

#endif
