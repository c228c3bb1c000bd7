/* resolve: MX and address lookups for remote delivery over a c-ares channel
 * driven by our own poll() loop, which also watches the caller's cancel fd
 * and a deadline: c-ares never blocks, so a stop or the bound ends a
 * lookup at once (ares_cancel), unlike res_nquery and getaddrinfo. */
#include "resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESOLVE_TRIES	3

struct resolve {
	ares_channel	 channel;
	unsigned	 timeout_s;
};

static pthread_once_t	 lib_once = PTHREAD_ONCE_INIT;
static int		 lib_status = ARES_ENOTINITIALIZED;

/* Not thread-safe in c-ares; a no-op on Linux, called once anyway. Never
 * undone: workers come and go with the spool service. */
static void
lib_init(void)
{
	lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

struct resolve *
resolve_new(const struct resolve_conf *c, char *err, size_t errlen)
{
	struct ares_options opts;
	struct resolve *r;
	unsigned total;
	int s;

	pthread_once(&lib_once, lib_init);
	if (lib_status != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(lib_status));
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	total = c != NULL && c->timeout_s > 0 ? c->timeout_s : RESOLVE_TIMEOUT_DEFAULT;
	r->timeout_s = total;
	/* c-ares doubles the wait each round: three tries of t, 2t and 4t fit
	 * in the bound that our loop enforces anyway. */
	memset(&opts, 0, sizeof(opts));
	opts.timeout = (int)(total * 1000 / 7);
	if (opts.timeout < 300)
		opts.timeout = 300;
	opts.tries = RESOLVE_TRIES;
	if ((s = ares_init_options(&r->channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)) !=
	    ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(s));
		free(r);
		return NULL;
	}
	if (c != NULL && c->servers[0] != '\0' &&
	    (s = ares_set_servers_ports_csv(r->channel, c->servers)) != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS servers %s: %s", c->servers, ares_strerror(s));
		ares_destroy(r->channel);
		free(r);
		return NULL;
	}
	return r;
}

void
resolve_free(struct resolve *r)
{
	if (r == NULL)
		return;
	ares_destroy(r->channel);
	free(r);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the channel until *done. -1 with err when the deadline passed or
 * cancel_fd turned readable: the query is cancelled (its callback runs
 * with ARES_ECANCELLED, and sets *done). */
static int
run(struct resolve *r, int cancel_fd, const bool *done, char *err, size_t errlen)
{
	int64_t deadline = now_ms() + (int64_t)r->timeout_s * 1000;

	while (!*done) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM + 1];
		struct timeval max, tv, *tvp;
		int64_t left = deadline - now_ms(), ms;
		unsigned bits;
		int i, n = 0, c = -1, pr;

		if (left <= 0) {
			ares_cancel(r->channel);
			snprintf(err, errlen, "no answer within %u seconds", r->timeout_s);
			return -1;
		}
		/* ARES_GETSOCK_WRITABLE shifts a signed 1 into the sign bit. */
		bits = (unsigned)ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
		for (i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;

			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (ev != 0) {
				pfd[n].fd = socks[i];
				pfd[n].events = ev;
				pfd[n].revents = 0;
				n++;
			}
		}
		if (cancel_fd != -1) {
			c = n;
			pfd[c].fd = cancel_fd;
			pfd[c].events = POLLIN;
			pfd[c].revents = 0;
		}
		max.tv_sec = (time_t)(left / 1000);
		max.tv_usec = (suseconds_t)(left % 1000) * 1000;
		tvp = ares_timeout(r->channel, &max, &tv);
		ms = (int64_t)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
		pr = poll(pfd, (nfds_t)(n + (c != -1)), ms > INT_MAX ? INT_MAX : (int)ms);
		if (pr == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			ares_cancel(r->channel);
			return -1;
		}
		if (c != -1 && pfd[c].revents != 0) {
			ares_cancel(r->channel);
			snprintf(err, errlen, "stopped");
			return -1;
		}
		if (pr == 0) {
			ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);	/* timeouts */
			continue;
		}
		for (i = 0; i < n && !*done; i++) {
			short ev = pfd[i].revents;

			if (ev == 0)
				continue;
			ares_process_fd(r->channel,
			    ev & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
			    ev & (POLLOUT | POLLERR) ? pfd[i].fd : ARES_SOCKET_BAD);
		}
	}
	return 0;
}

size_t
resolve_mx_order(const struct ares_mx_reply *mx, struct resolve_mx *out, size_t max,
    bool *null_mx)
{
	const struct ares_mx_reply *p;
	size_t n = 0, records = 0, i;

	*null_mx = false;
	for (p = mx; p != NULL; p = p->next) {
		records++;
		if (records == 1 && p->next == NULL &&
		    (p->host == NULL || p->host[0] == '\0' || strcmp(p->host, ".") == 0)) {
			*null_mx = true;
			return 0;
		}
		if (p->host == NULL || p->host[0] == '\0' || strlen(p->host) >= sizeof(out[0].host))
			continue;
		/* Insertion keeps equal preferences in answer order; when the list
		 * is full, the worst is dropped, never a better one read later. */
		if (n == max && (max == 0 || out[n - 1].pref <= p->priority))
			continue;
		i = n < max ? n++ : n - 1;
		while (i > 0 && out[i - 1].pref > p->priority) {
			out[i] = out[i - 1];
			i--;
		}
		snprintf(out[i].host, sizeof(out[i].host), "%s", p->host);
		out[i].pref = p->priority;
	}
	return n;
}

struct mx_query {
	bool			 done;
	int			 status;
	struct resolve_mx	*out;
	size_t			 max, n;
	bool			 null_mx;
};

static void
mx_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_query *q = arg;
	struct ares_mx_reply *mx = NULL;

	(void)timeouts;
	q->done = true;
	q->status = status;
	if (status != ARES_SUCCESS)
		return;
	/* Answers without MX records (a CNAME alone) say ARES_ENODATA too. */
	if ((q->status = ares_parse_mx_reply(abuf, alen, &mx)) == ARES_SUCCESS)
		q->n = resolve_mx_order(mx, q->out, q->max, &q->null_mx);
	if (mx != NULL)
		ares_free_data(mx);
	if (q->status == ARES_SUCCESS && q->n == 0 && !q->null_mx)
		q->status = ARES_ENODATA;	/* only unusable hosts: as if none */
}

int
resolve_mx(struct resolve *r, const char *domain, int cancel_fd, struct resolve_mx *out,
    size_t max, bool *permanent, char *err, size_t errlen)
{
	struct mx_query q = { .out = out, .max = max };

	*permanent = false;
	if (errlen > 0)
		err[0] = '\0';
	if (max == 0 || strlen(domain) >= sizeof(out[0].host)) {
		snprintf(err, errlen, "invalid domain");
		return -1;
	}
	ares_query(r->channel, domain, ns_c_in, ns_t_mx, mx_answer, &q);
	if (run(r, cancel_fd, &q.done, err, errlen) == -1)
		return -1;
	switch (q.status) {
	case ARES_SUCCESS:
		if (q.null_mx) {
			*permanent = true;
			snprintf(err, errlen, "null MX");
			return 0;
		}
		return (int)q.n;
	case ARES_ENODATA:
		snprintf(out[0].host, sizeof(out[0].host), "%s", domain);
		out[0].pref = 0;
		return 1;
	case ARES_ENOTFOUND:
		*permanent = true;
		snprintf(err, errlen, "no such domain");
		return 0;
	default:
		snprintf(err, errlen, "%s", ares_strerror(q.status));
		return -1;
	}
}

struct host_query {
	bool			 done;
	int			 status;
	struct resolve_addrs	*out;
};

static void
host_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct host_query *q = arg;
	struct ares_addrinfo_node *p;

	(void)timeouts;
	q->done = true;
	q->status = status;
	for (p = ai != NULL ? ai->nodes : NULL; p != NULL && q->out->n < RESOLVE_ADDRS_MAX;
	    p = p->ai_next) {
		if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) || p->ai_addr == NULL ||
		    p->ai_addrlen > sizeof(q->out->addr[0]))
			continue;
		memcpy(&q->out->addr[q->out->n], p->ai_addr, p->ai_addrlen);
		q->out->len[q->out->n] = p->ai_addrlen;
		q->out->n++;
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	if (q->status == ARES_SUCCESS && q->out->n == 0)
		q->status = ARES_ENODATA;
}

/* c-ares 1.18 sends an IPv4 literal to the name servers when asked for
 * AF_UNSPEC: literals are ours to handle. */
static bool
literal(const char *host, unsigned port, struct resolve_addrs *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->addr[0];
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->addr[0];

	memset(&out->addr[0], 0, sizeof(out->addr[0]));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len[0] = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len[0] = sizeof(*sin6);
	} else
		return false;
	out->n = 1;
	return true;
}

int
resolve_host(struct resolve *r, const char *host, unsigned port, int cancel_fd,
    struct resolve_addrs *out, char *err, size_t errlen)
{
	struct ares_addrinfo_hints hints;
	struct host_query q = { .out = out };
	char portstr[8];

	out->n = 0;
	if (errlen > 0)
		err[0] = '\0';
	if (port == 0 || port > 65535) {
		snprintf(err, errlen, "invalid port");
		return -1;
	}
	if (literal(host, port, out))
		return 0;
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = ARES_AI_NUMERICSERV;
	ares_getaddrinfo(r->channel, host, portstr, &hints, host_answer, &q);
	if (run(r, cancel_fd, &q.done, err, errlen) == -1) {
		out->n = 0;
		return -1;
	}
	if (q.status != ARES_SUCCESS) {
		out->n = 0;
		snprintf(err, errlen, "%s", q.status == ARES_ENOTFOUND || q.status == ARES_ENODATA ?
		    "no address" : ares_strerror(q.status));
		return -1;
	}
	return 0;
}

int
resolve_add_server(struct resolve_conf *c, const char *spec, char *err, size_t errlen)
{
	char ip[INET6_ADDRSTRLEN + 1], entry[INET6_ADDRSTRLEN + 12];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *addr = spec, *rest = "", *end;
	size_t alen, used, count = 0, i;
	unsigned long port = 53;
	bool v6;
	char *stop;

	alen = strlen(spec);
	if (spec[0] == '[') {
		if ((end = strchr(spec, ']')) == NULL)
			goto bad;
		addr = spec + 1;
		alen = (size_t)(end - addr);
		rest = end + 1;
		if (*rest != '\0' && *rest != ':')
			goto bad;
	} else if ((end = strchr(spec, ':')) != NULL && strchr(end + 1, ':') == NULL) {
		alen = (size_t)(end - spec);	/* one colon: IPv4:PORT */
		rest = end;
	}
	if (alen == 0 || alen >= sizeof(ip))
		goto bad;
	memcpy(ip, addr, alen);
	ip[alen] = '\0';
	if (inet_pton(AF_INET, ip, bin) == 1)
		v6 = false;
	else if (inet_pton(AF_INET6, ip, bin) == 1)
		v6 = true;
	else
		goto bad;
	if (spec[0] == '[' && !v6)
		goto bad;
	if (*rest == ':') {
		if (rest[1] < '0' || rest[1] > '9')
			goto bad;
		errno = 0;
		port = strtoul(rest + 1, &stop, 10);
		if (errno != 0 || *stop != '\0' || port < 1 || port > 65535)
			goto bad;
	}
	snprintf(entry, sizeof(entry), v6 ? "[%s]:%lu" : "%s:%lu", ip, port);
	used = strlen(c->servers);
	for (i = 0; i < used; i++)
		count += c->servers[i] == ',';
	if (used > 0 && count + 1 >= RESOLVE_SERVERS_MAX) {
		snprintf(err, errlen, "at most %d DNS servers", RESOLVE_SERVERS_MAX);
		return -1;
	}
	if (used + (used > 0) + strlen(entry) >= sizeof(c->servers)) {
		snprintf(err, errlen, "too many DNS servers");
		return -1;
	}
	snprintf(c->servers + used, sizeof(c->servers) - used, "%s%s", used > 0 ? "," : "", entry);
	return 0;
bad:
	snprintf(err, errlen, "a DNS server is IP, IP:PORT, [IPv6] or [IPv6]:PORT");
	return -1;
}
