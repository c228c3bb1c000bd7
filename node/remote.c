/* remote: the queue runner's hand-over to other servers. Recipients due for
 * a try are taken message by message and destination by destination; each
 * answer is recorded in the same row the acceptance created. */
#include "remote.h"

#include <arpa/nameser.h>
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bounce.h"
#include "log.h"
#include "smtp_client.h"
#include "smtp_parse.h"
#include "tenant_stats.h"

#define REMOTE_BATCH	200
#define MX_MAX		10

static struct remote_conf	conf;
static char			msg_dir[PATH_MAX];
static char			helo[256];

struct due {
	uint64_t	 rcpt_id, message_id, size, attempts, age;
	char		 qid[32], sender[520], envid[104], address[520], orcpt[270];
	char		 tenant[64];	/* whose mail: counted when sent */
	unsigned	 notify;
	bool		 ret_hdrs, smtputf8;
};

struct mx {
	char		 host[NS_MAXDNAME];
	unsigned	 pref;
};

void
remote_init(const struct remote_conf *c, const char *spool_msg_dir)
{
	conf = *c;
	snprintf(msg_dir, sizeof(msg_dir), "%s", spool_msg_dir);
	if (gethostname(helo, sizeof(helo) - 1) == -1)
		snprintf(helo, sizeof(helo), "localhost");
}

static int
cmp_mx(const void *a, const void *b)
{
	const struct mx *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/* MX hosts by preference; the domain itself when it has none (RFC 5321
 * 5.1). Returns the count, 0 when the domain says it takes no mail (null MX,
 * RFC 7505) or does not exist, -1 on a temporary DNS failure. */
static int
resolve_mx(const char *domain, struct mx *out, size_t max, bool *permanent)
{
	unsigned char answer[NS_PACKETSZ * 8];
	struct __res_state rs;
	ns_msg msg;
	ns_rr rr;
	int len, i, n = 0;

	*permanent = false;
	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0)
		return -1;
	len = res_nquery(&rs, domain, ns_c_in, ns_t_mx, answer, sizeof(answer));
	if (len < 0) {
		int herr = rs.res_h_errno;

		res_nclose(&rs);
		if (herr == HOST_NOT_FOUND) {
			*permanent = true;
			return 0;
		}
		if (herr == NO_DATA) {
			/* No MX: the domain itself is the host. */
			snprintf(out[0].host, sizeof(out[0].host), "%s", domain);
			out[0].pref = 0;
			return 1;
		}
		return -1;
	}
	res_nclose(&rs);
	if (ns_initparse(answer, len, &msg) == -1)
		return -1;
	for (i = 0; i < ns_msg_count(msg, ns_s_an) && (size_t)n < max; i++) {
		const unsigned char *rd;

		if (ns_parserr(&msg, ns_s_an, i, &rr) == -1 || ns_rr_type(rr) != ns_t_mx ||
		    ns_rr_rdlen(rr) < 3)
			continue;
		rd = ns_rr_rdata(rr);
		out[n].pref = ns_get16(rd);
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, out[n].host,
		    sizeof(out[n].host)) < 0)
			continue;
		n++;
	}
	if (n == 1 && (out[0].host[0] == '\0' || strcmp(out[0].host, ".") == 0)) {
		*permanent = true;	/* null MX */
		return 0;
	}
	qsort(out, (size_t)n, sizeof(*out), cmp_mx);
	return n;
}

static int
exec(MYSQL *m, const char *sql)
{
	return mysql_real_query(m, sql, strlen(sql)) == 0 ? 0 : -1;
}

static size_t
fetch(MYSQL *m, struct due *out, size_t max)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	char sql[900];
	size_t n = 0;

	snprintf(sql, sizeof(sql), "SELECT r.id, m.id, m.size, r.attempts, "
	    "TIMESTAMPDIFF(SECOND, m.received_at, NOW()), m.qid, m.sender, m.envid, r.address, "
	    "r.orcpt, r.notify, m.ret_hdrs, m.smtputf8, "
	    "COALESCE((SELECT t.name FROM tenants t WHERE t.id = m.tenant_id), '') "
	    "FROM queue_recipients r JOIN queue_messages m ON m.id = r.message_id "
	    "WHERE r.mailbox_id IS NULL AND r.state IN ('queued', 'deferred') "
	    "AND r.next_attempt <= NOW() AND m.held = FALSE ORDER BY m.id, "
	    "SUBSTRING_INDEX(r.address, '@', -1), r.id LIMIT %zu", max);
	if (exec(m, sql) == -1 || (res = mysql_store_result(m)) == NULL)
		return 0;
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
	}
	mysql_free_result(res);
	return n;
}

static const char *
domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

static void
record(MYSQL *m, const struct due *d, const char *state, uint64_t delay, const char *why)
{
	char sql[1600], esc[1100];

	mysql_real_escape_string(m, esc, why, strnlen(why, 500));
	snprintf(sql, sizeof(sql), "UPDATE queue_recipients SET state = '%s', attempts = attempts + 1, "
	    "next_attempt = NOW() + INTERVAL %" PRIu64 " SECOND, last_error = '%s' WHERE id = %" PRIu64,
	    state, delay, esc, d->rcpt_id);
	if (exec(m, sql) == -1)
		log_err("queue: cannot record the outcome for %s: %s", d->qid, mysql_error(m));
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
		return;		/* out of memory: they stay due and come back */
	}
	for (i = 0; i < n; i++) {
		if (g[i].notify && !(g[i].notify & SMTP_NOTIFY_FAILURE))
			continue;
		snprintf(status[k], sizeof(status[k]), "%s", codes[i] >= 500 ? "5.0.0" : "4.4.7");
		/* "550 5.1.1 text": take the server's enhanced code when it gave one. */
		if (texts[i][0] >= '2' && texts[i][0] <= '5' && texts[i][3] == ' ' &&
		    isdigit((unsigned char)texts[i][4]) && texts[i][5] == '.')
			snprintf(status[k], sizeof(status[k]), "%.*s", (int)strcspn(texts[i] + 4, " "),
			    texts[i] + 4);
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
		    .ret_hdrs = g[0].ret_hdrs, .spool_msg_dir = msg_dir, .rcpts = br, .nrcpts = k };

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

static uint64_t
backoff(uint64_t attempts)
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

/* One message to one destination: every recipient gets an outcome. */
static void
deliver_group(MYSQL *m, struct due *g, size_t n)
{
	struct smtp_client_rcpt rc[REMOTE_BATCH];
	struct smtp_client_msg msg;
	struct smtp_client_timeouts to = { 30, conf.timeout, conf.timeout };
	struct mx hosts[MX_MAX];
	int codes[REMOTE_BATCH], nhosts, i, fd = -1;
	char (*texts)[300] = calloc(n, sizeof(*texts));
	char path[PATH_MAX + 64], err[256] = "", tls[64];
	bool permanent = false, done = false;
	size_t k;

	if (texts == NULL)
		return;
	if (conf.relay_host[0]) {
		snprintf(hosts[0].host, sizeof(hosts[0].host), "%s", conf.relay_host);
		nhosts = 1;
	} else
		nhosts = resolve_mx(domain_of(g[0].address), hosts, MX_MAX, &permanent);
	memset(rc, 0, sizeof(rc));
	for (k = 0; k < n; k++) {
		rc[k].address = g[k].address;
		rc[k].notify = g[k].notify;
		rc[k].orcpt = g[k].orcpt;
	}
	if (nhosts <= 0) {
		snprintf(err, sizeof(err), nhosts == 0 ? "domain %s takes no mail (no such domain or "
		    "null MX)" : "DNS lookup of %s failed", domain_of(g[0].address));
		permanent = nhosts == 0 && permanent;
	} else {
		snprintf(path, sizeof(path), "%s/%s", msg_dir, g[0].qid);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
			snprintf(err, sizeof(err), "the message file is missing");
	}
	for (i = 0; fd != -1 && i < nhosts && !done; i++) {
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
		if (lseek(fd, 0, SEEK_SET) == -1)
			break;
		permanent = false;
		if (smtp_client_send(hosts[i].host, conf.relay_host[0] ? conf.relay_port : 25, NULL,
		    &to, &msg, &permanent, tls, sizeof(tls), err, sizeof(err)) == SMTPC_DONE)
			done = true;
		else if (permanent)
			break;		/* a 5xx to the whole message: no other host will differ */
	}
	if (fd != -1)
		close(fd);
	for (k = 0; k < n; k++) {
		codes[k] = done ? rc[k].code : (permanent ? 550 : 0);
		if (done)
			snprintf(texts[k], sizeof(texts[0]), "%d %s%s%s", rc[k].code, rc[k].enhanced,
			    rc[k].enhanced[0] ? " " : "", rc[k].text);
		else
			snprintf(texts[k], sizeof(texts[0]), "%s", err[0] ? err : "delivery failed");
	}
	/* Delivered, or to try again, or failed for good. */
	{
		struct due *failed = calloc(n, sizeof(*failed));
		int *fcodes = calloc(n, sizeof(*fcodes));
		char (*ftexts)[300] = calloc(n, sizeof(*ftexts));
		size_t nf = 0, sent = 0;

		for (k = 0; k < n; k++) {
			bool perm = codes[k] >= 500 || (codes[k] == 0 && permanent);

			if (codes[k] >= 200 && codes[k] < 300) {
				record(m, &g[k], "delivered", 0, "");
				sent++;
				log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "spool" },
				    "%s: handed over to %s%s%s", g[k].qid, hosts[0].host,
				    done && tls[0] ? " over " : "", done && tls[0] ? tls : "");
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
				}
			} else
				record(m, &g[k], "deferred", backoff(g[k].attempts), texts[k]);
		}
		remote_count_sent(&g[0], sent);
		if (nf > 0)
			fail_group(m, failed, nf, fcodes, ftexts);
		free(failed);
		free(fcodes);
		free(ftexts);
	}
	free(texts);
}

size_t
remote_deliver_due(MYSQL *m)
{
	struct due *batch = calloc(REMOTE_BATCH, sizeof(*batch));
	size_t n, i, start;

	if (batch == NULL)
		return 0;
	n = fetch(m, batch, REMOTE_BATCH);
	for (start = 0, i = 1; i <= n; i++) {
		/* A group: the same message and (without a relay) the same domain. */
		if (i < n && batch[i].message_id == batch[start].message_id &&
		    (conf.relay_host[0] || strcasecmp(domain_of(batch[i].address),
		    domain_of(batch[start].address)) == 0))
			continue;
		deliver_group(m, &batch[start], i - start);
		start = i;
	}
	free(batch);
	return n;
}
