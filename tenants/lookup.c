/* lookup: SQL for the mail path over the tenant directory tables. */
#include "lookup.h"

#include <ctype.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "canon.h"
#include "db.h"
#include "password.h"
#include "ydoc.h"

/* Run a query built as prefix + quoted value + suffix; NULL on trouble. */
static MYSQL_RES *
query1(MYSQL *m, const char *prefix, const char *value, const char *suffix)
{
	struct buf q;
	MYSQL_RES *res = NULL;

	buf_init(&q, 0);
	if (buf_puts(&q, prefix) == 0 && db_quote(m, &q, value) == 0 && buf_puts(&q, suffix) == 0 &&
	    mysql_real_query(m, buf_data(&q), buf_len(&q)) == 0)
		res = mysql_store_result(m);
	buf_free(&q);
	return res;
}

int
lookup_size(const char *s, uint64_t *out)
{
	static const struct { const char *u; uint64_t m; } units[] = {
		{ "TiB", 1ULL << 40 }, { "GiB", 1ULL << 30 }, { "MiB", 1ULL << 20 },
		{ "KiB", 1ULL << 10 }, { "B", 1 }, { "", 1 } };
	char *end;
	unsigned long long v;
	size_t i;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	v = strtoull(s, &end, 10);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].u) == 0) {
			*out = v * units[i].m;
			return 0;
		}
	return -1;
}

/* JSON_VALUE gives a JSON true as "1" (MariaDB) or "true". */
static bool
is_true(const char *s)
{
	return s != NULL && (strcmp(s, "1") == 0 || strcmp(s, "true") == 0);
}

/* Does sender match one of the domain's blockedSenders (JSON list)? */
static bool
sender_blocked(const char *json, const char *sender)
{
	struct ydoc_stream *st = NULL;
	char err[128];
	const char *at = strrchr(sender, '@');
	bool hit = false;
	size_t i;

	if (json == NULL || *sender == '\0' ||
	    ydoc_parse(json, strlen(json), &st, err, sizeof(err)) == -1 || st->ndocs == 0) {
		ydoc_free(st);
		return false;
	}
	for (i = 0; i < ydoc_count(st->docs[0]) && st->docs[0]->type == YDOC_SEQ; i++) {
		const char *p = ydoc_str(st->docs[0]->items[i]);

		if (p == NULL)
			continue;
		if (strncmp(p, "*@", 2) == 0 ? (at && strcasecmp(at + 1, p + 2) == 0) :
		    strcasecmp(p, sender) == 0)
			hit = true;
	}
	ydoc_free(st);
	return hit;
}

static int
add_target(struct rcpt_result *r, const char *address, uint64_t mailbox_id)
{
	struct rcpt_target *t = realloc(r->targets, (r->ntargets + 1) * sizeof(*t));

	if (t == NULL)
		return -1;
	r->targets = t;
	snprintf(t[r->ntargets].address, sizeof(t[0].address), "%s", address);
	t[r->ntargets].mailbox_id = mailbox_id;
	r->ntargets++;
	return 0;
}

/* Expanding a recipient: aliases and forwards to local addresses are
 * followed to their mailboxes, each address at most once (an alias cycle
 * ends there) and at most LOOKUP_DEPTH levels deep. */
#define LOOKUP_DEPTH	8
#define LOOKUP_SEEN	256

struct expand {
	MYSQL			*m;
	struct rcpt_result	*r;
	uint64_t		 size;		/* declared SIZE, 0 when not given */
	char			*seen[LOOKUP_SEEN];
	size_t			 nseen;
};

/* Refuse the recipient for the first reason found (one unavailable local
 * target refuses it all: accepting would drop that target's copy). */
static void
refuse(struct expand *x, enum rcpt_verdict v, bool whole_tenant, const char *why, const char *address)
{
	if (x->r->verdict != RCPT_OK)
		return;
	x->r->verdict = v;
	x->r->whole_tenant = whole_tenant;
	snprintf(x->r->why, sizeof(x->r->why), "%.160s: %.80s", address, why);	/* bounded: why is 256 */
}

/* Mark address seen: 1 new, 0 seen before, -1 out of memory. */
static int
see(struct expand *x, const char *address)
{
	size_t i;

	for (i = 0; i < x->nseen; i++)
		if (strcasecmp(x->seen[i], address) == 0)
			return 0;
	if (x->nseen == LOOKUP_SEEN) {
		refuse(x, RCPT_LOOP, false, "alias expansion too large", address);
		return 0;
	}
	if ((x->seen[x->nseen] = strdup(address)) == NULL)
		return -1;
	x->nseen++;
	return 1;
}

static int resolve(struct expand *, const char *address, unsigned depth);

/* Targets of a JSON list of addresses (alias to, forwardTo): local ones
 * resolved here, anything else delivered remotely. */
static int
list_targets(struct expand *x, const char *json, unsigned depth)
{
	struct ydoc_stream *st = NULL;
	char err[128];
	size_t i;
	int rc = 0;

	if (ydoc_parse(json, strlen(json), &st, err, sizeof(err)) == -1 || st->ndocs == 0) {
		ydoc_free(st);
		return -1;
	}
	for (i = 0; i < ydoc_count(st->docs[0]) && st->docs[0]->type == YDOC_SEQ && rc == 0; i++) {
		const char *to = ydoc_str(st->docs[0]->items[i]);
		int found;

		if (to == NULL)
			continue;
		if ((found = resolve(x, to, depth + 1)) == -1)
			rc = -1;
		else if (found == 0 && add_target(x->r, to, 0) == -1)
			rc = -1;
	}
	ydoc_free(st);
	return rc;
}

/* Bytes the tenant's mailboxes hold. */
static int
tenant_used(MYSQL *m, const char *tenant_id, uint64_t *used)
{
	MYSQL_RES *res;
	MYSQL_ROW row;

	if ((res = query1(m, "SELECT COALESCE(SUM(used_bytes), 0) FROM mailboxes WHERE tenant_id = ",
	    tenant_id, "")) == NULL)
		return -1;
	row = mysql_fetch_row(res);
	*used = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(res);
	return 0;
}

/* A local mailbox by address, with its tenant's state and storage: 1 found
 * (targets added, or the recipient refused), 0 none, -1 db. */
static int
mailbox_target(struct expand *x, const char *address, unsigned depth)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	uint64_t quota = 0, used, storage = 0, tused;
	int rc = 1;

	res = query1(x->m, "SELECT x.id, x.state, JSON_VALUE(x.spec, '$.suspend.incoming'), "
	    "JSON_VALUE(x.spec, '$.quota'), x.used_bytes, JSON_QUERY(x.spec, '$.forwardTo'), "
	    "JSON_VALUE(x.spec, '$.keepCopy'), x.tenant_id, t.state, "
	    "JSON_VALUE(t.spec, '$.suspend.incoming'), JSON_VALUE(t.spec, '$.limits.storage') "
	    "FROM mailboxes x JOIN tenants t ON t.id = x.tenant_id WHERE x.address = ", address, "");
	if (res == NULL)
		return -1;
	if ((row = mysql_fetch_row(res)) == NULL) {
		mysql_free_result(res);
		return 0;
	}
	used = strtoull(row[4], NULL, 10);
	if (row[3] != NULL)
		(void)lookup_size(row[3], &quota);
	if (row[10] != NULL)
		(void)lookup_size(row[10], &storage);
	if (strcmp(row[8], "active") != 0)
		refuse(x, RCPT_DISABLED, true, "tenant suspended", address);
	else if (strcmp(row[1], "active") != 0)
		refuse(x, RCPT_DISABLED, false, "mailbox suspended", address);
	else if (is_true(row[9]))
		refuse(x, RCPT_PAUSED, true, "tenant incoming suspended", address);
	else if (is_true(row[2]))
		refuse(x, RCPT_PAUSED, false, "mailbox incoming suspended", address);
	else if (quota > 0 && (used >= quota || used + x->size > quota))
		refuse(x, RCPT_FULL, false, "mailbox over quota", address);
	else if (storage > 0 && tenant_used(x->m, row[7], &tused) == -1)
		rc = -1;
	else if (storage > 0 && (tused >= storage || tused + x->size > storage))
		refuse(x, RCPT_FULL, true, "tenant storage used up", address);
	else if (row[5] != NULL) {
		/* Forwarding: the forward addresses, and a copy here unless
		 * keepCopy is false (it is true by default). */
		if (list_targets(x, row[5], depth) == -1)
			rc = -1;
		else if ((row[6] == NULL || is_true(row[6])) &&
		    add_target(x->r, address, strtoull(row[0], NULL, 10)) == -1)
			rc = -1;
	} else if (add_target(x->r, address, strtoull(row[0], NULL, 10)) == -1)
		rc = -1;
	mysql_free_result(res);
	return rc;
}

/* An alias: 1 found (its targets added), 0 none, -1 db. */
static int
alias_target(struct expand *x, const char *address, unsigned depth)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	int rc = 1;

	res = query1(x->m, "SELECT JSON_QUERY(spec, '$.to') FROM aliases WHERE address = ", address, "");
	if (res == NULL)
		return -1;
	if ((row = mysql_fetch_row(res)) == NULL || row[0] == NULL)
		rc = 0;
	else if (list_targets(x, row[0], depth) == -1)
		rc = -1;
	mysql_free_result(res);
	return rc;
}

/* The same address in the domain a domain alias stands for, if it is one:
 * 1 (out filled), 0 not a domain alias, -1 db. */
static int
unalias_domain(MYSQL *m, const char *address, char *out, size_t outlen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	const char *at = strrchr(address, '@');
	int rc = 0;

	if (at == NULL)
		return 0;
	if ((res = query1(m, "SELECT alias_of FROM domains WHERE alias_of IS NOT NULL AND name = ",
	    at + 1, "")) == NULL)
		return -1;
	if ((row = mysql_fetch_row(res)) != NULL && row[0] != NULL &&
	    snprintf(out, outlen, "%.*s@%s", (int)(at - address), address, row[0]) < (int)outlen)
		rc = 1;
	mysql_free_result(res);
	return rc;
}

/* A local address (mailbox, alias, or either behind a domain alias): 1
 * hosted here (targets added or the recipient refused), 0 not a local
 * mailbox or alias, -1 db. */
static int
resolve(struct expand *x, const char *address, unsigned depth)
{
	char lower[512], real[600];
	size_t i;
	int rc;

	for (i = 0; address[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)address[i]);
	lower[i] = '\0';
	if (depth > LOOKUP_DEPTH) {
		refuse(x, RCPT_LOOP, false, "aliases nested too deep", lower);
		return 1;
	}
	if ((rc = see(x, lower)) != 1)
		return rc == 0 ? 1 : -1;	/* expanded already: a cycle or a duplicate */
	if ((rc = mailbox_target(x, lower, depth)) != 0)
		return rc;
	if ((rc = alias_target(x, lower, depth)) != 0)
		return rc;
	if (depth > 0 && (rc = unalias_domain(x->m, lower, real, sizeof(real))) != 0)
		return rc == -1 ? -1 : resolve(x, real, depth + 1);
	return 0;
}

void
lookup_recipient(MYSQL *m, const char *local, const char *domain, const char *sender,
    uint64_t declared_size, struct rcpt_result *r)
{
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	char address[600], catch_all[600] = "", real_domain[256];
	struct expand *x = NULL;
	int found, hops;
	size_t i;

	memset(r, 0, sizeof(*r));
	snprintf(real_domain, sizeof(real_domain), "%s", domain);
	/* A domain alias hands over to the domain it aliases (once). */
	for (hops = 0; hops < 2; hops++) {
		res = query1(m, "SELECT d.id, d.tenant_id, t.name, t.state, "
		    "JSON_VALUE(t.spec, '$.suspend.incoming'), JSON_VALUE(t.spec, '$.limits.messageSize'), "
		    "d.alias_of, JSON_VALUE(d.spec, '$.catchAll'), JSON_QUERY(d.spec, '$.blockedSenders') "
		    "FROM domains d JOIN tenants t ON t.id = d.tenant_id WHERE d.name = ", real_domain, "");
		if (res == NULL)
			goto tempfail;
		if ((row = mysql_fetch_row(res)) == NULL) {
			r->verdict = RCPT_NOT_HOSTED;
			snprintf(r->why, sizeof(r->why), "domain not hosted");
			mysql_free_result(res);
			return;
		}
		if (row[6] == NULL || hops == 1)
			break;
		snprintf(real_domain, sizeof(real_domain), "%s", row[6]);
		mysql_free_result(res);
		res = NULL;
	}
	r->tenant_id = strtoull(row[1], NULL, 10);
	snprintf(r->tenant, sizeof(r->tenant), "%s", row[2]);
	if (row[5] != NULL)
		(void)lookup_size(row[5], &r->size_limit);
	if (strcmp(row[3], "active") != 0) {
		r->verdict = RCPT_DISABLED;
		r->whole_tenant = true;
		snprintf(r->why, sizeof(r->why), "tenant suspended");
		goto done;
	}
	if (is_true(row[4])) {
		r->verdict = RCPT_PAUSED;
		r->whole_tenant = true;
		snprintf(r->why, sizeof(r->why), "tenant incoming suspended");
		goto done;
	}
	if (sender_blocked(row[8], sender)) {
		r->verdict = RCPT_BLOCKED_SENDER;
		snprintf(r->why, sizeof(r->why), "sender blocked by the domain");
		goto done;
	}
	if (r->size_limit > 0 && declared_size > r->size_limit) {
		r->verdict = RCPT_TOO_BIG;
		snprintf(r->why, sizeof(r->why), "declared size over the tenant's limit");
		goto done;
	}
	if (row[7] != NULL && strcmp(row[7], "reject") != 0)
		snprintf(catch_all, sizeof(catch_all), "%s", row[7]);
	mysql_free_result(res);
	res = NULL;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		goto tempfail;
	x->m = m;
	x->r = r;
	x->size = declared_size;
	snprintf(address, sizeof(address), "%s@%s", local, real_domain);
	r->verdict = RCPT_OK;
	if ((found = resolve(x, address, 0)) == -1)
		goto tempfail;
	if (found == 0 && catch_all[0] && (found = resolve(x, catch_all, 0)) == -1)
		goto tempfail;
	if (found == 0) {
		r->verdict = RCPT_UNKNOWN;
		snprintf(r->why, sizeof(r->why), "no such mailbox or alias");
	} else if (r->verdict == RCPT_OK && r->ntargets == 0) {
		/* Everything it leads to leads back: an alias or forward cycle. */
		r->verdict = RCPT_LOOP;
		snprintf(r->why, sizeof(r->why), "aliases and forwards lead back to themselves");
	}
	if (r->verdict != RCPT_OK) {
		free(r->targets);
		r->targets = NULL;
		r->ntargets = 0;
	}
	goto done;
tempfail:
	free(r->targets);
	r->targets = NULL;
	r->ntargets = 0;
	r->verdict = RCPT_TEMPFAIL;
	snprintf(r->why, sizeof(r->why), "database: %s", mysql_error(m));
done:
	if (res)
		mysql_free_result(res);
	if (x) {
		for (i = 0; i < x->nseen; i++)
			free(x->seen[i]);
		free(x);
	}
}

/* A real hash of a random password, to verify against for unknown logins. */
static pthread_once_t	dummy_once = PTHREAD_ONCE_INIT;
static char		dummy_hash[PASSWORD_HASH_MAX];

static void
make_dummy_hash(void)
{
	char err[128];

	if (password_hash("no such mailbox, no such password", dummy_hash, sizeof(dummy_hash),
	    err, sizeof(err)) == -1)
		dummy_hash[0] = '\0';
}

void
lookup_login(MYSQL *m, const char *address, const char *password, struct login_result *r)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char lower[256];
	size_t i;

	memset(r, 0, sizeof(*r));
	for (i = 0; address[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)address[i]);
	lower[i] = '\0';
	res = query1(m, "SELECT x.id, x.tenant_id, t.name, x.password_hash, x.state, t.state, "
	    "JSON_VALUE(x.spec, '$.suspend.login'), JSON_VALUE(t.spec, '$.suspend.login') "
	    "FROM mailboxes x JOIN tenants t ON t.id = x.tenant_id WHERE x.address = ", lower, "");
	if (res == NULL) {
		r->tempfail = true;
		return;
	}
	if ((row = mysql_fetch_row(res)) != NULL && row[3] != NULL &&
	    password_verify(password, row[3]) == 1) {
		r->ok = true;
		r->mailbox_id = strtoull(row[0], NULL, 10);
		r->tenant_id = strtoull(row[1], NULL, 10);
		snprintf(r->tenant, sizeof(r->tenant), "%s", row[2]);
		snprintf(r->address, sizeof(r->address), "%s", lower);
		if (strcmp(row[4], "active") != 0 || strcmp(row[5], "active") != 0 ||
		    is_true(row[6]) || is_true(row[7])) {
			r->ok = false;
			r->disabled = true;
		}
	} else if (row == NULL) {
		/* Spend the time of a verification anyway: the answer's delay
		 * must not tell which addresses exist. */
		pthread_once(&dummy_once, make_dummy_hash);
		if (dummy_hash[0])
			(void)password_verify(password, dummy_hash);
	}
	/* A wrong password still says whose mailbox was tried (counters). */
	if (row != NULL && r->tenant[0] == '\0')
		snprintf(r->tenant, sizeof(r->tenant), "%s", row[2]);
	mysql_free_result(res);
}

void
lookup_scram(MYSQL *m, const char *address, char *stored, size_t storedlen, struct login_result *r)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char lower[256];
	size_t i;

	memset(r, 0, sizeof(*r));
	stored[0] = '\0';
	for (i = 0; address[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)address[i]);
	lower[i] = '\0';
	res = query1(m, "SELECT x.id, x.tenant_id, t.name, x.scram_sha256, x.state, t.state, "
	    "JSON_VALUE(x.spec, '$.suspend.login'), JSON_VALUE(t.spec, '$.suspend.login') "
	    "FROM mailboxes x JOIN tenants t ON t.id = x.tenant_id WHERE x.address = ", lower, "");
	if (res == NULL) {
		r->tempfail = true;
		return;
	}
	if ((row = mysql_fetch_row(res)) != NULL && row[3] != NULL && strlen(row[3]) < storedlen) {
		snprintf(stored, storedlen, "%s", row[3]);
		r->ok = true;
		r->mailbox_id = strtoull(row[0], NULL, 10);
		r->tenant_id = strtoull(row[1], NULL, 10);
		snprintf(r->tenant, sizeof(r->tenant), "%s", row[2]);
		snprintf(r->address, sizeof(r->address), "%s", lower);
		if (strcmp(row[4], "active") != 0 || strcmp(row[5], "active") != 0 ||
		    is_true(row[6]) || is_true(row[7])) {
			r->ok = false;
			r->disabled = true;
		}
	}
	mysql_free_result(res);
}

int
lookup_may_send(MYSQL *m, const char *login, const char *sender, struct send_policy *p,
    char *why, size_t whylen)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char err[128];
	int ok = 0;

	memset(p, 0, sizeof(*p));
	res = query1(m, "SELECT x.state, JSON_VALUE(x.spec, '$.suspend.outgoing'), t.state, "
	    "JSON_VALUE(t.spec, '$.suspend.outgoing'), JSON_VALUE(t.spec, '$.limits.messageSize'), "
	    "JSON_VALUE(t.spec, '$.limits.sendRate') FROM mailboxes x JOIN tenants t "
	    "ON t.id = x.tenant_id WHERE x.address = ", login, "");
	if (res == NULL)
		return -1;
	row = mysql_fetch_row(res);
	if (row == NULL || strcmp(row[0], "active") != 0 || strcmp(row[2], "active") != 0 ||
	    is_true(row[1]) || is_true(row[3])) {
		snprintf(why, whylen, "sending is suspended for this account");
		mysql_free_result(res);
		return 0;
	}
	if (row[4] != NULL)
		(void)lookup_size(row[4], &p->size_limit);
	/* Provisioning checked the format; a bad one is no limit, not a refusal. */
	if (row[5] != NULL && canon_rate(row[5], &p->rate_count, &p->rate_per, err, sizeof(err)) == -1)
		p->rate_count = p->rate_per = 0;
	mysql_free_result(res);
	if (strcasecmp(login, sender) == 0)
		return 1;
	/* An alias that delivers to the login is also the login's to send as. */
	res = query1(m, "SELECT JSON_QUERY(spec, '$.to') FROM aliases WHERE address = ", sender, "");
	if (res == NULL)
		return -1;
	if ((row = mysql_fetch_row(res)) != NULL && row[0] != NULL) {
		struct ydoc_stream *st = NULL;
		size_t i;

		if (ydoc_parse(row[0], strlen(row[0]), &st, err, sizeof(err)) == 0 && st->ndocs)
			for (i = 0; i < ydoc_count(st->docs[0]) && st->docs[0]->type == YDOC_SEQ; i++)
				if (ydoc_str(st->docs[0]->items[i]) &&
				    strcasecmp(ydoc_str(st->docs[0]->items[i]), login) == 0)
					ok = 1;
		ydoc_free(st);
	}
	mysql_free_result(res);
	if (!ok)
		snprintf(why, whylen, "this account may not send as that address");
	return ok;
}
