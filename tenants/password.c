/* password: hashing and verification of mailbox passwords, in Dovecot's
 * "{SCHEME}hash" form so that users migrated from Dovecot-style systems keep
 * their passwords.
 *
 * All the cryptography is libxcrypt's crypt_rn/crypt_gensalt_rn
 * (SHA512-CRYPT, BLF-CRYPT) and libargon2's argon2id_verify (ARGON2ID);
 * this file only parses, bounds and compares.
 *
 * Conventions not spelled out in password.h:
 * - password_hash_check is strict: it accepts exactly the strings that the
 *   libraries could have produced, so that a hash that passes can match
 *   some password. Non-canonical base64 tails, salts that crypt would
 *   truncate, rounds that libxcrypt refuses, $2x$ (the compatibility mode
 *   for an old crypt_blowfish sign-extension bug) and argon2 parameter
 *   lists other than m,t,p are all rejected.
 * - password_verify checks the stored hash with the same rules first, so
 *   -1 from it means exactly what password_hash_check would have reported.
 * - struct crypt_data (32 KiB) lives on the heap, not the stack, so that
 *   service threads with small stacks can verify; it holds the password's
 *   derived state and is wiped before it is freed.
 * - Reasons never quote the stored hash: only its scheme name, and only
 *   when that is short and plain.
 */
#include "password.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Cost of new hashes: 5000 rounds of SHA512-CRYPT (a few ms), the default of
 * libxcrypt and of Dovecot, whose hashes panels migrate here. Every IMAP,
 * POP3 and SMTP login pays it, and so does every idempotent re-apply of a
 * Mailbox that carries a plain password (the stored hash is verified to
 * tell "unchanged"); ten times more would make re-applying 10,000 mailboxes
 * take minutes. Users who need more get a stronger scheme (ARGON2ID through
 * passwordHash), not more rounds.
 */
#define SHA512_ROUNDS_NEW	5000UL

/*
 * Bounds on stored hashes. The upper ones keep one login to about a second
 * of one core (and, for argon2, a bounded allocation), since a provisioning
 * document could otherwise make every login attempt on a mailbox a CPU or
 * memory bomb. They stay above what migration sources produce: passlib's
 * sha512_crypt default is 656000 rounds, PHP's bcrypt default cost 10 (12 in
 * newer frameworks), and Dovecot's ARGON2ID (libsodium's INTERACTIVE
 * preset) m=65536,t=2,p=1.
 */
#define SHA512_ROUNDS_MIN	1000UL		/* libxcrypt refuses fewer */
#define SHA512_ROUNDS_MAX	1000000UL	/* ~0.5 s */
#define SHA512_SALT_MAX		16		/* crypt silently cuts longer salts */
#define SHA512_HASH_LEN		86		/* 64 bytes in crypt base64 */
#define BLF_COST_MIN		4		/* libxcrypt refuses less */
#define BLF_COST_MAX		14		/* 2^14 rounds, ~0.9 s */
#define BLF_SALT_LEN		22		/* 16 bytes */
#define BLF_HASH_LEN		31		/* 23 bytes */
#define A2_M_MAX		262144UL	/* KiB: 256 MiB, libsodium's MODERATE */
#define A2_T_MAX		10UL
#define A2_P_MAX		16UL		/* each lane is a thread in libargon2 */
#define A2_SALT_MIN		8L		/* ARGON2_MIN_SALT_LENGTH */
#define A2_HASH_MIN		16L		/* 128-bit tag; shorter ones invite collisions */
#define SCHEME_NAME_MAX		32		/* longest name we quote in a reason */

/* The base64 alphabets of the three schemes; they differ in order. */
static const char crypt_b64[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char bcrypt_b64[] =
    "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char std_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const struct {
	const char		*name;
	enum password_scheme	 scheme;
} schemes[] = {
	{ "SHA512-CRYPT",	PASSWORD_SHA512_CRYPT },
	{ "BLF-CRYPT",		PASSWORD_BLF_CRYPT },
	{ "ARGON2ID",		PASSWORD_ARGON2ID },
};

static const char scheme_prefix[] = "{SHA512-CRYPT}";

__attribute__((format(printf, 3, 4)))
static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
}

/* Position of c in alphabet, -1 if absent (NUL is never a member). */
static int
b64_index(const char *alphabet, char c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(alphabet, c)) == NULL)
		return -1;
	return (int)(p - alphabet);
}

/*
 * Parse a decimal number at *pp the way a canonical encoder writes it: at
 * least one digit, no leading zero, at most 4294967295. Advances *pp.
 */
static int
parse_num(const char **pp, unsigned long *out)
{
	const char	*p = *pp;
	unsigned long	 v = 0;

	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		/* Checked before multiplying so it holds with a 32-bit long too. */
		if (v > (0xffffffffUL - (unsigned long)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	*pp = p;
	*out = v;
	return 0;
}

/*
 * Check n characters of unpadded standard base64 as libargon2 decodes it
 * (the unused low bits of the last character must be zero). Returns the
 * decoded length, or -1.
 */
static long
argon2_b64_len(const char *s, size_t n)
{
	int	 last;

	if (n % 4 == 1)
		return -1;
	if (n % 4 != 0) {
		last = b64_index(std_b64, s[n - 1]);
		if (last < 0 || (last & (n % 4 == 2 ? 0x0f : 0x03)) != 0)
			return -1;
	}
	return (long)(n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1));
}

/* SHA512-CRYPT: $6$[rounds=N$]salt$hash. Returns NULL or a reason. */
static const char *
check_sha512(const char *s)
{
	const char	*p = s;
	unsigned long	 rounds;
	size_t		 n;

	if (strncmp(p, "$6$", 3) != 0)
		return "SHA512-CRYPT hash does not start with $6$";
	p += 3;
	if (strncmp(p, "rounds=", 7) == 0) {
		p += 7;
		if (parse_num(&p, &rounds) != 0 || *p != '$')
			return "SHA512-CRYPT rounds= is not a plain decimal number";
		if (rounds < SHA512_ROUNDS_MIN)
			return "SHA512-CRYPT rounds below 1000";
		if (rounds > SHA512_ROUNDS_MAX)
			return "SHA512-CRYPT rounds above 1000000 (too slow to verify)";
		p++;
	}
	n = strspn(p, crypt_b64);
	if (p[n] == '\0')
		return "SHA512-CRYPT hash is truncated";
	if (p[n] != '$')
		return "SHA512-CRYPT salt has a character outside [./0-9A-Za-z]";
	if (n == 0)
		return "SHA512-CRYPT salt is empty";
	if (n > SHA512_SALT_MAX)
		return "SHA512-CRYPT salt is longer than 16 characters";
	p += n + 1;
	n = strspn(p, crypt_b64);
	if (p[n] != '\0')
		return "SHA512-CRYPT hash has a character outside [./0-9A-Za-z]";
	if (n < SHA512_HASH_LEN)
		return "SHA512-CRYPT hash is truncated";
	if (n > SHA512_HASH_LEN)
		return "SHA512-CRYPT hash is longer than 86 characters";
	/* The last character carries the last 2 bits of the digest. */
	if (b64_index(crypt_b64, p[n - 1]) > 3)
		return "SHA512-CRYPT hash is not canonical (bad last character)";
	return NULL;
}

/* BLF-CRYPT: $2a$, $2b$ or $2y$, two-digit cost, $, 22 salt + 31 hash. */
static const char *
check_blf(const char *s)
{
	const char	*p;
	size_t		 len, n;
	int		 cost;

	len = strlen(s);
	if (len < 3 || s[0] != '$' || s[1] != '2')
		return "BLF-CRYPT hash does not start with $2";
	if (s[2] == 'x')
		return "BLF-CRYPT $2x$ (crypt_blowfish bug compatibility) is not accepted";
	if (s[2] != 'a' && s[2] != 'b' && s[2] != 'y')
		return "BLF-CRYPT hash is not $2a$, $2b$ or $2y$";
	if (len < 7)
		return "BLF-CRYPT hash is truncated";
	if (s[3] != '$' || s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9' ||
	    s[6] != '$')
		return "BLF-CRYPT cost is not two digits between $ signs";
	cost = (s[4] - '0') * 10 + (s[5] - '0');
	if (cost < BLF_COST_MIN)
		return "BLF-CRYPT cost below 04";
	if (cost > BLF_COST_MAX)
		return "BLF-CRYPT cost above 14 (too slow to verify)";
	p = s + 7;
	n = strspn(p, bcrypt_b64);
	if (p[n] != '\0')
		return "BLF-CRYPT hash has a character outside [./A-Za-z0-9]";
	if (n < BLF_SALT_LEN + BLF_HASH_LEN)
		return "BLF-CRYPT hash is truncated";
	if (n > BLF_SALT_LEN + BLF_HASH_LEN)
		return "BLF-CRYPT hash is longer than 53 characters after the cost";
	/* Unused low bits: 4 in the salt's last character, 2 in the hash's. */
	if ((b64_index(bcrypt_b64, p[BLF_SALT_LEN - 1]) & 0x0f) != 0)
		return "BLF-CRYPT salt is not canonical (bad 22nd character)";
	if ((b64_index(bcrypt_b64, p[n - 1]) & 0x03) != 0)
		return "BLF-CRYPT hash is not canonical (bad last character)";
	return NULL;
}

/* ARGON2ID: $argon2id$v=19$m=M,t=T,p=P$salt$hash, PHC string format. */
static const char *
check_argon2(const char *s)
{
	const char	*p = s;
	unsigned long	 v, m, t, par;
	long		 dlen;
	size_t		 n;

	if (strncmp(p, "$argon2id$", 10) != 0) {
		if (strncmp(p, "$argon2", 7) == 0)
			return "ARGON2ID hash is of another argon2 variant";
		return "ARGON2ID hash does not start with $argon2id$";
	}
	p += 10;
	if (strncmp(p, "v=", 2) != 0)
		return "ARGON2ID hash has no v= version";
	p += 2;
	if (parse_num(&p, &v) != 0 || *p != '$')
		return "ARGON2ID version is not a plain decimal number";
	if (v != ARGON2_VERSION_13 && v != ARGON2_VERSION_10)
		return "ARGON2ID version is neither 19 nor 16";
	p++;
	if (strncmp(p, "m=", 2) != 0)
		return "ARGON2ID parameters are not m=,t=,p=";
	p += 2;
	if (parse_num(&p, &m) != 0 || strncmp(p, ",t=", 3) != 0)
		return "ARGON2ID parameters are not m=,t=,p=";
	p += 3;
	if (parse_num(&p, &t) != 0 || strncmp(p, ",p=", 3) != 0)
		return "ARGON2ID parameters are not m=,t=,p=";
	p += 3;
	if (parse_num(&p, &par) != 0 || *p != '$')
		return "ARGON2ID parameters are not m=,t=,p=";
	p++;
	if (par < 1 || par > A2_P_MAX)
		return "ARGON2ID parallelism p= is not between 1 and 16";
	if (m < ARGON2_MIN_MEMORY || m < 8 * par)
		return "ARGON2ID memory m= is below 8 KiB per lane";
	if (m > A2_M_MAX)
		return "ARGON2ID memory m= is above 262144 KiB (too much per login)";
	if (t < ARGON2_MIN_TIME || t > A2_T_MAX)
		return "ARGON2ID time cost t= is not between 1 and 10";
	n = strspn(p, std_b64);
	if (p[n] == '\0')
		return "ARGON2ID hash is truncated";
	if (p[n] != '$')
		return "ARGON2ID salt is not unpadded base64";
	if ((dlen = argon2_b64_len(p, n)) < 0)
		return "ARGON2ID salt is not canonical base64";
	if (dlen < A2_SALT_MIN)
		return "ARGON2ID salt is shorter than 8 bytes";
	p += n + 1;
	n = strspn(p, std_b64);
	if (p[n] != '\0')
		return "ARGON2ID hash is not unpadded base64";
	if ((dlen = argon2_b64_len(p, n)) < 0)
		return "ARGON2ID hash is not canonical base64";
	if (dlen < A2_HASH_MIN)
		return "ARGON2ID hash is shorter than 16 bytes";
	return NULL;
}

/*
 * Split "{NAME}body" and check body for NAME. Returns NULL or a reason
 * (possibly formatted into msg, which must outlive its use).
 */
static const char *
check_stored(const char *stored, enum password_scheme *scheme, const char **body,
    char *msg, size_t msglen)
{
	const char	*end, *name;
	size_t		 namelen, i;
	int		 n;

	if (stored == NULL)
		return "no password hash";
	if (strnlen(stored, PASSWORD_HASH_MAX) >= PASSWORD_HASH_MAX)
		return "password hash is longer than 511 characters";
	if (stored[0] != '{')
		return "password hash has no {SCHEME} prefix";
	if ((end = strchr(stored, '}')) == NULL)
		return "password hash has an unterminated {SCHEME} prefix";
	name = stored + 1;
	namelen = (size_t)(end - name);
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) != namelen ||
		    strncasecmp(schemes[i].name, name, namelen) != 0)
			continue;
		*scheme = schemes[i].scheme;
		*body = end + 1;
		switch (schemes[i].scheme) {
		case PASSWORD_SHA512_CRYPT:
			return check_sha512(*body);
		case PASSWORD_BLF_CRYPT:
			return check_blf(*body);
		case PASSWORD_ARGON2ID:
			return check_argon2(*body);
		}
		return "internal error: scheme without a checker";
	}
	/* Quote the name only if it is plain, so the reason stays one clean line. */
	if (namelen == 0 || namelen > SCHEME_NAME_MAX ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_.") < namelen)
		return "unknown password scheme (expected SHA512-CRYPT, BLF-CRYPT or ARGON2ID)";
	n = snprintf(msg, msglen, "unknown password scheme {%.*s} (expected "
	    "SHA512-CRYPT, BLF-CRYPT or ARGON2ID)", (int)namelen, name);
	if (n < 0 || (size_t)n >= msglen)
		return "unknown password scheme (expected SHA512-CRYPT, BLF-CRYPT or ARGON2ID)";
	return msg;
}

/*
 * Compare two NUL-terminated strings in time that does not depend on where
 * they differ. Their lengths are not secret: both follow from the stored
 * setting, which the attacker's guess does not change.
 */
static int
ct_streq(const char *a, const char *b)
{
	size_t			 la, lb, i;
	volatile unsigned char	 d = 0;

	la = strlen(a);
	lb = strlen(b);
	if (la != lb)
		return 0;
	for (i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static void
free_crypt_data(struct crypt_data *cd)
{
	if (cd == NULL)
		return;
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
}

int
password_hash(const char *plain, char *out, size_t outlen, char *err, size_t errlen)
{
	struct crypt_data	*cd = NULL;
	char			 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	char			 msg[128];
	enum password_scheme	 scheme;
	const char		*h, *body, *why;
	int			 n, saved;

	if (plain == NULL || out == NULL || outlen == 0) {
		why = "no password or no output buffer";
		errno = EINVAL;
		goto fail;
	}
	out[0] = '\0';
	if (strlen(plain) > PASSWORD_PLAIN_MAX) {
		why = "password is longer than 511 bytes";
		errno = EINVAL;
		goto fail;
	}
	/* NULL random bytes: libxcrypt draws the salt from getrandom(2). */
	if (crypt_gensalt_rn("$6$", SHA512_ROUNDS_NEW, NULL, 0, setting,
	    (int)sizeof(setting)) == NULL) {
		why = "cannot make a random salt";
		goto fail;
	}
	/* calloc: libxcrypt wants crypt_data zeroed before its first use. */
	if ((cd = calloc(1, sizeof(*cd))) == NULL) {
		why = "out of memory";
		goto fail;
	}
	if ((h = crypt_rn(plain, setting, cd, (int)sizeof(*cd))) == NULL) {
		why = "crypt_rn failed to hash the password";
		goto fail;
	}
	n = snprintf(out, outlen, "%s%s", scheme_prefix, h);
	if (n < 0 || (size_t)n >= outlen) {
		why = "output buffer too small for the hash";
		errno = ERANGE;
		goto fail;
	}
	/* Never hand out a hash that password_verify would call malformed. */
	if (check_stored(out, &scheme, &body, msg, sizeof(msg)) != NULL) {
		why = "libxcrypt produced a hash that does not pass our checks";
		errno = EPROTO;
		goto fail;
	}
	free_crypt_data(cd);
	return 0;

fail:
	saved = errno;
	free_crypt_data(cd);
	if (out != NULL && outlen > 0)
		explicit_bzero(out, outlen);
	set_err(err, errlen, "%s", why);
	errno = saved;
	return -1;
}

int
password_hash_check(const char *stored, enum password_scheme *scheme, char *err,
    size_t errlen)
{
	enum password_scheme	 sc = PASSWORD_SHA512_CRYPT;
	const char		*body = NULL, *why;
	char			 msg[128];

	if ((why = check_stored(stored, &sc, &body, msg, sizeof(msg))) != NULL)
		goto fail;
	if (scheme != NULL)
		*scheme = sc;
	return 0;

fail:
	set_err(err, errlen, "%s", why);
	errno = EINVAL;
	return -1;
}

int
password_verify(const char *plain, const char *stored)
{
	struct crypt_data	*cd = NULL;
	enum password_scheme	 sc = PASSWORD_SHA512_CRYPT;
	const char		*body = NULL, *h;
	char			 msg[128];
	size_t			 len;
	int			 rc = -1, r, saved;

	if (plain == NULL || stored == NULL) {
		errno = EINVAL;
		goto fail;
	}
	if (check_stored(stored, &sc, &body, msg, sizeof(msg)) != NULL) {
		errno = EINVAL;
		goto fail;
	}
	len = strlen(plain);
	switch (sc) {
	case PASSWORD_ARGON2ID:
		/* libargon2 compares the tags in constant time itself. */
		r = argon2id_verify(body, plain, len);
		if (r == ARGON2_OK)
			rc = 1;
		else if (r == ARGON2_VERIFY_MISMATCH || r == ARGON2_PWD_TOO_LONG)
			rc = 0;
		else {
			errno = r == ARGON2_MEMORY_ALLOCATION_ERROR ? ENOMEM : EINVAL;
			goto fail;
		}
		break;
	case PASSWORD_SHA512_CRYPT:
	case PASSWORD_BLF_CRYPT:
		/* libxcrypt refuses such a password, so no hash it made matches. */
		if (len > PASSWORD_PLAIN_MAX) {
			rc = 0;
			break;
		}
		if ((cd = calloc(1, sizeof(*cd))) == NULL)
			goto fail;
		/* The stored hash is its own setting: crypt re-reads cost and salt. */
		if ((h = crypt_rn(plain, body, cd, (int)sizeof(*cd))) == NULL)
			goto fail;
		rc = ct_streq(h, body);
		break;
	default:
		errno = EINVAL;
		goto fail;
	}
	free_crypt_data(cd);
	return rc;

fail:
	saved = errno;
	free_crypt_data(cd);
	errno = saved;
	return -1;
}
