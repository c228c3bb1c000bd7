/* lookup: what the mail path asks the tenant directory. Is a recipient
 * hosted here and where does its mail go (mailbox, alias expansion,
 * catch-all, domain aliases)? May this sender reach it? Does a login's
 * password match? Blocking: run on a database worker. */
#ifndef MAILNODE_LOOKUP_H
#define MAILNODE_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <mysql.h>

enum rcpt_verdict {
	RCPT_OK,
	RCPT_NOT_HOSTED,	/* the domain is not ours: relaying */
	RCPT_UNKNOWN,		/* ours, but no such mailbox or alias */
	RCPT_DISABLED,		/* tenant or mailbox suspended */
	RCPT_PAUSED,		/* incoming suspended for now */
	RCPT_FULL,		/* over quota (the mailbox's, or the tenant's storage) */
	RCPT_BLOCKED_SENDER,	/* the domain refuses this sender */
	RCPT_TOO_BIG,		/* declared size over the tenant's messageSize */
	RCPT_LOOP,		/* aliases lead back to themselves or nest too deep */
	RCPT_TEMPFAIL		/* database trouble */
};

struct rcpt_target {
	char		address[512];
	uint64_t	mailbox_id;	/* 0: remote (forwarding through an alias) */
};

struct rcpt_result {
	enum rcpt_verdict	 verdict;
	uint64_t		 tenant_id;
	char			 tenant[64];
	uint64_t		 size_limit;	/* tenant messageSize; 0: none */
	bool			 whole_tenant;	/* a refusal for the tenant, not the mailbox */
	struct rcpt_target	*targets;	/* caller frees */
	size_t			 ntargets;
	char			 why[256];	/* for the log */
};

/* local and domain as parsed (domain lower case); sender "" for <>.
 * Aliases and forwards to local addresses are followed to the mailboxes
 * (each address once, a few levels deep); when any local mailbox reached
 * is suspended, paused or full (its quota or its tenant's storage, with
 * declared_size counted in) the recipient is refused for that reason. */
void	 lookup_recipient(MYSQL *, const char *local, const char *domain, const char *sender,
	    uint64_t declared_size, struct rcpt_result *);

struct login_result {
	bool		 ok;
	bool		 disabled;	/* right password, but login suspended */
	bool		 tempfail;
	uint64_t	 mailbox_id, tenant_id;
	char		 tenant[64];	/* also on a wrong password, when the mailbox exists */
	char		 address[256];
};
void	 lookup_login(MYSQL *, const char *address, const char *password, struct login_result *);
/* For SCRAM, where the password is proved, not sent: the stored SCRAM keys
 * of address into stored ("" when it has none: a hash migrated from
 * elsewhere), and r as lookup_login would fill it for the right password
 * (r->ok false when there is no such mailbox or no keys). */
void	 lookup_scram(MYSQL *, const char *address, char *stored, size_t storedlen, struct login_result *);

/* What the login's tenant allows its senders. */
struct send_policy {
	uint64_t	 size_limit;		/* limits.messageSize; 0: none */
	uint32_t	 rate_count, rate_per;	/* limits.sendRate: count per rate_per s; 0: none */
};

/* May the mailbox login send as sender (its own address, or an alias that
 * delivers to it)? Also refuses when the tenant's or mailbox's outgoing is
 * suspended. 1 yes (p filled), 0 no (why says which), -1 database trouble. */
int	 lookup_may_send(MYSQL *, const char *login, const char *sender, struct send_policy *p,
	    char *why, size_t whylen);

/* Size text of the canonical spec ("25MiB", "1048576") in bytes. */
int	 lookup_size(const char *, uint64_t *);

#endif
