/* sasl_scram: the SASL framing of a SCRAM-SHA-256 exchange (node/scram.h),
 * shared by SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH: base64 both ways,
 * dummy keys for a user without any, and who a good proof logs in. Each
 * protocol keeps its own replies, its database job and its login path. */
#ifndef MAILNODE_SASL_SCRAM_H
#define MAILNODE_SASL_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "lookup.h"

/* Over any client message we accept (the base64 of 600 or 800 bytes). */
#define SASL_SCRAM_LINE_MAX	1200

struct sasl_scram;

/* What the protocol does after a step. */
enum sasl_scram_next {
	SASL_SCRAM_MALFORMED,	/* end the exchange: the client broke the syntax */
	SASL_SCRAM_CANCELLED,	/* the client said "*" */
	SASL_SCRAM_LOOKUP,	/* look up sasl_scram_user's keys, then sasl_scram_keys */
	SASL_SCRAM_CHALLENGE,	/* send out (base64) as a challenge and wait */
	SASL_SCRAM_DONE		/* decide the login with sasl_scram_result */
};

struct sasl_scram *sasl_scram_new(void);
void	 sasl_scram_free(struct sasl_scram *);
/* The client's next response (base64, as sent): its first message, its
 * proof, then the empty answer to our signature. A wrong proof is DONE
 * at once (nobody proved), so the caller's failure path and delay apply. */
enum sasl_scram_next sasl_scram_step(struct sasl_scram *, const char *b64, size_t len, struct buf *out);
/* The user the first message names. */
const char *sasl_scram_user(const struct sasl_scram *);
/* The lookup's answer (lookup_scram: the stored keys, "" for none, and the
 * account): the first challenge into out, 0; -1 on trouble. A user without
 * keys goes on with keys no password matches. */
int	 sasl_scram_keys(struct sasl_scram *, const char *stored, const struct login_result *, struct buf *out);
/* Who the exchange logs in: the account once proved, else nobody (ok and
 * disabled false). */
void	 sasl_scram_result(const struct sasl_scram *, struct login_result *);

#endif
