/* tls_domains: a database worker reads every domain's certificate and key
 * when the configuration generation moves, and builds a new SNI set only
 * when their digest changed (parsing keys is the expensive part); loop 0
 * installs it with tls_creds_set_sni, which leaves handshakes in flight
 * on the set they started with. */
#include "tls_domains.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "db.h"
#include "log.h"
#include "loop.h"

#define POLL_MS		1000
#define DIGEST_LEN	32		/* SHA-256 */

struct td_job {
	uint64_t		 known_gen;
	unsigned char		 known_digest[DIGEST_LEN];
	bool			 force;
	uint64_t		 gen;
	bool			 changed;	/* set holds the new certificates */
	unsigned char		 digest[DIGEST_LEN];
	struct tls_sni_set	*set;
};

static struct {
	struct tls_creds	*creds;
	uint64_t		 gen;
	unsigned char		 digest[DIGEST_LEN];
	bool			 loaded;
	size_t			 count;
	bool			 inflight, again, stopping, started;
	struct loop		*loop;
	struct loop_timer	 timer;
} td;

static MYSQL_RES *
query(MYSQL *m, const char *sql)
{
	if (mysql_query(m, sql) != 0)
		return NULL;
	return mysql_store_result(m);
}

/* Length-prefixed, so two rows cannot digest like one. */
static int
digest_field(gnutls_hash_hd_t h, const char *s)
{
	uint32_t n = (uint32_t)(s ? strlen(s) : 0);

	if (gnutls_hash(h, &n, sizeof(n)) < 0)
		return -1;
	return n > 0 ? gnutls_hash(h, s, n) : 0;
}

/* Worker: read every pair; parse them when something differs. */
static int
load_job(MYSQL *m, void *arg)
{
	struct td_job *j = arg;
	gnutls_hash_hd_t h = NULL;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	unsigned long *len;
	char err[256];

	if ((res = query(m, "SELECT v FROM node_meta WHERE k = 'config_generation'")) == NULL)
		return -1;
	row = mysql_fetch_row(res);
	j->gen = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(res);
	if (!j->force && j->gen == j->known_gen)
		return 0;
	/* JSON_UNQUOTE(JSON_EXTRACT()): JSON_VALUE would cut a long chain. */
	if ((res = query(m, "SELECT name, JSON_UNQUOTE(JSON_EXTRACT(spec, '$.tls.certificate')), tls_key "
	    "FROM domains WHERE tls_key IS NOT NULL AND JSON_EXTRACT(spec, '$.tls.certificate') IS NOT NULL "
	    "ORDER BY name")) == NULL)
		return -1;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		goto fail;
	while ((row = mysql_fetch_row(res)) != NULL)
		if (digest_field(h, row[0]) < 0 || digest_field(h, row[1]) < 0 ||
		    digest_field(h, row[2]) < 0)
			goto fail;
	gnutls_hash_deinit(h, j->digest);
	h = NULL;
	if (!j->force && memcmp(j->digest, j->known_digest, DIGEST_LEN) == 0)
		goto done;
	if ((j->set = tls_sni_set_new()) == NULL)
		goto fail;
	mysql_data_seek(res, 0);
	while ((row = mysql_fetch_row(res)) != NULL) {
		len = mysql_fetch_lengths(res);
		if (row[1] == NULL || row[2] == NULL)
			continue;
		/* Apply checks the pair; one stored before that, or damaged,
		 * costs its domain the certificate and nothing else. */
		if (tls_sni_set_add(j->set, row[1], row[2], err, sizeof(err)) == -1)
			log_event(LOG_LVL_ERR, &(struct log_ctx){ .service = "tls" },
			    "domain %s: certificate not loaded: %s", row[0], err);
		gnutls_memset(row[2], 0, len[2]);	/* no key left in freed memory */
	}
	j->changed = true;
done:
	mysql_free_result(res);
	return 0;
fail:
	if (h != NULL)
		gnutls_hash_deinit(h, NULL);
	mysql_free_result(res);
	tls_sni_set_unref(j->set);
	j->set = NULL;
	return -1;
}

static void submit(void);

static void
load_done(void *arg, int result)
{
	struct td_job *j = arg;

	td.inflight = false;
	if (result == 0) {
		td.gen = j->gen;
		if (j->changed && !td.stopping) {
			td.count = tls_sni_set_count(j->set);
			memcpy(td.digest, j->digest, DIGEST_LEN);
			tls_creds_set_sni(td.creds, j->set);
			j->set = NULL;
			log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "tls" },
			    "%zu domain certificate%s loaded", td.count, td.count == 1 ? "" : "s");
		}
		td.loaded = true;
	}
	tls_sni_set_unref(j->set);
	free(j);
	if (td.again && !td.stopping) {
		td.again = false;
		submit();
	}
}

static void
submit(void)
{
	struct td_job *j;

	if (td.inflight) {
		td.again = true;
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->known_gen = td.gen;
	memcpy(j->known_digest, td.digest, DIGEST_LEN);
	j->force = !td.loaded;
	td.inflight = true;
	if (db_submit(load_job, load_done, j) == -1) {
		td.inflight = false;
		free(j);
	}
}

static void
tick(struct loop_timer *t)
{
	if (td.stopping)
		return;
	submit();
	loop_timer_start(td.loop, t, POLL_MS);
}

void
tls_domains_start(struct tls_creds *creds)
{
	if (creds == NULL)
		return;
	td.creds = creds;
	td.loop = loop_current();
	td.timer.cb = tick;
	td.started = true;
	submit();
	loop_timer_start(td.loop, &td.timer, POLL_MS);
}

void
tls_domains_stop(void)
{
	if (!td.started)
		return;
	td.stopping = true;
	loop_timer_stop(td.loop, &td.timer);
}

void
tls_domains_reload(void)
{
	if (!td.started || td.stopping)
		return;
	td.gen = 0;	/* whatever the database says now differs */
	submit();
}

size_t
tls_domains_count(void)
{
	return td.count;
}
