/* resolve: the DNS of remote delivery, through c-ares: a domain's MX hosts
 * in preference order, a host's addresses. A lookup runs its channel on
 * the calling thread in a poll() loop that also watches a cancel fd, so a
 * stop ends it at once, and it never takes longer than its bound. */
#ifndef MAILNODE_RESOLVE_H
#define MAILNODE_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define RESOLVE_MX_MAX		10
#define RESOLVE_ADDRS_MAX	16
#define RESOLVE_SERVERS_MAX	4
#define RESOLVE_TIMEOUT_DEFAULT	30	/* seconds for one whole lookup */

struct resolve_conf {
	/* "" for the system's name servers (resolv.conf), else a c-ares server
	 * list: "192.0.2.1:53,[2001:db8::1]:53" (see resolve_add_server). */
	char		 servers[RESOLVE_SERVERS_MAX * 56];
	unsigned	 timeout_s;	/* one whole lookup, every try; 0: the default */
};

struct resolve_mx {
	char		 host[256];
	unsigned	 pref;
};

struct resolve_addrs {
	size_t			 n;
	struct sockaddr_storage	 addr[RESOLVE_ADDRS_MAX];
	socklen_t		 len[RESOLVE_ADDRS_MAX];
};

/* One channel: for one thread at a time (a remote worker keeps its own). */
struct resolve;

struct resolve	*resolve_new(const struct resolve_conf *, char *err, size_t errlen);
void		 resolve_free(struct resolve *);

/* The domain's MX hosts, lowest preference first (equal ones in the order
 * of the answer), at most max. No MX records: the domain itself (RFC 5321
 * 5.1). Returns the count; 0 with *permanent when the domain takes no mail
 * (no such domain, or null MX, RFC 7505); -1 on a temporary failure
 * (timeout, SERVFAIL, a stop through cancel_fd, which may be -1). err says
 * why when the result is not a list of hosts. */
int	 resolve_mx(struct resolve *, const char *domain, int cancel_fd, struct resolve_mx *out,
	    size_t max, bool *permanent, char *err, size_t errlen);

/* Addresses of host (a name or an IP literal) with port set, AAAA and A
 * sorted as RFC 6724 says (IPv6 first where it is reachable). 0, or -1
 * with err: every failure to find an address counts as temporary. */
int	 resolve_host(struct resolve *, const char *host, unsigned port, int cancel_fd,
	    struct resolve_addrs *out, char *err, size_t errlen);

/* c-ares's MX reply list into out: sorted as resolve_mx says. Returns the
 * count, or 0 with *null_mx for a null MX (a single record with the root
 * as its host). */
struct ares_mx_reply;
size_t	 resolve_mx_order(const struct ares_mx_reply *, struct resolve_mx *out, size_t max,
	    bool *null_mx);

/* Add "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT" (a user's --dns-server)
 * to conf->servers. -1 with err for anything else or a full list. */
int	 resolve_add_server(struct resolve_conf *, const char *spec, char *err, size_t errlen);

#endif
