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

#include "genwatch.h"
#include "log.h"

#define DIGEST_LEN	32		/* SHA-256 */

struct td_job {
	unsigned char		 known_digest[DIGEST_LEN];
	bool			 force;		/* nothing installed yet */
	bool			 changed;	/* set holds the new certificates */
	unsigned char		 digest[DIGEST_LEN];
	struct tls_sni_set	*set;
};

static struct {
	struct tls_creds	*creds;
	unsigned char		 digest[DIGEST_LEN];
	bool			 installed;
	size_t			 count;
	struct genwatch		 watch;
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

/* Worker, once the generation moved: read every pair; parse them when
 * something differs. */
static int
load_job(MYSQL *m, void *arg)
{
	struct td_job *j = arg;
	gnutls_hash_hd_t h = NULL;
	MYSQL_RES *res = NULL;
	MYSQL_ROW row;
	unsigned long *len;
	char err[256];

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

static void *
job_new(void *owner)
{
	struct td_job *j = calloc(1, sizeof(*j));

	(void)owner;
	if (j == NULL)
		return NULL;
	memcpy(j->known_digest, td.digest, DIGEST_LEN);
	j->force = !td.installed;
	return j;
}

static void
job_done(void *owner, void *arg, int result)
{
	struct td_job *j = arg;

	(void)owner;
	if (result == 1 && j->changed) {
		td.count = tls_sni_set_count(j->set);
		memcpy(td.digest, j->digest, DIGEST_LEN);
		tls_creds_set_sni(td.creds, j->set);
		td.installed = true;
		j->set = NULL;
		log_event(LOG_LVL_INFO, &(struct log_ctx){ .service = "tls" },
		    "%zu domain certificate%s loaded", td.count, td.count == 1 ? "" : "s");
	}
	tls_sni_set_unref(j->set);
	free(j);
}

void
tls_domains_start(struct tls_creds *creds)
{
	if (creds == NULL)
		return;
	td.creds = creds;
	td.watch.job_new = job_new;
	td.watch.load = load_job;
	td.watch.job_done = job_done;
	genwatch_start(&td.watch);
}

void
tls_domains_stop(void)
{
	genwatch_stop(&td.watch);
}

void
tls_domains_reload(void)
{
	genwatch_kick(&td.watch);
}

size_t
tls_domains_count(void)
{
	return td.count;
}
