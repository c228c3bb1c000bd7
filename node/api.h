/* api: the node's request router, one for every transport (the control
 * socket now, the admin HTTPS service with the provisioning work). A request
 * is a method, a path and a YAML body; the answer is a status code and YAML
 * documents. */
#ifndef MAILNODE_API_H
#define MAILNODE_API_H

#include <stdbool.h>
#include <time.h>

#include "buf.h"

struct api_request {
	char	  method[8];
	char	  path[256];
	char	  query[256];
	struct buf *body;
	const char *accept;	/* "application/json" for JSON answers, else YAML */
	/* Who asks: the control socket is the node's own admin (everything);
	 * an admin API token may be limited to one tenant. */
	bool	  local;
	char	  scope[64];	/* tenant the caller is limited to; "" for all */
	/* Filled by the handler. */
	int	  status;
	struct buf out;
	/* The transport sends out with status, then frees the request. */
	void	(*reply)(struct api_request *);
	void	 *transport;
};

/* What the node reports about itself in status. */
struct api_node_info {
	const char	*version;
	time_t		 started;
	unsigned	 loops;
	const char	*database;	/* "embedded" or "external" */
	const char	*state_dir;
};

void	 api_set_node_info(const struct api_node_info *);
/* Parse "METHOD /path?query" into the request; -1 if malformed. */
int	 api_parse_request_line(struct api_request *, const char *line, size_t len);
/* Handle the request; calls req->reply exactly once (maybe later). */
void	 api_handle(struct api_request *);
/* Write an Error document (apiVersion, kind: Error, code, message) into out. */
void	 api_error_doc(struct buf *out, int status, const char *message);
/* Answer with an Error document. */
void	 api_reply_error(struct api_request *, int status, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Answer with r->out as it is. */
void	 api_reply(struct api_request *, int status);
/* Value of key in "a=1&b=2"; -1 when absent. */
int	 api_query_get(const char *query, const char *key, char *out, size_t outlen);

#endif
