/* svc_admin: HTTPS in, the API router behind. A request is read whole,
 * suspended while its token is checked and the router works (both on the
 * database workers), and resumed with the answer. */
#include "svc_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "canon.h"
#include "db.h"
#include "directory.h"
#include "httpd.h"
#include "log.h"
#include "prov_api.h"
#include "ydoc.h"

#define ADMIN_MAX_BODY	(64 * 1024 * 1024)

static char *tls_cert, *tls_key;

/* One API call in flight: lives in the MHD request (httpd_req->app). */
struct admin_call {
	struct MHD_Connection	*conn;
	struct api_request	 r;
	char			 token_sha[65];
	bool			 json;
	bool			 done;		/* answer ready: queue it when resumed */
	int			 status;
	struct buf		 answer;
	const char		*challenge;	/* WWW-Authenticate on 401 */
};

static void
call_free(void *p)
{
	struct admin_call *c = p;

	buf_free(&c->r.out);
	buf_free(&c->answer);
	free(c);
}

/* YAML documents -> JSON: one document as an object, several as an array. */
static int
to_json(const struct buf *yaml, struct buf *out)
{
	struct ydoc_stream *st = NULL;
	char err[256];
	size_t i;
	int rc = -1;

	if (ydoc_parse(buf_data(yaml) ? buf_data(yaml) : "", buf_len(yaml), &st, err, sizeof(err)) == -1)
		return -1;
	if (st->ndocs != 1 && buf_puts(out, "[") == -1)
		goto done;
	for (i = 0; i < st->ndocs; i++)
		if ((i && buf_puts(out, ",") == -1) || canon_node_json("", st->docs[i], "", out) == -1)
			goto done;
	if (st->ndocs != 1 && buf_puts(out, "]") == -1)
		goto done;
	rc = buf_puts(out, "\n");
done:
	ydoc_free(st);
	return rc;
}

static void
finish(struct admin_call *c, int status, const struct buf *yaml)
{
	c->status = status;
	buf_reset(&c->answer);
	if (c->json) {
		if (to_json(yaml, &c->answer) == -1) {
			buf_reset(&c->answer);
			buf_printf(&c->answer, "{\"kind\":\"Error\",\"code\":500,"
			    "\"message\":\"could not convert the answer to JSON\"}\n");
			c->status = 500;
		}
	} else
		buf_append(&c->answer, buf_data(yaml), buf_len(yaml));
	c->done = true;
	httpd_resume(c->conn);
}

static void
api_replied(struct api_request *r)
{
	struct admin_call *c = r->transport;

	finish(c, r->status, &r->out);
}

static int
token_job(MYSQL *m, void *arg)
{
	struct admin_call *c = arg;
	char err[256];
	int found = dir_token_scope(m, c->token_sha, c->r.scope, sizeof(c->r.scope), err, sizeof(err));

	if (found == -1)
		return -1;
	c->status = found ? 200 : 401;
	return 0;
}

static void
fail_yaml(struct admin_call *c, int status, const char *msg)
{
	struct buf y;

	buf_init(&y, 0);
	buf_printf(&y, "apiVersion: mailnode/v1\nkind: Error\ncode: %d\nmessage: \"%s\"\n", status, msg);
	finish(c, status, &y);
	buf_free(&y);
}

static void
token_done(void *arg, int result)
{
	struct admin_call *c = arg;

	if (result == -1) {
		fail_yaml(c, 503, "database unavailable; try again");
		return;
	}
	if (c->status == 401) {
		c->challenge = "Bearer error=\"invalid_token\"";
		fail_yaml(c, 401, "unknown token");
		return;
	}
	api_handle(&c->r);
}

static enum MHD_Result
queue_answer(struct admin_call *c)
{
	return httpd_respond(c->conn, (unsigned)c->status,
	    c->json ? "application/json" : "application/yaml; charset=utf-8",
	    buf_data(&c->answer) ? buf_data(&c->answer) : "", buf_len(&c->answer),
	    c->challenge ? "WWW-Authenticate" : NULL, c->challenge);
}

static enum MHD_Result
admin_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct httpd_req *req = *req_cls;
	struct admin_call *c;
	const char *auth, *accept;
	char line[600];
	int n;

	(void)cls;
	(void)url;
	(void)version;
	if (req == NULL)
		return MHD_NO;
	if (!req->called) {
		req->called = true;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		/* Over the limit the rest is dropped and the call refused below. */
		if (buf_append(&req->body, upload, *upload_size) == -1)
			req->app = (void *)-1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (req->app == (void *)-1) {
		req->app = NULL;
		return httpd_respond(conn, 413, "application/yaml", "kind: Error\ncode: 413\n"
		    "message: the request body is over 64 MiB\n", 56, NULL, NULL);
	}
	if ((c = req->app) != NULL)
		return c->done ? queue_answer(c) : MHD_YES;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MHD_NO;
	req->app = c;
	req->free_app = call_free;
	c->conn = conn;
	buf_init(&c->answer, 0);
	accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	c->json = accept != NULL && strstr(accept, "application/json") != NULL;

	/* The router's request line: method, path and query as received. */
	n = snprintf(line, sizeof(line), "%s %s", method, req->uri);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    api_parse_request_line(&c->r, line, (size_t)n) == -1) {
		c->status = 400;
		buf_puts(&c->answer, "apiVersion: mailnode/v1\nkind: Error\ncode: 400\n"
		    "message: bad request line or URI too long\n");
		c->done = true;
		return queue_answer(c);
	}
	c->r.body = &req->body;
	c->r.reply = api_replied;
	c->r.transport = c;
	c->r.local = false;
	c->r.accept = c->json ? "application/json" : "application/yaml";

	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0' ||
	    strlen(auth + 7) > 200 || prov_token_hash(auth + 7, c->token_sha) == -1) {
		c->status = 401;
		c->challenge = "Bearer";
		buf_puts(&c->answer, "apiVersion: mailnode/v1\nkind: Error\ncode: 401\n"
		    "message: \"send Authorization: Bearer TOKEN (mailnodectl token create)\"\n");
		if (c->json) {
			struct buf y = c->answer;

			buf_init(&c->answer, 0);
			to_json(&y, &c->answer);
			buf_free(&y);
		}
		c->done = true;
		return queue_answer(c);
	}
	/* The answer comes from the database workers: hold the connection.
	 * Their completion runs on this loop after this call returns, so
	 * suspending after submitting is safe. */
	if (db_submit(token_job, token_done, c) == -1) {
		c->status = 503;
		buf_puts(&c->answer, "apiVersion: mailnode/v1\nkind: Error\ncode: 503\n"
		    "message: database workers unavailable\n");
		c->done = true;
		return queue_answer(c);
	}
	MHD_suspend_connection(conn);
	return MHD_YES;
}

static int
admin_start(struct service *s, char *err, size_t errlen)
{
	struct httpd_ops ops = { .handler = admin_handle, .tls_cert_pem = tls_cert,
	    .tls_key_pem = tls_key, .suspend_resume = true, .max_body = ADMIN_MAX_BODY };

	if (tls_cert == NULL || tls_key == NULL) {
		snprintf(err, errlen, "no TLS certificate for the admin service");
		return -1;
	}
	return httpd_start(s, &ops, err, errlen);
}

const struct service_handler svc_admin_api = {
	.start = admin_start,
	.stop = httpd_stop,
	.reconfigure = NULL,
};

static char *
slurp(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	struct buf b;
	char chunk[4096];
	size_t n;
	char *out;

	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot read", path);
		return NULL;
	}
	buf_init(&b, 1024 * 1024);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(&b, chunk, n) == -1)
			break;
	fclose(f);
	explicit_bzero(chunk, sizeof(chunk));
	out = strdup(buf_cstr(&b));
	explicit_bzero(buf_data(&b) ? buf_data(&b) : chunk, buf_len(&b));
	buf_free(&b);
	if (out == NULL)
		snprintf(err, errlen, "out of memory");
	return out;
}

int
svc_admin_load_tls(const char *certfile, const char *keyfile, char *err, size_t errlen)
{
	if ((tls_cert = slurp(certfile, err, errlen)) == NULL ||
	    (tls_key = slurp(keyfile, err, errlen)) == NULL)
		return -1;
	return 0;
}

void
svc_admin_free_tls(void)
{
	free(tls_cert);
	if (tls_key) {
		explicit_bzero(tls_key, strlen(tls_key));
		free(tls_key);
	}
	tls_cert = tls_key = NULL;
}
