/* stats_api: monitoring figures. Holdings (mailboxes, storage, queue) come
 * from MariaDB in one job; live counters (traffic, logins, connections) from
 * memory (tenant_stats, the access engine), merged into the same answer. */
#include "stats_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "authguard.h"
#include "db.h"
#include "lookup.h"
#include "tenant_access.h"
#include "tenant_stats.h"
#include "yamlw.h"
#include "ydoc.h"

enum stats_what { STATS_NODE, STATS_TENANTS };

struct stats_job {
	enum stats_what		 what;
	struct api_request	*r;
	int			 status;
	struct buf		 out;
};

static int
query(MYSQL *m, const char *sql, MYSQL_RES **res)
{
	if (mysql_real_query(m, sql, strlen(sql)) != 0 || (*res = mysql_store_result(m)) == NULL)
		return -1;
	return 0;
}

static uint64_t
num(const char *s)
{
	return s ? strtoull(s, NULL, 10) : 0;
}

static void
write_counters(struct yamlw *w, const uint64_t v[TENANT_STAT_COUNT])
{
	int i;

	for (i = 0; i < TENANT_STAT_COUNT; i++)
		yamlw_ku64(w, tenant_stats_name(i), v[i]);
}

static int
node_stats(MYSQL *m, struct yamlw *w)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	uint64_t v[TENANT_STAT_COUNT], failures, blocks;
	uint64_t queued[2] = { 0, 0 }, deferred[2] = { 0, 0 };	/* [local, remote] recipients */

	yamlw_doc(w);
	yamlw_map(w);
	yamlw_kstr(w, "apiVersion", "mailnode/v1");
	yamlw_kstr(w, "kind", "NodeStats");
	if (query(m, "SELECT v FROM node_meta WHERE k = 'config_generation'", &res) == -1)
		return -1;
	row = mysql_fetch_row(res);
	yamlw_ku64(w, "configGeneration", row ? num(row[0]) : 0);
	mysql_free_result(res);

	if (query(m, "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(TIMESTAMPDIFF(SECOND, "
	    "MIN(received_at), NOW(6)), 0), COALESCE(SUM(held), 0) FROM queue_messages", &res) == -1)
		return -1;
	row = mysql_fetch_row(res);
	yamlw_str(w, "queue");
	yamlw_map(w);
	yamlw_ku64(w, "messages", row ? num(row[0]) : 0);
	yamlw_ku64(w, "bytes", row ? num(row[1]) : 0);
	yamlw_ku64(w, "oldestAge", row ? num(row[2]) : 0);
	yamlw_ku64(w, "held", row ? num(row[3]) : 0);
	mysql_free_result(res);
	if (query(m, "SELECT mailbox_id IS NULL, state, COUNT(*) FROM queue_recipients WHERE "
	    "state IN ('queued', 'deferred') GROUP BY 1, 2", &res) == -1)
		return -1;
	while ((row = mysql_fetch_row(res)) != NULL) {
		int remote = strcmp(row[0], "1") == 0;

		if (strcmp(row[1], "deferred") == 0)
			deferred[remote] += num(row[2]);
		else
			queued[remote] += num(row[2]);
	}
	mysql_free_result(res);
	yamlw_ku64(w, "deferred", deferred[0] + deferred[1]);
	yamlw_ku64(w, "localRecipients", queued[0] + deferred[0]);
	yamlw_ku64(w, "remoteRecipients", queued[1] + deferred[1]);
	yamlw_map_end(w);

	tenant_stats_totals(v);
	yamlw_str(w, "traffic");
	yamlw_map(w);
	write_counters(w, v);
	yamlw_map_end(w);
	authguard_totals(&failures, &blocks);
	yamlw_str(w, "logins");
	yamlw_map(w);
	yamlw_ku64(w, "failures", failures);
	yamlw_ku64(w, "blocks", blocks);
	yamlw_map_end(w);
	yamlw_map_end(w);
	return 0;
}

/* A size of the canonical spec ("10GiB", "1048576"; NULL: none) in bytes. */
static uint64_t
size_of(const char *s)
{
	uint64_t v = 0;

	if (s == NULL || lookup_size(s, &v) == -1)
		return 0;
	return v;
}

static const struct tenant_access_counts *
find_counts(const struct tenant_access_counts *t, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	/* tenant_access_snapshot lists in name order. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, t[mid].name);

		if (c == 0)
			return &t[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
tenant_stats_list(MYSQL *m, struct yamlw *w)
{
	MYSQL_RES *res;
	MYSQL_ROW row;
	struct tenant_access_counts *ac = NULL;
	size_t nac = 0;

	if (query(m, "SELECT t.id, t.name, t.state, JSON_VALUE(t.spec, '$.limits.domains'), "
	    "JSON_VALUE(t.spec, '$.limits.mailboxes'), JSON_VALUE(t.spec, '$.limits.aliases'), "
	    "JSON_VALUE(t.spec, '$.limits.storage'), JSON_VALUE(t.spec, '$.limits.messageSize'), "
	    "JSON_EXTRACT(t.spec, '$.access'), COALESCE(d.n, 0), COALESCE(x.n, 0), "
	    "COALESCE(x.used, 0), COALESCE(a.n, 0) FROM tenants t "
	    "LEFT JOIN (SELECT tenant_id, COUNT(*) n FROM domains GROUP BY tenant_id) d "
	    "ON d.tenant_id = t.id "
	    "LEFT JOIN (SELECT tenant_id, COUNT(*) n, SUM(used_bytes) used FROM mailboxes "
	    "GROUP BY tenant_id) x ON x.tenant_id = t.id "
	    "LEFT JOIN (SELECT tenant_id, COUNT(*) n FROM aliases GROUP BY tenant_id) a "
	    "ON a.tenant_id = t.id ORDER BY t.id", &res) == -1)
		return -1;
	if (tenant_access_snapshot(&ac, &nac) == -1) {
		mysql_free_result(res);
		return -1;
	}
	yamlw_doc(w);
	yamlw_map(w);
	yamlw_kstr(w, "apiVersion", "mailnode/v1");
	yamlw_kstr(w, "kind", "TenantStatsList");
	yamlw_str(w, "items");
	yamlw_seq(w);
	while ((row = mysql_fetch_row(res)) != NULL) {
		const struct tenant_access_counts *c = find_counts(ac, nac, row[1]);
		uint64_t v[TENANT_STAT_COUNT];
		struct ydoc_stream *st = NULL;
		char err[128];

		tenant_stats_get(row[1], v);
		yamlw_map(w);
		yamlw_ku64(w, "id", num(row[0]));
		yamlw_kstr(w, "name", row[1]);
		yamlw_kstr(w, "state", row[2]);
		yamlw_str(w, "limits");
		yamlw_map(w);
		yamlw_ku64(w, "domains", num(row[3]));
		yamlw_ku64(w, "mailboxes", num(row[4]));
		yamlw_ku64(w, "aliases", num(row[5]));
		yamlw_ku64(w, "storage", size_of(row[6]));
		yamlw_ku64(w, "messageSize", size_of(row[7]));
		yamlw_map_end(w);
		yamlw_str(w, "access");
		if (row[8] && ydoc_parse(row[8], strlen(row[8]), &st, err, sizeof(err)) == 0 &&
		    st->ndocs == 1)
			yamlw_node(w, st->docs[0]);
		else
			yamlw_null(w);
		ydoc_free(st);
		yamlw_ku64(w, "domains", num(row[9]));
		yamlw_ku64(w, "mailboxes", num(row[10]));
		yamlw_ku64(w, "storageUsed", num(row[11]));
		yamlw_ku64(w, "aliases", num(row[12]));
		write_counters(w, v);
		yamlw_ku64(w, "rejectedConnections", c ? c->counts.rejected_access +
		    c->counts.rejected_limit : 0);
		yamlw_ku64(w, "currentSessions", c ? c->counts.current : 0);
		yamlw_map_end(w);
	}
	yamlw_seq_end(w);
	yamlw_map_end(w);
	free(ac);
	mysql_free_result(res);
	return 0;
}

static int
stats_job_run(MYSQL *m, void *arg)
{
	struct stats_job *j = arg;
	struct yamlw w;
	int rc;

	yamlw_begin(&w, &j->out);
	rc = j->what == STATS_NODE ? node_stats(m, &w) : tenant_stats_list(m, &w);
	if (yamlw_end(&w) == -1 && rc == 0) {
		j->status = 500;
		api_error_doc(&j->out, 500, "could not write the answer");
		return 0;
	}
	j->status = rc == 0 ? 200 : 503;
	return rc;
}

static void
stats_job_done(void *arg, int result)
{
	struct stats_job *j = arg;
	struct api_request *r = j->r;

	if (result == -1 || j->status == 503)
		api_reply_error(r, 503, "database unavailable; try again");
	else {
		buf_reset(&r->out);
		if (buf_append(&r->out, buf_data(&j->out), buf_len(&j->out)) == -1)
			api_reply_error(r, 500, "out of memory");
		else
			api_reply(r, j->status);
	}
	buf_free(&j->out);
	free(j);
}

bool
stats_api_handle(struct api_request *r)
{
	struct stats_job *j;
	enum stats_what what;

	if (strcmp(r->path, "/v1/stats") == 0)
		what = STATS_NODE;
	else if (strcmp(r->path, "/v1/stats/tenants") == 0)
		what = STATS_TENANTS;
	else
		return false;
	if (r->scope[0]) {
		api_reply_error(r, 403, "this token is limited to tenant '%s'", r->scope);
		return true;
	}
	if (strcmp(r->method, "GET") != 0) {
		api_reply_error(r, 405, "%s is not allowed on %s", r->method, r->path);
		return true;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		api_reply_error(r, 500, "out of memory");
		return true;
	}
	j->what = what;
	j->r = r;
	buf_init(&j->out, 0);
	if (db_submit(stats_job_run, stats_job_done, j) == -1) {
		buf_free(&j->out);
		free(j);
		api_reply_error(r, 503, "database workers unavailable");
	}
	return true;
}
