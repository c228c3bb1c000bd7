/* httpd: libmicrohttpd daemons on a service's own listening sockets, polled
 * from loop 0 through MHD's epoll descriptor; sessions listed and counted,
 * maxClients enforced, stop with or without drain. The http (redirect) and
 * admin (provisioning API) services are handlers on top of it. */
#ifndef MAILNODE_HTTPD_H
#define MAILNODE_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "service.h"

/* Per request: the raw URI (query included, which the access handler does
 * not get), whether the handler ran once, the body, and the handler's own
 * state (freed with free_app when the request ends). */
struct httpd_req {
	bool		  called;
	struct buf	  body;
	void		 *app;
	void		(*free_app)(void *);
	char		  uri[];
};

struct httpd_ops {
	/* Called with *req_cls pointing to the struct httpd_req. */
	MHD_AccessHandlerCallback handler;
	void		*handler_cls;
	const char	*tls_cert_pem;	/* both NULL: plain HTTP */
	const char	*tls_key_pem;
	bool		 suspend_resume;
	size_t		 max_body;
};

int	 httpd_start(struct service *, const struct httpd_ops *, char *err, size_t errlen);
void	 httpd_stop(struct service *, bool drain);
/* Resume a suspended connection and let its daemon run now (in external
 * polling mode nothing else would wake it). Loop 0. */
void	 httpd_resume(struct MHD_Connection *);
/* Queue a small text or YAML/JSON answer. */
enum MHD_Result httpd_respond(struct MHD_Connection *, unsigned code, const char *type,
	    const char *body, size_t len, const char *hdr_name, const char *hdr_value);

#endif
