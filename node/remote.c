/* remote: the hand-over to other servers, by REMOTE workers. A worker claims
 * the due recipients of one message for one destination (a lease in their
 * rows, taken with a conditional UPDATE: whoever changes the row owns it),
 * hands them over and records each answer in the row the acceptance
 * created, which also ends the lease. */
#include "remote.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "buf.h"
#include "log.h"
#include "resolve.h"
#include "smtp_client.h"
#include "smtp_parse.h"
#include "spool.h"
#include "tenant_stats.h"

#define REMOTE_BATCH	200
#define REMOTE_POLL_MS	5000
/* Longer than any hand-over can take (connects to every MX address, then
 * 300 s per command and 600 s for the data at most): a node that died
 * holding a lease has it cleared when it starts again; another node waits
 * for the expiry. */
#define REMOTE_LEASE_S	3600

static struct remote_conf	conf;
static char			msg_dir[PATH_MAX];
static char			helo[256];
static char			node_id[84];

struct due {
	uint64_t	 rcpt_id, message_id, size, attempts, age;
	char		 qid[32], sender[520], envid[104], address[520], orcpt[270];
	char		 domain[256];	/* of address, lower case */
	char		 tenant[64];	/* whose mail: counted when sent */
	unsigned	 notify;
	bool		 ret_hdrs, smtputf8, warned;
};

struct worker {
	pthread_t	 thread;
	unsigned	 idx;
	bool		 started;
	bool		 busy;		/* holds a slot of dest */
	char		 dest[300];	/* "host:port" of a route or relay, or the domain */
	char		 domain[256];
	char		 token[160];	/* lease_owner of what it holds */
	uint64_t	 claims;
};

static struct {
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	struct worker	*w;
	unsigned	 nw;
	bool		 running, stopping;
	uint64_t	 gen;		/* bumped by kicks and freed slots */
	int		 cancel[2];	/* a pipe, written once at stop */
	char		 epoch[24];	/* this start's leases: node_id/epoch/... */
	struct db_conf	 db;
	void		(*done)(void);
} rp = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
    .cancel = { -1, -1 } };

void
remote_init(const struct remote_conf *c, const char *spool_msg_dir, const char *id)
{
	conf = *c;
	if (conf.workers == 0)
		conf.workers = 1;
	if (conf.workers > REMOTE_WORKERS_MAX)
		conf.workers = REMOTE_WORKERS_MAX;
	if (conf.per_dest == 0)
		conf.per_dest = 1;
	snprintf(msg_dir, sizeof(msg_dir), "%s", spool_msg_dir);
	snprintf(node_id, sizeof(node_id), "%s", id);
	if (gethostname(helo, sizeof(helo) - 1) == -1)
		snprintf(helo, sizeof(helo), "localhost");
}

static int
exec(MYSQL *m, const char *sql)
{
	return mysql_real_query(m, sql, strlen(sql)) == 0 ? 0 : -1;
}

static const struct remote_route *
route_for(const char *domain)
{
	size_t i;

	for (i = 0; i < conf.nroutes; i++)
		if (strcasecmp(conf.routes[i].domain, domain) == 0)
			return &conf.routes[i];
	return NULL;
}

/* What the per-destination limit counts: one relay, one routed host, or
 * the domain (whose MX hosts are its business). */
static void
dest_of(const char *domain, char *out, size_t outlen)
{
	const struct remote_route *r = route_for(domain);

	if (r != NULL)
		snprintf(out, outlen, "%s:%u", r->host, r->port);
	else if (conf.relay_host[0])
		snprintf(out, outlen, "%s:%u", conf.relay_host, conf.relay_port);
	else
		snprintf(out, outlen, "%s", domain);
}

/* Callers hold rp.lock. */
static unsigned
dest_load(const char *dest)
{
	unsigned i, n = 0;

	for (i = 0; i < rp.nw; i++)
		n += rp.w[i].busy && strcmp(rp.w[i].dest, dest) == 0;
	return n;
}

static void
release_slot(struct worker *w)
{
	pthread_mutex_lock(&rp.lock);
	w->busy = false;
	rp.gen++;
	pthread_cond_broadcast(&rp.cond);
	pthread_mutex_unlock(&rp.lock);
}

/* Domains not worth fetching now: their destination is at its limit. */
static int
exclusions(MYSQL *m, struct buf *b, bool *all_full)
{
	char dest[300], esc[520];
	unsigned i;
	size_t r;
	bool any = false;
	int rc = 0;

	*all_full = false;
	pthread_mutex_lock(&rp.lock);
	if (conf.relay_host[0] && conf.nroutes == 0) {
		dest_of("", dest, sizeof(dest));
		*all_full = dest_load(dest) >= conf.per_dest;
	}
	for (i = 0; i < rp.nw && rc == 0; i++) {
		if (!rp.w[i].busy || dest_load(rp.w[i].dest) < conf.per_dest)
			continue;
		mysql_real_escape_string(m, esc, rp.w[i].domain, strnlen(rp.w[i].domain, 255));
		rc = buf_printf(b, "%s'%s'", any ? "," : " AND LOWER(SUBSTRING_INDEX(r.address, '@', -1)) "
		    "NOT IN (", esc);
		any = true;
	}
	for (r = 0; r < conf.nroutes && rc == 0; r++) {
		dest_of(conf.routes[r].domain, dest, sizeof(dest));
		if (dest_load(dest) < conf.per_dest)
			continue;
		mysql_real_escape_string(m, esc, conf.routes[r].domain, strnlen(conf.routes[r].domain, 255));
		rc = buf_printf(b, "%s'%s'", any ? "," : " AND LOWER(SUBSTRING_INDEX(r.address, '@', -1)) "
		    "NOT IN (", esc);
		any = true;
	}
	pthread_mutex_unlock(&rp.lock);
	if (rc == 0 && any)
		rc = buf_puts(b, ")");
	return rc;
}

static size_t
fetch(MYSQL *m, struct due *out, size_t max)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	struct buf sql;
	size_t n = 0;
	bool full;

	buf_init(&sql, 0);
	if (buf_printf(&sql, "SELECT r.id, m.id, m.size, r.attempts, "
	    "TIMESTAMPDIFF(SECOND, m.received_at, NOW()), m.qid, m.sender, m.envid, r.address, "
	    "r.orcpt, r.notify, m.ret_hdrs, m.smtputf8, "
	    "COALESCE((SELECT t.name FROM tenants t WHERE t.id = m.tenant_id), ''), "
	    "LOWER(SUBSTRING_INDEX(r.address, '@', -1)), r.warned "
	    "FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id "
	    "WHERE r.mailbox_id IS NULL AND r.state IN ('queued', 'deferred') "
	    "AND r.next_attempt <= NOW() AND m.held = FALSE "
	    "AND (r.lease_until IS NULL OR r.lease_until < NOW()) AND %s", spool_mine_sql()) == -1 ||
	    exclusions(m, &sql, &full) == -1 ||
	    buf_printf(&sql, " ORDER BY m.id, r.id LIMIT %zu", max) == -1 || full ||
	    mysql_real_query(m, buf_data(&sql), buf_len(&sql)) != 0 ||
	    (res = mysql_store_result(m)) == NULL) {
		buf_free(&sql);
		return 0;
	}
	buf_free(&sql);
	while ((row = mysql_fetch_row(res)) != NULL && n < max) {
		struct due *d = &out[n++];

		memset(d, 0, sizeof(*d));
		d->rcpt_id = strtoull(row[0], NULL, 10);
		d->message_id = strtoull(row[1], NULL, 10);
		d->size = strtoull(row[2], NULL, 10);
		d->attempts = strtoull(row[3], NULL, 10);
		d->age = row[4] ? strtoull(row[4], NULL, 10) : 0;
		snprintf(d->qid, sizeof(d->qid), "%s", row[5]);
		snprintf(d->sender, sizeof(d->sender), "%s", row[6]);
		snprintf(d->envid, sizeof(d->envid), "%s", row[7]);
		snprintf(d->address, sizeof(d->address), "%s", row[8]);
		snprintf(d->orcpt, sizeof(d->orcpt), "%s", row[9]);
		d->notify = (unsigned)strtoul(row[10], NULL, 10);
		d->ret_hdrs = strcmp(row[11], "1") == 0;
		d->smtputf8 = strcmp(row[12], "1") == 0;
		snprintf(d->tenant, sizeof(d->tenant), "%s", row[13]);
		snprintf(d->domain, sizeof(d->domain), "%s", row[14] ? row[14] : "");
		d->warned = row[15] != NULL && strcmp(row[15], "1") == 0;
	}
	mysql_free_result(res);
	return n;
}

/* The lease ends without an outcome: another try, by anyone, soon. */
static void
abandon(MYSQL *m, const struct worker *w)
{
	char sql[500], esc[330];

	mysql_real_escape_string(m, esc, w->token, strlen(w->token));
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET lease_owner = '', lease_until = NULL "
	    "WHERE lease_owner = '%s'", esc);
	if (exec(m, sql) == -1)
		log_warn("queue: lease %s not released (%s): it expires", w->token, mysql_error(m));
}

/* One message for one destination, claimed: the group is compacted into
 * out[0..n). A destination at its limit is left for later; a row another
 * worker changed first is not ours. Returns 0 when nothing was claimed. */
static size_t
claim(MYSQL *m, struct worker *w, struct due *out, size_t max)
{
	char dest[300], esc[330];
	struct buf sql;
	size_t n, i, k = 0, pick = SIZE_MAX;
	MYSQL_RES *res;
	MYSQL_ROW row;

	n = fetch(m, out, max);
	pthread_mutex_lock(&rp.lock);
	for (i = 0; i < n && pick == SIZE_MAX; i++) {
		dest_of(out[i].domain, dest, sizeof(dest));
		if (dest_load(dest) < conf.per_dest) {
			pick = i;
			w->busy = true;
			snprintf(w->dest, sizeof(w->dest), "%s", dest);
			snprintf(w->domain, sizeof(w->domain), "%s", out[i].domain);
		}
	}
	pthread_mutex_unlock(&rp.lock);
	if (pick == SIZE_MAX)
		return 0;
	/* A group: the same message and (without a route or relay that takes
	 * every domain) the same domain. */
	for (i = pick; i < n; i++) {
		if (out[i].message_id != out[pick].message_id)
			continue;
		dest_of(out[i].domain, dest, sizeof(dest));
		if (strcmp(dest, w->dest) != 0 || (strcmp(out[i].domain, w->domain) != 0 &&
		    (route_for(out[i].domain) != NULL || !conf.relay_host[0])))
			continue;
		out[k++] = out[i];
	}
	snprintf(w->token, sizeof(w->token), "%s/%s/%u/%" PRIu64, node_id, rp.epoch, w->idx,
	    ++w->claims);
	mysql_real_escape_string(m, esc, w->token, strlen(w->token));
	buf_init(&sql, 0);
	if (buf_printf(&sql, "UPDATE queue_recipients SET lease_owner = '%s', lease_until = NOW() + "
	    "INTERVAL %d SECOND WHERE state IN ('queued', 'deferred') AND (lease_until IS NULL OR "
	    "lease_until < NOW()) AND id IN (", esc, REMOTE_LEASE_S) == -1)
		goto fail;
	for (i = 0; i < k; i++)
		if (buf_printf(&sql, "%s%" PRIu64, i ? "," : "", out[i].rcpt_id) == -1)
			goto fail;
	if (buf_puts(&sql, ")") == -1 || mysql_real_query(m, buf_data(&sql), buf_len(&sql)) != 0)
		goto fail;
	if (mysql_affected_rows(m) != (my_ulonglong)k) {
		/* Raced: keep what is ours. */
		size_t j = 0;

		buf_reset(&sql);
		if (buf_printf(&sql, "SELECT id FROM queue_recipients WHERE lease_owner = '%s'", esc) == -1 ||
		    mysql_real_query(m, buf_data(&sql), buf_len(&sql)) != 0 ||
		    (res = mysql_store_result(m)) == NULL)
			goto fail_abandon;
		while ((row = mysql_fetch_row(res)) != NULL) {
			uint64_t id = strtoull(row[0], NULL, 10);

			for (i = j; i < k; i++)
				if (out[i].rcpt_id == id) {
					struct due t = out[j];

					out[j++] = out[i];
					out[i] = t;
					break;
				}
		}
		mysql_free_result(res);
		k = j;
	}
	buf_free(&sql);
	if (k == 0)
		release_slot(w);
	return k;
fail_abandon:
	abandon(m, w);
fail:
	buf_free(&sql);
	release_slot(w);
	return 0;
}

static void
record(MYSQL *m, const struct due *d, const char *state, uint64_t delay, const char *why)
{
	char sql[1700], esc[1100];

	mysql_real_escape_string(m, esc, why, strnlen(why, 500));
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET state = '%s', attempts = attempts + 1, "
	    "next_attempt = NOW() + INTERVAL %" PRIu64 " SECOND, last_error = '%s', lease_owner = '', "
	    "lease_until = NULL WHERE id = %" PRIu64, state, delay, esc, d->rcpt_id);
	if (exec(m, sql) == -1)
		log_err("queue: cannot record the outcome for %s: %s", d->qid, mysql_error(m));
}

/* "550 5.1.1 text": the server's enhanced code when it gave one. */
static void
status_of(const char *text, int code, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", code >= 500 ? "5.0.0" : "4.4.7");
	if (text[0] >= '2' && text[0] <= '5' && strlen(text) > 5 && text[3] == ' ' &&
	    isdigit((unsigned char)text[4]) && text[5] == '.')
		snprintf(out, outlen, "%.*s", (int)strcspn(text + 4, " "), text + 4);
}

/* Failed recipients: tell the sender (unless NOTIFY said otherwise), then
 * mark them failed. If the report cannot be queued now, they stay for a
 * later try: a failure is never dropped unreported. */
static void
fail_group(MYSQL *m, struct due *g, size_t n, const int *codes, char (*texts)[300])
{
	struct bounce_rcpt *br = calloc(n, sizeof(*br));
	char (*status)[16] = calloc(n, sizeof(*status));
	char (*diag)[340] = calloc(n, sizeof(*diag));
	char err[256] = "";
	size_t i, k = 0;
	int r;

	if (br == NULL || status == NULL || diag == NULL) {
		free(br);
		free(status);
		free(diag);
		for (i = 0; i < n; i++)	/* out of memory: they come back */
			record(m, &g[i], "deferred", conf.retry_min, texts[i]);
		return;
	}
	for (i = 0; i < n; i++) {
		if (g[i].notify && !(g[i].notify & SMTP_NOTIFY_FAILURE))
			continue;
		status_of(texts[i], codes[i], status[k], sizeof(status[k]));
		snprintf(diag[k], sizeof(diag[k]), "%s; %s", codes[i] > 0 ? "smtp" : "x-mailnode", texts[i]);
		br[k].address = g[i].address;
		br[k].orcpt = g[i].orcpt;
		br[k].status = status[k];
		br[k].diagnostic = diag[k];
		k++;
	}
	r = 0;
	if (k > 0) {
		struct bounce_info bi = { .qid = g[0].qid, .sender = g[0].sender, .envid = g[0].envid,
		    .ret_hdrs = g[0].ret_hdrs, .spool_msg_dir = msg_dir, .rcpts = br, .nrcpts = k,
		    .action = BOUNCE_FAILED };

		r = bounce_queue(m, &bi, err, sizeof(err));
	}
	if (r == -1) {
		log_err("queue: report for %s not queued (%s); trying again later", g[0].qid, err);
		for (i = 0; i < n; i++)
			record(m, &g[i], "deferred", conf.retry_min, texts[i]);
	} else
		for (i = 0; i < n; i++)
			record(m, &g[i], "failed", 0, texts[i]);
	free(br);
	free(status);
	free(diag);
}

/* RFC 3461 4.1 lets a recipient without NOTIFY mean FAILURE or
 * FAILURE,DELAY; we take FAILURE,DELAY (senders expect to hear about mail
 * stuck for hours). NEVER and lists without DELAY get no warning. */
static bool
wants_delay_report(const struct due *d)
{
	if (conf.delay_warning == 0 || d->warned || d->age < conf.delay_warning ||
	    d->age >= conf.lifetime)
		return false;
	return d->notify == 0 || (d->notify & SMTP_NOTIFY_DELAY);
}

/* Still deferred after delay_warning: one report (Action: delayed) per
 * recipient, marked in its row once queued; if it cannot be queued now, the
 * next deferral tries again. */
static void
warn_group(MYSQL *m, struct due *g, size_t n, char (*texts)[300])
{
	struct bounce_rcpt *br = calloc(n, sizeof(*br));
	char (*status)[16] = calloc(n, sizeof(*status));
	char (*diag)[340] = calloc(n, sizeof(*diag));
	char err[256] = "";
	struct buf sql;
	size_t i;

	buf_init(&sql, 0);
	if (br == NULL || status == NULL || diag == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		status_of(texts[i], 450, status[i], sizeof(status[i]));
		if (status[i][0] != '4')
			snprintf(status[i], sizeof(status[i]), "4.4.7");
		snprintf(diag[i], sizeof(diag[i]), "x-mailnode; %s", texts[i]);
		br[i].address = g[i].address;
		br[i].orcpt = g[i].orcpt;
		br[i].status = status[i];
		br[i].diagnostic = diag[i];
	}
	{
		struct bounce_info bi = { .qid = g[0].qid, .sender = g[0].sender, .envid = g[0].envid,
		    .ret_hdrs = true, .spool_msg_dir = msg_dir, .rcpts = br, .nrcpts = n,
		    .action = BOUNCE_DELAYED,
		    .retry_until = time(NULL) + (time_t)(conf.lifetime - g[0].age) };

		if (bounce_queue(m, &bi, err, sizeof(err)) == -1) {
			log_warn("queue: delay report for %s not queued (%s); at the next try", g[0].qid, err);
			goto out;
		}
	}
	if (buf_puts(&sql, "UPDATE queue_recipients SET warned = TRUE WHERE id IN (") == -1)
		goto out;
	for (i = 0; i < n; i++)
		if (buf_printf(&sql, "%s%" PRIu64, i ? "," : "", g[i].rcpt_id) == -1)
			goto out;
	if (buf_puts(&sql, ")") == -1 || mysql_real_query(m, buf_data(&sql), buf_len(&sql)) != 0)
		log_warn("queue: delay report for %s sent but not marked: %s", g[0].qid, mysql_error(m));
	else
		log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "spool" },
		    "%s: delay report for %zu recipients sent to <%s>", g[0].qid, n, g[0].sender);
out:
	buf_free(&sql);
	free(br);
	free(status);
	free(diag);
}

uint64_t
remote_backoff(uint64_t attempts)
{
	uint64_t d = conf.retry_min;

	while (attempts-- > 0 && d < conf.retry_max)
		d *= 2;
	return d > conf.retry_max ? conf.retry_max : d;
}

/* What another server took of one message: its tenant's outbound traffic. */
static void
remote_count_sent(const struct due *d, size_t rcpts)
{
	if (rcpts == 0)
		return;
	tenant_stats_add(d->tenant, TENANT_STAT_MSGS_OUT, 1);
	tenant_stats_add(d->tenant, TENANT_STAT_BYTES_OUT, d->size);
	tenant_stats_add(d->tenant, TENANT_STAT_RCPTS_OUT, rcpts);
}

static bool
stopping(void)
{
	bool s;

	pthread_mutex_lock(&rp.lock);
	s = rp.stopping;
	pthread_mutex_unlock(&rp.lock);
	return s;
}

/* Every recipient gets an outcome: delivered, deferred (maybe with a delay
 * report), or failed and reported. */
/* NOTIFY=SUCCESS to a server without DSN: we say it was relayed (RFC 3461
 * 6.2.1); one with DSN reports delivery itself. Best effort: the mail is
 * handed over. */
static void
relayed(MYSQL *m, struct due *g, size_t n, char (*texts)[300])
{
	struct bounce_rcpt *br = calloc(n, sizeof(*br));
	char (*diag)[340] = calloc(n, sizeof(*diag));
	char err[256] = "";
	size_t i;

	if (br != NULL && diag != NULL) {
		struct bounce_info bi = { .qid = g[0].qid, .sender = g[0].sender, .envid = g[0].envid,
		    .ret_hdrs = true, .spool_msg_dir = msg_dir, .rcpts = br, .nrcpts = n,
		    .action = BOUNCE_RELAYED };

		for (i = 0; i < n; i++) {
			snprintf(diag[i], sizeof(diag[i]), "smtp; %s", texts[i]);
			br[i].address = g[i].address;
			br[i].orcpt = g[i].orcpt;
			br[i].status = "2.0.0";
			br[i].diagnostic = diag[i];
		}
		if (bounce_queue(m, &bi, err, sizeof(err)) == -1)
			log_warn("queue: relay report for %s not queued: %s", g[0].qid, err);
	}
	free(br);
	free(diag);
}

static void
outcomes(MYSQL *m, struct due *g, size_t n, const int *codes, char (*texts)[300], bool permanent,
    const char *via, const char *tls, bool dsn_offered)
{
	struct due *failed = calloc(n, sizeof(*failed)), *late = calloc(n, sizeof(*late));
	struct due *told = calloc(n, sizeof(*told));
	char (*ttexts)[300] = calloc(n, sizeof(*ttexts));
	size_t nt = 0;
	int *fcodes = calloc(n, sizeof(*fcodes));
	char (*ftexts)[300] = calloc(n, sizeof(*ftexts)), (*ltexts)[300] = calloc(n, sizeof(*ltexts));
	size_t k, nf = 0, nl = 0, sent = 0;

	for (k = 0; k < n; k++) {
		bool perm = codes[k] >= 500 || (codes[k] == 0 && permanent);

		if (codes[k] >= 200 && codes[k] < 300) {
			record(m, &g[k], "delivered", 0, "");
			sent++;
			if ((g[k].notify & SMTP_NOTIFY_SUCCESS) && !dsn_offered && told != NULL &&
			    ttexts != NULL) {
				told[nt] = g[k];
				memcpy(ttexts[nt], texts[k], sizeof(ttexts[0]));
				nt++;
			}
			log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "spool" },
			    "%s: handed over to %s%s%s", g[k].qid, via, tls[0] ? " over " : "", tls);
		} else if (perm || g[k].age >= conf.lifetime) {
			if (!perm) {
				char last[300];

				memcpy(last, texts[k], sizeof(last));
				snprintf(texts[k], sizeof(texts[0]), "gave up after %" PRIu64
				    " seconds: %.200s", g[k].age, last);
			}
			if (failed != NULL && fcodes != NULL && ftexts != NULL) {
				failed[nf] = g[k];
				fcodes[nf] = codes[k];
				memcpy(ftexts[nf], texts[k], sizeof(ftexts[0]));
				nf++;
			} else
				record(m, &g[k], "deferred", conf.retry_min, texts[k]);
		} else if (wants_delay_report(&g[k]) && late != NULL && ltexts != NULL) {
			late[nl] = g[k];
			memcpy(ltexts[nl], texts[k], sizeof(ltexts[0]));
			nl++;
		} else
			record(m, &g[k], "deferred", remote_backoff(g[k].attempts), texts[k]);
	}
	remote_count_sent(&g[0], sent);
	if (nf > 0)
		fail_group(m, failed, nf, fcodes, ftexts);
	/* Reported and marked while the lease still holds them: no other
	 * worker can take them in between and warn a second time. */
	if (nl > 0)
		warn_group(m, late, nl, ltexts);
	for (k = 0; k < nl; k++)
		record(m, &late[k], "deferred", remote_backoff(late[k].attempts), ltexts[k]);
	if (nt > 0)
		relayed(m, told, nt, ttexts);
	free(told);
	free(ttexts);
	free(failed);
	free(fcodes);
	free(ftexts);
	free(late);
	free(ltexts);
}

/* One message to one destination. A hand-over cut short by a stop records
 * nothing: the lease is released and the next try starts over (the
 * message may then arrive twice, never not at all). */
static void
deliver_group(MYSQL *m, struct resolve *dns, struct worker *w, struct due *g, size_t n)
{
	struct smtp_client_rcpt rc[REMOTE_BATCH];
	struct smtp_client_msg msg;
	struct smtp_client_timeouts to = { 30, conf.timeout, conf.timeout };
	const struct remote_route *route = route_for(g[0].domain);
	struct resolve_mx hosts[RESOLVE_MX_MAX];
	int codes[REMOTE_BATCH], nhosts, i, fd = -1, via = 0;
	unsigned port = conf.mx_port;
	char (*texts)[300] = calloc(n, sizeof(*texts));
	char path[PATH_MAX + 64], err[256] = "", tls[64] = "";
	bool permanent = false, done = false, dsn = false;
	size_t k;

	if (texts == NULL) {
		abandon(m, w);
		return;
	}
	if (route != NULL) {
		snprintf(hosts[0].host, sizeof(hosts[0].host), "%s", route->host);
		port = route->port;
		nhosts = 1;
	} else if (conf.relay_host[0]) {
		snprintf(hosts[0].host, sizeof(hosts[0].host), "%s", conf.relay_host);
		port = conf.relay_port;
		nhosts = 1;
	} else
		nhosts = resolve_mx(dns, g[0].domain, rp.cancel[0], hosts, RESOLVE_MX_MAX, &permanent,
		    err, sizeof(err));
	memset(rc, 0, sizeof(rc));
	for (k = 0; k < n; k++) {
		rc[k].address = g[k].address;
		rc[k].notify = g[k].notify;
		rc[k].orcpt = g[k].orcpt;
	}
	if (nhosts <= 0) {
		char why[sizeof(err)];

		memcpy(why, err, sizeof(why));
		if (nhosts == 0)
			snprintf(err, sizeof(err), "domain %.180s takes no mail (%.40s)", g[0].domain, why);
		else
			snprintf(err, sizeof(err), "DNS lookup of MX %.180s failed: %.40s", g[0].domain, why);
		permanent = nhosts == 0 && permanent;
	} else {
		snprintf(path, sizeof(path), "%s/%s", msg_dir, g[0].qid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			snprintf(err, sizeof(err), "the message file is missing");
	}
	for (i = 0; fd != -1 && i < nhosts && !done && !stopping(); i++) {
		memset(&msg, 0, sizeof(msg));
		msg.helo = helo;
		msg.sender = g[0].sender;
		msg.envid = g[0].envid;
		msg.ret_hdrs = g[0].ret_hdrs;
		msg.smtputf8 = g[0].smtputf8;
		msg.body_fd = fd;
		msg.size = g[0].size;
		msg.rcpts = rc;
		msg.nrcpts = n;
		msg.cancel_fd = &rp.cancel[0];
		msg.resolver = dns;
		if (lseek(fd, 0, SEEK_SET) == -1)
			break;
		permanent = false;
		if (smtp_client_send(hosts[i].host, port, NULL, &to, &msg, &permanent, tls,
		    sizeof(tls), err, sizeof(err)) == SMTPC_DONE) {
			done = true;
			dsn = msg.dsn_offered;
			via = i;
		} else if (permanent)
			break;		/* a 5xx to the whole message: no other host will differ */
	}
	if (fd != -1)
		close(fd);
	if (!done && stopping()) {
		abandon(m, w);
		free(texts);
		return;
	}
	for (k = 0; k < n; k++) {
		codes[k] = done ? rc[k].code : (permanent ? 550 : 0);
		if (done)
			snprintf(texts[k], sizeof(texts[0]), "%d %s%s%s", rc[k].code, rc[k].enhanced,
			    rc[k].enhanced[0] ? " " : "", rc[k].text);
		else
			snprintf(texts[k], sizeof(texts[0]), "%s", err[0] ? err : "delivery failed");
	}
	if (!done)
		tls[0] = '\0';
	outcomes(m, g, n, codes, texts, permanent, nhosts > 0 ? hosts[via].host : g[0].domain, tls,
	    dsn);
	free(texts);
}

/* Claims made by this node before it last stopped or died are dead. */
static void
clear_stale_leases(MYSQL *m)
{
	char sql[800], esc_node[210], esc_epoch[60];

	mysql_real_escape_string(m, esc_node, node_id, strlen(node_id));
	mysql_real_escape_string(m, esc_epoch, rp.epoch, strlen(rp.epoch));
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET lease_owner = '', lease_until = NULL "
	    "WHERE lease_owner LIKE '%s/%%' AND lease_owner NOT LIKE '%s/%s/%%'",
	    esc_node, esc_node, esc_epoch);
	if (exec(m, sql) == -1)
		log_warn("queue: old leases of this node not cleared (%s): they expire", mysql_error(m));
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct due *batch = calloc(REMOTE_BATCH, sizeof(*batch));
	struct resolve *dns = NULL;	/* c-ares channels are not shared between threads */
	MYSQL *m = NULL;
	char err[512];
	bool idle = false, cleared = false;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	mysql_thread_init();
	while (batch != NULL) {
		size_t n;

		pthread_mutex_lock(&rp.lock);
		if (idle && !rp.stopping) {
			uint64_t seen = rp.gen;
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += REMOTE_POLL_MS / 1000;
			while (!rp.stopping && rp.gen == seen)
				if (pthread_cond_timedwait(&rp.cond, &rp.lock, &until) == ETIMEDOUT)
					break;
		}
		if (rp.stopping) {
			pthread_mutex_unlock(&rp.lock);
			break;
		}
		pthread_mutex_unlock(&rp.lock);
		idle = true;
		if (m != NULL && mysql_ping(m) != 0) {
			mysql_close(m);
			m = NULL;
		}
		if (m == NULL && (m = db_connect(&rp.db, false, err, sizeof(err))) == NULL) {
			log_warn("remote worker %u: database unavailable: %s", w->idx, err);
			continue;
		}
		if (dns == NULL && (dns = resolve_new(&conf.dns, err, sizeof(err))) == NULL) {
			log_warn("remote worker %u: no resolver: %s", w->idx, err);
			continue;
		}
		if (!cleared) {
			clear_stale_leases(m);
			cleared = true;
		}
		if ((n = claim(m, w, batch, REMOTE_BATCH)) == 0)
			continue;
		idle = false;
		deliver_group(m, dns, w, batch, n);
		release_slot(w);
		if (rp.done != NULL)
			rp.done();
	}
	free(batch);
	resolve_free(dns);
	if (m)
		mysql_close(m);
	mysql_thread_end();
	return NULL;
}

int
remote_start(const struct db_conf *c, void (*done)(void), char *err, size_t errlen)
{
	unsigned i;

	pthread_mutex_lock(&rp.lock);
	if (rp.running) {
		pthread_mutex_unlock(&rp.lock);
		return 0;
	}
	pthread_mutex_unlock(&rp.lock);
	if (db_conf_copy(&rp.db, c) == -1) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (pipe2(rp.cancel, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		db_conf_free(&rp.db);
		return -1;
	}
	if ((rp.w = calloc(conf.workers, sizeof(*rp.w))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(rp.epoch, sizeof(rp.epoch), "%llx%04x", (unsigned long long)time(NULL),
	    (unsigned)getpid() & 0xffff);
	rp.done = done;
	rp.stopping = false;
	rp.running = true;
	rp.nw = conf.workers;
	for (i = 0; i < rp.nw; i++) {
		rp.w[i].idx = i;
		if ((errno = pthread_create(&rp.w[i].thread, NULL, worker_main, &rp.w[i])) != 0) {
			snprintf(err, errlen, "remote worker: %s", strerror(errno));
			remote_stop();
			return -1;
		}
		rp.w[i].started = true;
	}
	return 0;
fail:
	close(rp.cancel[0]);
	close(rp.cancel[1]);
	rp.cancel[0] = rp.cancel[1] = -1;
	db_conf_free(&rp.db);
	return -1;
}

void
remote_stop(void)
{
	unsigned i;

	pthread_mutex_lock(&rp.lock);
	if (!rp.running) {
		pthread_mutex_unlock(&rp.lock);
		return;
	}
	rp.stopping = true;
	pthread_cond_broadcast(&rp.cond);
	pthread_mutex_unlock(&rp.lock);
	/* Every wait in a hand-over polls this: they all end now. */
	if (write(rp.cancel[1], "x", 1) == -1)
		log_warn("remote: cannot signal the workers: %s", strerror(errno));
	for (i = 0; i < rp.nw; i++)
		if (rp.w[i].started && (errno = pthread_join(rp.w[i].thread, NULL)) != 0)
			log_err("remote worker %u: join: %s", i, strerror(errno));
	free(rp.w);
	rp.w = NULL;
	rp.nw = 0;
	close(rp.cancel[0]);
	close(rp.cancel[1]);
	rp.cancel[0] = rp.cancel[1] = -1;
	db_conf_free(&rp.db);
	pthread_mutex_lock(&rp.lock);
	rp.running = false;
	pthread_mutex_unlock(&rp.lock);
}

void
remote_kick(void)
{
	pthread_mutex_lock(&rp.lock);
	rp.gen++;
	pthread_cond_broadcast(&rp.cond);
	pthread_mutex_unlock(&rp.lock);
}
