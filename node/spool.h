/* spool: durable acceptance of messages. A message body is written once to
 * a file under STATE/spool and its envelope to MariaDB; the SMTP session
 * replies 250 only when both are durable. A commit thread groups what the
 * sessions hand it: one fdatasync per file, one fsync of the directory and
 * one MariaDB transaction for the whole group, so many messages share the
 * cost of a disk flush. */
#ifndef MAILNODE_SPOOL_H
#define MAILNODE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct spool_msg;

struct spool_rcpt {
	char		 address[512];	/* as it will be delivered (local@domain) */
	uint64_t	 mailbox_id;	/* local delivery target; 0 for remote */
	unsigned	 notify;	/* DSN NOTIFY bits */
	char		 orcpt[264];
};

struct spool_envelope {
	char			 sender[512];	/* "" for the null reverse-path */
	uint64_t		 tenant_id;	/* 0 when not attributed */
	char			 helo[256];
	char			 peer[80];
	char			 envid[101];
	bool			 ret_hdrs;
	bool			 smtputf8;
	struct spool_rcpt	*rcpts;
	size_t			 nrcpts;
};

/* Done callback: runs on the loop that called spool_msg_commit. On success
 * id is the queue id to put in the 250 reply; on failure nothing was kept
 * and the session answers 451 (err says why, for the log). */
typedef void (*spool_done_fn)(void *arg, int ok, const char *id, const char *err);

/* Start the commit thread; the spool directory is created if needed. */
int	 spool_init(const char *spool_dir, const struct db_conf *, char *err, size_t errlen);
void	 spool_fini(void);
/* This node's name in the queue (queue_messages.spool, and the leases of
 * remote delivery): its host name and a hash of its spool directory, made
 * of [A-Za-z0-9._:-] only. Set by spool_init. */
const char *spool_node(void);
/* The SQL condition "this message is in our spool" for queue_messages
 * under the alias m (rows from before the column are everyone's). */
const char *spool_mine_sql(void);

/* A message being received: a private file opened now. */
struct spool_msg *spool_msg_new(char *err, size_t errlen);
/* Append body bytes (writes go to the page cache; the flush is the
 * commit thread's). -1 on an I/O error: abort the message. */
int	 spool_msg_write(struct spool_msg *, const void *, size_t);
uint64_t spool_msg_size(const struct spool_msg *);
/* Hand the message over with its envelope (copied); done() follows. The
 * message belongs to the spool from here on. */
void	 spool_msg_commit(struct spool_msg *, const struct spool_envelope *, spool_done_fn, void *arg);
/* Drop a message that will not be accepted (its file is removed). */
void	 spool_msg_abort(struct spool_msg *);

/* Counts for status and SNMP: messages queued and their bytes. Blocking. */
int	 spool_stats(MYSQL *, uint64_t *messages, uint64_t *bytes, uint64_t *oldest_age,
	    char *err, size_t errlen);

#endif
