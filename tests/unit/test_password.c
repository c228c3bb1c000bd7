/* test_password: unit tests for tenants/password.c, the mailbox password
 * hashes ({SHA512-CRYPT}, {BLF-CRYPT}, {ARGON2ID}) that provisioning
 * validates and the protocol services verify.
 *
 * Where the known vectors come from (computed once, then embedded):
 * - SHA512-CRYPT: the first two are the examples of Ulrich Drepper's
 *   "Unix crypt using SHA-256 and SHA-512" specification; they and the
 *   others were (re)computed with `openssl passwd -6` of OpenSSL 3.0.19,
 *   whose implementation is independent of libxcrypt; the long-password
 *   ones with passlib (see sha512_x511).
 * - BLF-CRYPT: pyca/bcrypt 3.2.2 (Debian python3-bcrypt, OpenBSD's bcrypt
 *   code, independent of libxcrypt's crypt_blowfish); several are also in
 *   crypt_blowfish's own test list.
 * - ARGON2ID: libsodium through PyNaCl 1.5.0 (Debian python3-nacl,
 *   nacl.pwhash.argon2id.str), independent of libargon2 and the library
 *   Dovecot itself uses for ARGON2ID.
 * At test time we also make hashes with libxcrypt (crypt_gensalt_rn and
 * crypt_rn) and libargon2 (argon2id_hash_encoded), and, when they are on
 * PATH, with `openssl passwd -6` and the reference `argon2` tool.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "password.h"

struct vector {
	const char		*plain;
	const char		*stored;
	enum password_scheme	 scheme;
};

static const struct vector vectors[] = {
	/* SHA512-CRYPT: Drepper's spec examples, confirmed with openssl passwd -6. */
	{ "Hello world!",
	  "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
	  PASSWORD_SHA512_CRYPT },
	{ "Hello world!",
	  "{SHA512-CRYPT}$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
	  PASSWORD_SHA512_CRYPT },
	/* Scheme names are case-insensitive, as in Dovecot. */
	{ "This is just a test",
	  "{sha512-crypt}$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
	  PASSWORD_SHA512_CRYPT },
	/* UTF-8 password; openssl passwd -6 -salt 'rounds=1000$utf8salt'. */
	{ "p\xc3\xa4ssw\xc3\xb6rd",
	  "{SHA512-CRYPT}$6$rounds=1000$utf8salt$OpZOd7Z6fs247tFRowSK4POjOkwzln6NkNUZLqA2YmUhKK/yOfC/fOG9Qg.bG3dDMOTH4eMGIOSC9BuZWAeA4/",
	  PASSWORD_SHA512_CRYPT },
	/* BLF-CRYPT from pyca/bcrypt. */
	{ "U*U",
	  "{BLF-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	  PASSWORD_BLF_CRYPT },
	{ "",
	  "{BLF-CRYPT}$2b$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy",
	  PASSWORD_BLF_CRYPT },
	{ "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored",
	  "{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
	  PASSWORD_BLF_CRYPT },
	{ "correct horse battery staple",
	  "{BLF-CRYPT}$2b$06$abcdefghijklmnopqrstuu10cNU3mXRamSUZYs8I8M/Szu..qXq5K",
	  PASSWORD_BLF_CRYPT },
	{ "\xff\xff\xa3",
	  "{BLF-CRYPT}$2b$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e",
	  PASSWORD_BLF_CRYPT },
	{ "p\xc3\xa4ssw\xc3\xb6rd",
	  "{BLF-CRYPT}$2b$05$XXXXXXXXXXXXXXXXXXXXXO5I17zVcYa93LfM6Tmv6w3kgrD3P1eZG",
	  PASSWORD_BLF_CRYPT },
	/* ARGON2ID from libsodium (PyNaCl). */
	{ "correct horse battery staple",
	  "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM",
	  PASSWORD_ARGON2ID },
	{ "",
	  "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$ISKjxgU5kQZuNHN4oJ5zQg$HhvAL4nnbEPcSssfmgtsJGnXYnLMxhWGaBwyJpRQues",
	  PASSWORD_ARGON2ID },
	{ "p\xc3\xa4ssw\xc3\xb6rd",
	  "{Argon2ID}$argon2id$v=19$m=2048,t=3,p=1$9Z2aXcL3ngRoN9O54kTEQQ$605OGNX58rCIAlILYKF7OixZoCLnEiCRwKsfyOCLHz0",
	  PASSWORD_ARGON2ID },
};
#define NVECTORS	(sizeof(vectors) / sizeof(vectors[0]))

/* 511 and 1024 times 'x', from passlib 1.7.4's pure-Python sha512_crypt
 * (backend "builtin"; openssl passwd cuts passwords at 256 bytes). */
static const char sha512_x511[] =
    "{SHA512-CRYPT}$6$longpw$KQn3KjWPun48YthGeyucmgdWEUSjpz8LcAHTg05cZKV61AKIDqIhIuME2lasiq0oaF.3e.IX5rrZ773H/Qm5p0";
static const char sha512_x1024[] =
    "{SHA512-CRYPT}$6$long1024$OVenydu9FQkI3LXvHR5VVpgFFG1VdK95YZ5X.HCArCOoOKpHDWbiPjHzT.5I/NxkPIfhonIKoFOZDlgZd613t0";

/* Hash plain or fail the test with the reason. */
static void
hash_ok(const char *plain, char *out, size_t outlen)
{
	char	 err[256];

	err[0] = '\0';
	if (password_hash(plain, out, outlen, err, sizeof(err)) != 0)
		fail_msg("password_hash failed: %s", err);
}

static int
have_tool(const char *name)
{
	char	 cmd[128];
	int	 n;

	n = snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	return system(cmd) == 0;
}

/*
 * Run an external tool with a password on its standard input, from a
 * temporary file (never on its command line), and return the first line it
 * prints. 0 on success.
 */
static int
run_tool(const char *tool, const char *plain, int newline, char *out, size_t outlen)
{
	char	 path[] = "/tmp/test_password.XXXXXX";
	char	 cmd[512];
	FILE	*p;
	size_t	 len;
	int	 fd, n, rc = -1;

	if ((fd = mkstemp(path)) < 0)
		return -1;
	len = strlen(plain);
	if (write(fd, plain, len) != (ssize_t)len ||
	    (newline && write(fd, "\n", 1) != 1)) {
		close(fd);
		goto done;
	}
	if (close(fd) != 0)
		goto done;
	n = snprintf(cmd, sizeof(cmd), "%s < %s", tool, path);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		goto done;
	if ((p = popen(cmd, "r")) == NULL)
		goto done;
	if (fgets(out, (int)outlen, p) == NULL) {
		(void)pclose(p);
		goto done;
	}
	if (pclose(p) != 0)
		goto done;
	out[strcspn(out, "\r\n")] = '\0';
	rc = 0;
done:
	unlink(path);
	return rc;
}

static void
test_hash_then_verify(void **state)
{
	char			 h[PASSWORD_HASH_MAX], err[256];
	enum password_scheme	 sc = PASSWORD_ARGON2ID;

	(void)state;
	hash_ok("correct horse battery staple", h, sizeof(h));
	assert_int_equal(strncmp(h, "{SHA512-CRYPT}$6$", 17), 0);
	/* The cost we chose is in the string, so later rehash decisions can see it. */
	assert_int_equal(strncmp(h, "{SHA512-CRYPT}$6$", 17), 0);
	assert_int_equal(password_hash_check(h, &sc, err, sizeof(err)), 0);
	assert_int_equal(sc, PASSWORD_SHA512_CRYPT);
	assert_int_equal(password_verify("correct horse battery staple", h), 1);
	assert_int_equal(password_verify("correct horse battery stapl", h), 0);
	assert_int_equal(password_verify("correct horse battery staplf", h), 0);
	assert_int_equal(password_verify("Correct horse battery staple", h), 0);
	assert_int_equal(password_verify("", h), 0);
}

static void
test_salts_differ(void **state)
{
	char	 a[PASSWORD_HASH_MAX], b[PASSWORD_HASH_MAX];

	(void)state;
	hash_ok("same password", a, sizeof(a));
	hash_ok("same password", b, sizeof(b));
	assert_string_not_equal(a, b);
	/* Not just the digest: the salt itself differs. */
	assert_int_not_equal(memcmp(a, b, strlen("{SHA512-CRYPT}$6$") + 16), 0);
	assert_int_equal(password_verify("same password", a), 1);
	assert_int_equal(password_verify("same password", b), 1);
}

static void
test_known_vectors(void **state)
{
	char			 err[256], *wrong;
	enum password_scheme	 sc;
	size_t			 i, len, pos;
	int			 r;

	(void)state;
	for (i = 0; i < NVECTORS; i++) {
		err[0] = '\0';
		if (password_hash_check(vectors[i].stored, &sc, err, sizeof(err)) != 0)
			fail_msg("vector %zu rejected: %s", i, err);
		assert_int_equal(sc, vectors[i].scheme);
		if (password_verify(vectors[i].plain, vectors[i].stored) != 1)
			fail_msg("vector %zu does not verify", i);
		/* Same length, last byte changed; and one byte longer. */
		len = strlen(vectors[i].plain);
		wrong = malloc(len + 2);
		assert_non_null(wrong);
		memcpy(wrong, vectors[i].plain, len + 1);
		/* Flip the last byte that bcrypt still reads (it stops at 72). */
		pos = len < 72 ? len : 72;
		if (pos > 0) {
			wrong[pos - 1] ^= 1;
			r = password_verify(wrong, vectors[i].stored);
			wrong[pos - 1] ^= 1;
			if (r != 0) {
				free(wrong);
				fail_msg("vector %zu matches a wrong password", i);
			}
		}
		wrong[len] = '!';
		wrong[len + 1] = '\0';
		/* (bcrypt ignores bytes past 72, so skip the one long BLF vector.) */
		r = len < 72 ? password_verify(wrong, vectors[i].stored) : 0;
		free(wrong);
		if (r != 0)
			fail_msg("vector %zu matches a longer password", i);
	}
}

/* bcrypt only looks at the first 72 bytes; we keep that, as Dovecot does. */
static void
test_blf_72_bytes(void **state)
{
	const char	*stored = vectors[6].stored;

	(void)state;
	assert_int_equal(password_verify("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", stored), 1);
	assert_int_equal(password_verify("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 something else", stored), 1);
	assert_int_equal(password_verify("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678", stored), 0);
}

/* Hashes made at test time with libxcrypt itself, through our parser. */
static void
test_libxcrypt_made(void **state)
{
	static const struct {
		const char	*prefix;
		unsigned long	 count;
		const char	*scheme;
	} kinds[] = {
		{ "$6$", 0, "{SHA512-CRYPT}" },		/* default rounds, no rounds= */
		{ "$6$", 20000, "{SHA512-CRYPT}" },
		{ "$2b$", 5, "{BLF-CRYPT}" },
		{ "$2y$", 4, "{BLF-CRYPT}" },
		{ "$2a$", 6, "{BLF-CRYPT}" },
	};
	static const char	*plains[] = { "", "pw", "p\xc3\xa4ssw\xc3\xb6rd", "with space and $ and {braces}" };
	struct crypt_data	*cd;
	char			 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	char			 stored[PASSWORD_HASH_MAX], err[256];
	const char		*h;
	size_t			 i, j;
	int			 n;

	(void)state;
	cd = calloc(1, sizeof(*cd));
	assert_non_null(cd);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		for (j = 0; j < sizeof(plains) / sizeof(plains[0]); j++) {
			assert_non_null(crypt_gensalt_rn(kinds[i].prefix, kinds[i].count,
			    NULL, 0, setting, (int)sizeof(setting)));
			h = crypt_rn(plains[j], setting, cd, (int)sizeof(*cd));
			assert_non_null(h);
			n = snprintf(stored, sizeof(stored), "%s%s", kinds[i].scheme, h);
			assert_true(n > 0 && (size_t)n < sizeof(stored));
			if (password_hash_check(stored, NULL, err, sizeof(err)) != 0)
				fail_msg("libxcrypt %s hash rejected: %s", kinds[i].prefix, err);
			assert_int_equal(password_verify(plains[j], stored), 1);
			assert_int_equal(password_verify("wrong", stored), 0);
		}
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
}

/* openssl's own sha512-crypt must reproduce the hashes we make, and ours
 * must verify the ones it makes. */
static void
test_openssl_sha512(void **state)
{
	static const char	*plains[] = { "correct horse battery staple", "p\xc3\xa4ssw\xc3\xb6rd", "a$b{c}d" };
	char			 ours[PASSWORD_HASH_MAX], theirs[PASSWORD_HASH_MAX];
	char			 setting[PASSWORD_HASH_MAX], cmd[128], stored[PASSWORD_HASH_MAX];
	const char		*body, *last;
	size_t			 i;
	int			 n;

	(void)state;
	if (!have_tool("openssl"))
		skip();
	for (i = 0; i < sizeof(plains) / sizeof(plains[0]); i++) {
		/* Ours -> openssl: recompute with our rounds and salt. */
		hash_ok(plains[i], ours, sizeof(ours));
		body = ours + strlen("{SHA512-CRYPT}$6$");
		last = strrchr(body, '$');
		assert_non_null(last);
		n = snprintf(setting, sizeof(setting), "%.*s", (int)(last - body), body);
		assert_true(n > 0 && (size_t)n < sizeof(setting));
		n = snprintf(cmd, sizeof(cmd), "openssl passwd -6 -salt '%s' -stdin", setting);
		assert_true(n > 0 && (size_t)n < sizeof(cmd));
		assert_int_equal(run_tool(cmd, plains[i], 1, theirs, sizeof(theirs)), 0);
		assert_string_equal(ours + strlen("{SHA512-CRYPT}"), theirs);

		/* openssl -> ours. */
		assert_int_equal(run_tool("openssl passwd -6 -salt Xy7.Qz/9 -stdin",
		    plains[i], 1, theirs, sizeof(theirs)), 0);
		n = snprintf(stored, sizeof(stored), "{SHA512-CRYPT}%s", theirs);
		assert_true(n > 0 && (size_t)n < sizeof(stored));
		assert_int_equal(password_hash_check(stored, NULL, NULL, 0), 0);
		assert_int_equal(password_verify(plains[i], stored), 1);
		assert_int_equal(password_verify("nope", stored), 0);
	}
}

/* Make {ARGON2ID} of plain with libargon2 (fixed salt, small cost). */
static void
argon2_make(const char *plain, size_t len, char *out, size_t outlen)
{
	static const char	 salt[] = "mailnode-salt-16";
	char			 enc[256];
	int			 r, n;

	r = argon2id_hash_encoded(2, 1024, 1, plain, len, salt, sizeof(salt) - 1, 32,
	    enc, sizeof(enc));
	if (r != ARGON2_OK)
		fail_msg("argon2id_hash_encoded: %s", argon2_error_message(r));
	n = snprintf(out, outlen, "{ARGON2ID}%s", enc);
	assert_true(n > 0 && (size_t)n < outlen);
}

static void
test_argon2_made(void **state)
{
	char	 stored[PASSWORD_HASH_MAX], out[PASSWORD_HASH_MAX], err[256];
	int	 n;

	(void)state;
	argon2_make("correct horse battery staple", 28, stored, sizeof(stored));
	if (password_hash_check(stored, NULL, err, sizeof(err)) != 0)
		fail_msg("libargon2 hash rejected: %s", err);
	assert_int_equal(password_verify("correct horse battery staple", stored), 1);
	assert_int_equal(password_verify("correct horse battery stapl", stored), 0);

	/* The reference command-line tool; password on stdin, no newline. */
	if (!have_tool("argon2"))
		return;
	assert_int_equal(run_tool("argon2 somesaltsomesalt -id -t 2 -k 1024 -p 1 -e",
	    "p\xc3\xa4ssw\xc3\xb6rd", 0, out, sizeof(out)), 0);
	n = snprintf(stored, sizeof(stored), "{ARGON2ID}%s", out);
	assert_true(n > 0 && (size_t)n < sizeof(stored));
	if (password_hash_check(stored, NULL, err, sizeof(err)) != 0)
		fail_msg("argon2 tool hash rejected: %s", err);
	assert_int_equal(password_verify("p\xc3\xa4ssw\xc3\xb6rd", stored), 1);
	assert_int_equal(password_verify("passwort", stored), 0);
}

struct bad {
	const char	*stored;
	const char	*reason;	/* must appear in the error */
};

static const struct bad bads[] = {
	{ "{MD5}x", "unknown password scheme {MD5}" },
	{ "{MD5}$1$abcdefgh$0123456789abcdefghijkl", "unknown password scheme {MD5}" },
	{ "{}$6$saltstring$x", "unknown password scheme" },
	{ "{MD5\n}x", "unknown password scheme (" },
	{ "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "no {SCHEME} prefix" },
	{ "", "no {SCHEME} prefix" },
	{ "{SHA512-CRYPT", "unterminated" },
	{ "{SHA512-CRYPT}", "does not start with $6$" },
	{ "{SHA512-CRYPT}$5$saltstring$abc", "does not start with $6$" },
	{ "{SHA512-CRYPT}$6$", "truncated" },
	{ "{SHA512-CRYPT}$6$saltstring", "truncated" },
	{ "{SHA512-CRYPT}$6$saltstring$", "truncated" },
	{ "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz", "truncated" },
	{ "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1x", "longer than 86" },
	{ "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz2", "not canonical" },
	{ "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35in*1", "outside" },
	{ "{SHA512-CRYPT}$6$$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "salt is empty" },
	{ "{SHA512-CRYPT}$6$saltstringsaltstr$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", "longer than 16" },
	{ "{SHA512-CRYPT}$6$rounds=999$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "rounds below 1000" },
	{ "{SHA512-CRYPT}$6$rounds=01000$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "plain decimal" },
	{ "{SHA512-CRYPT}$6$rounds=$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "plain decimal" },
	{ "{SHA512-CRYPT}$6$rounds=99999999999$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "plain decimal" },
	{ "{SHA512-CRYPT}$6$rounds=2000000$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1", "above 1000000" },
	{ "{BLF-CRYPT}$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "$2x$" },
	{ "{BLF-CRYPT}$2$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "not $2a$, $2b$ or $2y$" },
	{ "{BLF-CRYPT}$1$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "does not start with $2" },
	{ "{BLF-CRYPT}$2y$0", "truncated" },
	{ "{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0Xou", "truncated" },
	{ "{BLF-CRYPT}$2y$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "cost below" },
	{ "{BLF-CRYPT}$2y$15$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "cost above" },
	{ "{BLF-CRYPT}$2y$5$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "two digits" },
	{ "{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCCCE5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "salt is not canonical" },
	{ "{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeX", "hash is not canonical" },
	{ "{BLF-CRYPT}$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe+", "outside" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2$salt$hash", "m=,t=,p=" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1,keyid=abc$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "m=,t=,p=" },
	{ "{ARGON2ID}$argon2i$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "another argon2 variant" },
	{ "{ARGON2ID}argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "does not start with $argon2id$" },
	{ "{ARGON2ID}$argon2id$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "no v=" },
	{ "{ARGON2ID}$argon2id$v=18$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "neither 19 nor 16" },
	{ "{ARGON2ID}$argon2id$v=19$m=1048576,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "above 262144" },
	{ "{ARGON2ID}$argon2id$v=19$m=8,t=2,p=4$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "below 8 KiB per lane" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=0,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "time cost" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=0$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "parallelism" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA", "truncated" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4W*zXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "not unpadded base64" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM=", "not unpadded base64" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNN", "not canonical base64" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFAx$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "not canonical base64" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$c2FsdA$kSnBM4WxzXcK4QyT7dlIAl52cohSJPxyqvmpJHPcsNM", "shorter than 8 bytes" },
	{ "{ARGON2ID}$argon2id$v=19$m=1024,t=2,p=1$l9dV3TWps4LPEoxrrRGtFA$kSnBM4WxzXcK", "shorter than 16 bytes" },
};

static void
test_malformed(void **state)
{
	enum password_scheme	 sc;
	char			 err[256];
	const char		*body;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		err[0] = '\0';
		if (password_hash_check(bads[i].stored, &sc, err, sizeof(err)) != -1)
			fail_msg("bad hash %zu accepted (expected: %s)", i, bads[i].reason);
		if (strstr(err, bads[i].reason) == NULL)
			fail_msg("bad hash %zu: reason \"%s\" lacks \"%s\"", i, err,
			    bads[i].reason);
		/* The reason names the problem, never the hash itself. */
		body = strchr(bads[i].stored, '}');
		if (body != NULL && strlen(body + 1) > 8 && strstr(err, body + 1) != NULL)
			fail_msg("bad hash %zu: reason quotes the hash", i);
		if (password_verify("anything", bads[i].stored) != -1)
			fail_msg("bad hash %zu: verify did not return -1", i);
		if (password_verify("", bads[i].stored) != -1)
			fail_msg("bad hash %zu: verify of \"\" did not return -1", i);
	}
}

static void
test_too_long_stored(void **state)
{
	char	 s[601], err[256];

	(void)state;
	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	memcpy(s, "{SHA512-CRYPT}$6$", 17);
	assert_int_equal(password_hash_check(s, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 511"));
	assert_int_equal(password_verify("a", s), -1);
}

static void
test_bad_arguments(void **state)
{
	char	 out[PASSWORD_HASH_MAX], err[256];

	(void)state;
	assert_int_equal(password_verify(NULL, vectors[0].stored), -1);
	assert_int_equal(password_verify("x", NULL), -1);
	assert_int_equal(password_hash_check(NULL, NULL, err, sizeof(err)), -1);
	assert_int_equal(password_hash(NULL, out, sizeof(out), err, sizeof(err)), -1);
	assert_int_equal(password_hash("x", NULL, 0, err, sizeof(err)), -1);
	/* NULL err is allowed. */
	assert_int_equal(password_hash_check("{MD5}x", NULL, NULL, 0), -1);

	/* A buffer too small gets a reason and an empty string, never a cut hash. */
	memset(out, 'z', sizeof(out));
	assert_int_equal(password_hash("x", out, 40, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too small"));
	assert_int_equal(out[0], '\0');
}

static void
test_long_passwords(void **state)
{
	char	 h[PASSWORD_HASH_MAX], a2[PASSWORD_HASH_MAX], err[256];
	char	 p511[PASSWORD_PLAIN_MAX + 1], p1024[1024 + 1];

	(void)state;
	memset(p511, 'x', PASSWORD_PLAIN_MAX);
	p511[PASSWORD_PLAIN_MAX] = '\0';
	memset(p1024, 'x', 1024);
	p1024[1024] = '\0';

	/* 511 bytes: the most crypt(3) takes; hashes, verifies, agrees with passlib. */
	hash_ok(p511, h, sizeof(h));
	assert_int_equal(password_verify(p511, h), 1);
	assert_int_equal(password_verify(p511, sha512_x511), 1);
	p511[PASSWORD_PLAIN_MAX - 1] = '\0';
	assert_int_equal(password_verify(p511, h), 0);
	assert_int_equal(password_verify(p511, sha512_x511), 0);

	/* 1024 bytes: libxcrypt refuses it, so we cannot make SHA512-CRYPT of it. */
	err[0] = '\0';
	assert_int_equal(password_hash(p1024, h, sizeof(h), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 511 bytes"));
	assert_int_equal(h[0], '\0');
	/* ... and it matches no crypt(3) hash (well formed, so 0, not -1), not
	 * even a correct SHA512-CRYPT of it made by an implementation without
	 * libxcrypt's limit: the documented price of that limit. */
	assert_int_equal(password_hash_check(sha512_x1024, NULL, NULL, 0), 0);
	assert_int_equal(password_verify(p1024, sha512_x1024), 0);
	assert_int_equal(password_verify(p1024, sha512_x511), 0);
	assert_int_equal(password_verify(p1024, vectors[6].stored), 0);
	/* ARGON2ID has no such limit: 1024 bytes hash and verify in full. */
	argon2_make(p1024, 1024, a2, sizeof(a2));
	assert_int_equal(password_verify(p1024, a2), 1);
	p1024[1023] = 'y';
	assert_int_equal(password_verify(p1024, a2), 0);
	p1024[1023] = '\0';
	assert_int_equal(password_verify(p1024, a2), 0);
}

static void
test_empty_password(void **state)
{
	char	 h[PASSWORD_HASH_MAX];

	(void)state;
	hash_ok("", h, sizeof(h));
	assert_int_equal(strncmp(h, "{SHA512-CRYPT}$6$", 17), 0);
	assert_int_equal(password_verify("", h), 1);
	assert_int_equal(password_verify(" ", h), 0);
	assert_int_equal(password_verify("x", h), 0);
}

#define NTHREADS	4
#define NROUNDS		3

struct worker {
	int	 id;
	int	 failures;
	char	 what[128];
};

static void
worker_fail(struct worker *w, const char *what)
{
	if (w->failures++ == 0)
		(void)snprintf(w->what, sizeof(w->what), "%s", what);
}

/* Each thread hashes its own passwords and verifies them and shared vectors. */
static void *
worker_run(void *arg)
{
	struct worker	*w = arg;
	char		 plain[64], wrong[64], h[PASSWORD_HASH_MAX], err[256];
	size_t		 i;
	int		 r, n;

	for (r = 0; r < NROUNDS; r++) {
		n = snprintf(plain, sizeof(plain), "thread %d round %d secret", w->id, r);
		if (n < 0 || (size_t)n >= sizeof(plain)) {
			worker_fail(w, "snprintf");
			continue;
		}
		memcpy(wrong, plain, sizeof(wrong));
		wrong[0] = 'T';
		if (password_hash(plain, h, sizeof(h), err, sizeof(err)) != 0) {
			worker_fail(w, "password_hash failed");
			continue;
		}
		if (password_verify(plain, h) != 1)
			worker_fail(w, "own hash does not verify");
		if (password_verify(wrong, h) != 0)
			worker_fail(w, "own hash matches a wrong password");
		for (i = 0; i < NVECTORS; i++) {
			if (password_verify(vectors[i].plain, vectors[i].stored) != 1)
				worker_fail(w, "vector does not verify");
		}
		if (password_verify("nope", vectors[10].stored) != 0)
			worker_fail(w, "argon2 vector matches a wrong password");
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t	 t[NTHREADS];
	struct worker	 w[NTHREADS];
	int		 i;

	(void)state;
	memset(w, 0, sizeof(w));
	for (i = 0; i < NTHREADS; i++) {
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (i = 0; i < NTHREADS; i++) {
		if (w[i].failures != 0)
			fail_msg("thread %d: %d failures, first: %s", i, w[i].failures,
			    w[i].what);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_then_verify),
		cmocka_unit_test(test_salts_differ),
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_blf_72_bytes),
		cmocka_unit_test(test_libxcrypt_made),
		cmocka_unit_test(test_openssl_sha512),
		cmocka_unit_test(test_argon2_made),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_too_long_stored),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_long_passwords),
		cmocka_unit_test(test_empty_password),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
