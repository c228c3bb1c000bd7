/* svc_http: the `http` service. Webmail is served over https only, so the
 * plain-HTTP port answers every request with a permanent redirect to the
 * same path on the https service. */
#include "svc_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"

static bool
host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':';
}

int
svc_http_location(const char *host, const char *uri, unsigned https_port,
    char *out, size_t outlen)
{
	char name[256];
	size_t len;
	const char *end;
	bool v6 = false;
	int n;

	if (host == NULL || *host == '\0')
		return -1;
	if (*host == '[') {
		/* IPv6 literal: keep the brackets, drop a port after them. */
		struct in6_addr a6;
		char lit[INET6_ADDRSTRLEN + 1];
		size_t llen;

		if ((end = strchr(host, ']')) == NULL)
			return -1;
		llen = (size_t)(end - host) - 1;
		if (llen == 0 || llen >= sizeof(lit))
			return -1;
		memcpy(lit, host + 1, llen);
		lit[llen] = '\0';
		if (inet_pton(AF_INET6, lit, &a6) != 1)
			return -1;
		if (end[1] != '\0') {
			const char *p = end + 1;

			if (*p++ != ':' || *p == '\0')
				return -1;
			for (; *p; p++)
				if (*p < '0' || *p > '9')
					return -1;
		}
		len = (size_t)(end - host) + 1;
		v6 = true;
	} else {
		end = strchr(host, ':');
		len = end ? (size_t)(end - host) : strlen(host);
	}
	if (len == 0 || len >= sizeof(name))
		return -1;
	memcpy(name, host, len);
	name[len] = '\0';
	for (size_t i = v6 ? 1 : 0; i < (v6 ? len - 1 : len); i++)
		if (!host_char_ok(name[i]) || (!v6 && name[i] == ':'))
			return -1;
	if (uri == NULL || uri[0] != '/')
		uri = "/";
	for (const char *p = uri; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return -1;
	if (https_port == 443)
		n = snprintf(out, outlen, "https://%s%s", name, uri);
	else
		n = snprintf(out, outlen, "https://%s:%u%s", name, https_port, uri);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}


#define BAD_HOST	"400 Bad Request: a valid Host header is required\n"

static enum MHD_Result
http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct service *https = service_find("https");
	struct httpd_req *req = *req_cls;
	const char *host;
	char location[2048], body[2200];

	(void)url;
	(void)method;
	(void)version;
	(void)upload;
	(void)cls;
	if (req == NULL)
		return MHD_NO;		/* out of memory: drop the connection */
	/* MHD closes the connection after a response queued in the first
	 * call, so answer from the second one to keep the session alive. */
	if (!req->called) {
		req->called = true;
		return MHD_YES;
	}
	/* Bodies are not wanted; swallow them so keep-alive stays in sync. */
	if (*upload_size != 0) {
		*upload_size = 0;
		return MHD_YES;
	}
	host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (svc_http_location(host, req->uri, https ? https->settings.port : 443,
	    location, sizeof(location)) == -1)
		return httpd_respond(c, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8",
		    BAD_HOST, strlen(BAD_HOST), NULL, NULL);
	snprintf(body, sizeof(body), "Webmail is served over HTTPS: %s\n", location);
	return httpd_respond(c, MHD_HTTP_MOVED_PERMANENTLY, "text/plain; charset=utf-8", body,
	    strlen(body), "Location", location);
}


static int
http_start(struct service *s, char *err, size_t errlen)
{
	struct httpd_ops ops = { .handler = http_handle, .max_body = 65536 };

	return httpd_start(s, &ops, err, errlen);
}

const struct service_handler svc_http_redirect = {
	.start = http_start,
	.stop = httpd_stop,
	/* maxClients is read at every accept; a new timeout needs a restart. */
	.reconfigure = NULL,
};
