/* scram: SCRAM-SHA-256 (RFC 5802, RFC 7677), the SASL mechanism that proves
 * a password without sending it: the stored keys a password yields, and the
 * server side of the exchange. SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH
 * reach it through sasl_scram.h (base64 and the steps). Stored form (as
 * Dovecot's):
 *   {SCRAM-SHA-256}<iterations>,<salt b64>,<StoredKey b64>,<ServerKey b64>
 * Passwords are used as given (no SASLprep); ASCII passwords are unaffected. */
#ifndef MAILNODE_SCRAM_H
#define MAILNODE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SCRAM_STORED_MAX	160	/* room for the stored form and its NUL */
#define SCRAM_ITERATIONS	4096
#define SCRAM_KEY_LEN		32

struct scram_keys {
	uint32_t	iterations;
	uint8_t		salt[64];
	size_t		salt_len;
	uint8_t		stored_key[SCRAM_KEY_LEN];
	uint8_t		server_key[SCRAM_KEY_LEN];
};

/* The stored form of a password with a fresh random salt. */
int	 scram_keys_make(const char *password, char *out, size_t outlen, char *err, size_t errlen);
/* Parse the stored form; -1 if malformed. */
int	 scram_keys_parse(const char *stored, struct scram_keys *);

struct scram_server;

struct scram_server *scram_server_new(void);
void	 scram_server_free(struct scram_server *);
/* The client's first message (decoded): the user it names goes in user.
 * -1 with a reason on a malformed message (or channel binding asked for,
 * which we do not offer). */
int	 scram_server_client_first(struct scram_server *, const char *msg, size_t len,
	    char *user, size_t userlen, char *err, size_t errlen);
/* The keys of that user, or NULL for an unknown one: the exchange then goes
 * on with keys no password matches, so the answer does not tell. Writes the
 * server's first message (not encoded) into out. */
int	 scram_server_first(struct scram_server *, const struct scram_keys *, struct buf *out);
/* The same with a given server nonce: for tests against published
 * conversations only. */
int	 scram_server_first_nonce(struct scram_server *, const struct scram_keys *, const char *nonce,
	    struct buf *out);
/* The client's final message: 1 and the server's final message in out when
 * the proof is right, 0 when it is not, -1 when the message is malformed. */
int	 scram_server_client_final(struct scram_server *, const char *msg, size_t len,
	    struct buf *out, char *err, size_t errlen);

#endif
