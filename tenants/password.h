/* password: mailbox password hashes in Dovecot's "{SCHEME}hash" form.
 *
 * Hosting panels migrate users from Dovecot-style systems, so a stored hash
 * carries a scheme prefix and we verify the three schemes found there:
 *   {SHA512-CRYPT}$6$[rounds=N$]salt$hash         (libxcrypt)
 *   {BLF-CRYPT}$2y$NN$<22 salt><31 hash>          ($2a$/$2b$/$2y$, libxcrypt)
 *   {ARGON2ID}$argon2id$v=19$m=M,t=T,p=P$salt$hash (libargon2)
 * Scheme names match case-insensitively, as in Dovecot. New passwords are
 * always hashed as {SHA512-CRYPT} with rounds=50000 and a random salt.
 *
 * Limits (each documented at its constant in password.c):
 * - SHA512-CRYPT and BLF-CRYPT take at most PASSWORD_PLAIN_MAX bytes of
 *   password (libxcrypt refuses longer ones); a longer password cannot be
 *   hashed and never matches such a hash. ARGON2ID has no such limit.
 * - BLF-CRYPT, by design of bcrypt, only looks at the first 72 bytes.
 * - Stored hashes whose cost would make one login take more than about a
 *   second (or, for ARGON2ID, more than 256 MiB) are rejected as malformed.
 *
 * All functions are safe to call from several threads at once. Neither
 * passwords nor hashes ever appear in error messages.
 */
#ifndef MAILNODE_PASSWORD_H
#define MAILNODE_PASSWORD_H

#include <stddef.h>

enum password_scheme { PASSWORD_SHA512_CRYPT, PASSWORD_BLF_CRYPT, PASSWORD_ARGON2ID };

/* Room for any stored hash, prefix and NUL included; longer ones are malformed. */
#define PASSWORD_HASH_MAX	512
/* Longest password the crypt(3) schemes accept (libxcrypt's
 * CRYPT_MAX_PASSPHRASE_SIZE - 1). */
#define PASSWORD_PLAIN_MAX	511

/* Hash a plain password as {SHA512-CRYPT}; out gets the prefixed hash.
 * 0 on success; -1 with a reason in err (password too long, out too small,
 * no randomness) and out set to "". */
int	 password_hash(const char *plain, char *out, size_t outlen, char *err, size_t errlen);
/* Check that a stored hash is well formed for its scheme (used to validate
 * passwordHash in provisioning documents). 0 if fine (and *scheme set when
 * scheme is not NULL), -1 with a reason. */
int	 password_hash_check(const char *stored, enum password_scheme *scheme, char *err, size_t errlen);
/* Does plain match stored? 1 yes, 0 no, -1 malformed stored hash (or NULL
 * arguments, or out of memory; errno set). Runs in time independent of
 * where a mismatch is (compare with a constant-time compare). */
int	 password_verify(const char *plain, const char *stored);

#endif
