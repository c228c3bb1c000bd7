/* session: a mutex-protected list of every live session; sessions live on
 * their loop, the list only names them for status queries. */
#include "session.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "service.h"

static pthread_mutex_t	 registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session	*registry;
static size_t		 registry_count;
static atomic_uint_fast64_t next_id = 1;

void
session_register(struct session *s)
{
	s->id = atomic_fetch_add(&next_id, 1);
	if (s->started == 0)
		s->started = time(NULL);
	pthread_mutex_lock(&registry_lock);
	s->prev = NULL;
	s->next = registry;
	if (registry)
		registry->prev = s;
	registry = s;
	registry_count++;
	pthread_mutex_unlock(&registry_lock);
}

void
session_unregister(struct session *s)
{
	pthread_mutex_lock(&registry_lock);
	if (s->prev)
		s->prev->next = s->next;
	else if (registry == s)
		registry = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	registry_count--;
	pthread_mutex_unlock(&registry_lock);
}

void
session_set_identity(struct session *s, const char *tenant, const char *user)
{
	pthread_mutex_lock(&registry_lock);
	if (tenant)
		snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
	if (user)
		snprintf(s->user, sizeof(s->user), "%s", user);
	pthread_mutex_unlock(&registry_lock);
}

void
session_set_tls(struct session *s, const char *desc)
{
	pthread_mutex_lock(&registry_lock);
	snprintf(s->tls, sizeof(s->tls), "%s", desc ? desc : "");
	pthread_mutex_unlock(&registry_lock);
}

size_t
sessions_count(void)
{
	size_t n;

	pthread_mutex_lock(&registry_lock);
	n = registry_count;
	pthread_mutex_unlock(&registry_lock);
	return n;
}

int
sessions_snapshot(const char *service, const char *tenant, struct session_view **out, size_t *n)
{
	struct session_view *v = NULL;
	struct session *s;
	size_t cap, i = 0;

	pthread_mutex_lock(&registry_lock);
	cap = registry_count;
	if (cap > 0 && (v = calloc(cap, sizeof(*v))) == NULL) {
		pthread_mutex_unlock(&registry_lock);
		return -1;
	}
	for (s = registry; s != NULL && i < cap; s = s->next) {
		if (service && strcmp(service, s->svc->def->name) != 0)
			continue;
		if (tenant && strcmp(tenant, s->tenant) != 0)
			continue;
		v[i].id = s->id;
		snprintf(v[i].service, sizeof(v[i].service), "%s", s->svc->def->name);
		memcpy(v[i].peer, s->peer, sizeof(v[i].peer));
		memcpy(v[i].tenant, s->tenant, sizeof(v[i].tenant));
		memcpy(v[i].user, s->user, sizeof(v[i].user));
		memcpy(v[i].tls, s->tls, sizeof(v[i].tls));
		v[i].started = s->started;
		v[i].bytes_in = atomic_load(&s->bytes_in);
		v[i].bytes_out = atomic_load(&s->bytes_out);
		i++;
	}
	pthread_mutex_unlock(&registry_lock);
	*out = v;
	*n = i;
	return 0;
}

static struct session *
find_locked(uint64_t id)
{
	struct session *s;

	for (s = registry; s != NULL; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/* On the session's loop: it cannot be freed under us here, since only
 * this loop frees it; it may have ended since it was asked. */
static void
end_on_loop(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg;
	struct session *s;

	pthread_mutex_lock(&registry_lock);
	s = find_locked(id);
	if (s && s->loop != loop_current())
		s = NULL;
	pthread_mutex_unlock(&registry_lock);
	if (s && s->end)
		s->end(s);
}

int
session_end(uint64_t id)
{
	struct session *s;
	struct loop *loop = NULL;

	pthread_mutex_lock(&registry_lock);
	if ((s = find_locked(id)) != NULL && s->end)
		loop = s->loop;
	pthread_mutex_unlock(&registry_lock);
	if (loop == NULL) {
		errno = ESRCH;
		return -1;
	}
	return loop_post(loop, end_on_loop, (void *)(uintptr_t)id);
}

void
session_format_peer(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	struct addr a;
	char host[ADDR_STRLEN];
	unsigned port = 0;

	if (sa == NULL || addr_from_sockaddr(sa, len, &a) == -1 ||
	    addr_format(&a, host, sizeof(host)) == -1) {
		snprintf(out, outlen, "unknown");
		return;
	}
	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	if (a.family == AF_INET6)
		snprintf(out, outlen, "[%s]:%u", host, port);
	else
		snprintf(out, outlen, "%s:%u", host, port);
}
