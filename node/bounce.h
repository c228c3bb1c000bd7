/* bounce: delivery status notifications (RFC 3464) for recipients that
 * failed or are delayed, queued to the message's sender through the spool
 * like any other message (null reverse-path, so a bounce never bounces). Blocking: for the
 * delivery threads (local runner, remote workers). */
#ifndef MAILNODE_BOUNCE_H
#define MAILNODE_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <mysql.h>

/* The report's Action (RFC 3464 2.3.3), which also sets its Subject. */
enum bounce_action { BOUNCE_FAILED = 0, BOUNCE_DELAYED, BOUNCE_DELIVERED, BOUNCE_RELAYED };

struct bounce_rcpt {
	const char	*address;
	const char	*orcpt;		/* "rfc822;..." or "" */
	const char	*status;	/* enhanced code, "5.1.1" */
	const char	*diagnostic;	/* "smtp; 550 5.1.1 no such user", or our words */
};

struct bounce_info {
	const char		*qid;		/* the failed message */
	const char		*sender;	/* who is told; "" (null path): nobody */
	const char		*envid;
	bool			 ret_hdrs;	/* return headers only */
	const char		*spool_msg_dir;
	const struct bounce_rcpt *rcpts;
	size_t			 nrcpts;
	enum bounce_action	 action;
	time_t			 retry_until;	/* BOUNCE_DELAYED: Will-Retry-Until; 0: none */
};

/* 1 queued, 0 nothing to send (null sender, sender unknown here and not
 * remote), -1 failed (err says why; the caller keeps the recipients to
 * try again). */
int	 bounce_queue(MYSQL *, const struct bounce_info *, char *err, size_t errlen);
/* Queue a composed message (text, CRLF lines) to one address with the
 * null reverse-path: into its mailboxes when the address is hosted here
 * (aliases expanded), else out. Returns as bounce_queue. Autoreplies use
 * it too. */
int	 bounce_send(MYSQL *, const char *to, const char *text, size_t textlen,
	    char *err, size_t errlen);

#endif
