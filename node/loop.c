/* loop: epoll event loops, one per core. Cross-thread work arrives through a
 * mutex-protected queue and an eventfd; timers live in a binary heap per loop. */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct post {
	struct post	*next;
	loop_fn		 fn;
	void		*arg;
};

struct loop {
	unsigned		 id;
	int			 epfd;
	struct loop_watch	 wake;		/* eventfd for posts and stop */
	pthread_t		 thread;
	pthread_mutex_t		 lock;
	struct post		*head, *tail;
	struct loop_timer	**heap;
	size_t			 nheap, capheap;
	atomic_bool		 stopping;
	/* The batch being dispatched, so a watch removed by an earlier
	 * callback of the same batch is not called with a stale event. */
	struct epoll_event	*batch;
	int			 batch_i, batch_n;
};

static struct loop	**loops;
static unsigned		  nloops;
static __thread struct loop *current;

uint64_t
loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
loop_wake(struct loop *l)
{
	uint64_t one = 1;

	/* A full eventfd counter still wakes the loop; nothing to handle. */
	if (write(l->wake.fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
		log_err("loop %u: eventfd write: %s", l->id, strerror(errno));
}

static void
loop_drain_posts(struct loop_watch *w, uint32_t events)
{
	struct loop *l = w->arg;
	struct post *p, *next;
	uint64_t n;

	(void)events;
	if (read(l->wake.fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		log_err("loop %u: eventfd read: %s", l->id, strerror(errno));
	pthread_mutex_lock(&l->lock);
	p = l->head;
	l->head = l->tail = NULL;
	pthread_mutex_unlock(&l->lock);
	for (; p != NULL; p = next) {
		next = p->next;
		p->fn(p->arg);
		free(p);
	}
}

static struct loop *
loop_new(unsigned id)
{
	struct loop *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->id = id;
	l->wake.fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		goto fail;
	if ((l->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	l->wake.cb = loop_drain_posts;
	l->wake.arg = l;
	if (loop_watch_add(l, &l->wake, EPOLLIN) == -1)
		goto fail;
	return l;
fail:
	log_err("loop %u: %s", id, strerror(errno));
	if (l->wake.fd != -1)
		close(l->wake.fd);
	if (l->epfd != -1)
		close(l->epfd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}

static void
loop_free(struct loop *l)
{
	struct post *p, *next;

	for (p = l->head; p != NULL; p = next) {
		next = p->next;
		free(p);
	}
	close(l->wake.fd);
	close(l->epfd);
	free(l->heap);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

int
loop_watch_add(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

int
loop_watch_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void
loop_watch_del(struct loop *l, struct loop_watch *w)
{
	int i;

	/* Fails only if the fd was never added or already closed: nothing to undo. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	for (i = l->batch_i + 1; l->batch && i < l->batch_n; i++)
		if (l->batch[i].data.ptr == w)
			l->batch[i].data.ptr = NULL;
}

/* Timer heap, 1-based slots stored in the timer so stop is O(log n). */
static void
heap_swap(struct loop *l, size_t a, size_t b)
{
	struct loop_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->slot = a + 1;
	l->heap[b]->slot = b + 1;
}

static void
heap_up(struct loop *l, size_t i)
{
	while (i > 0 && l->heap[(i - 1) / 2]->deadline > l->heap[i]->deadline) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1, m = i;

		if (c < l->nheap && l->heap[c]->deadline < l->heap[m]->deadline)
			m = c;
		if (c + 1 < l->nheap && l->heap[c + 1]->deadline < l->heap[m]->deadline)
			m = c + 1;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

void
loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	size_t i;

	if (t->slot == 0)
		return;
	i = t->slot - 1;
	t->slot = 0;
	l->nheap--;
	if (i == l->nheap)
		return;
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->slot = i + 1;
	heap_down(l, i);
	heap_up(l, i);
}

void
loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t ms)
{
	loop_timer_stop(l, t);
	if (l->nheap == l->capheap) {
		size_t ncap = l->capheap ? l->capheap * 2 : 64;
		struct loop_timer **h = realloc(l->heap, ncap * sizeof(*h));

		if (h == NULL) {
			/* Without memory a timer cannot be kept; fire it at once
			 * so no session waits forever. */
			log_err("loop %u: timer heap: out of memory", l->id);
			t->cb(t);
			return;
		}
		l->heap = h;
		l->capheap = ncap;
	}
	t->deadline = loop_now_ms() + ms;
	l->heap[l->nheap] = t;
	t->slot = ++l->nheap;
	heap_up(l, l->nheap - 1);
}

bool
loop_timer_armed(const struct loop_timer *t)
{
	return t->slot != 0;
}

int
loop_post(struct loop *l, loop_fn fn, void *arg)
{
	struct post *p;

	if ((p = malloc(sizeof(*p))) == NULL)
		return -1;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&l->lock);
	if (l->tail)
		l->tail->next = p;
	else
		l->head = p;
	l->tail = p;
	pthread_mutex_unlock(&l->lock);
	loop_wake(l);
	return 0;
}

struct broadcast {
	loop_fn		 fn, done;
	void		*arg, *done_arg;
	struct loop	*origin;
	atomic_uint	 left;
};

static void
broadcast_done(void *arg)
{
	struct broadcast *b = arg;

	b->done(b->done_arg);
	free(b);
}

static void
broadcast_run(void *arg)
{
	struct broadcast *b = arg;

	b->fn(b->arg);
	if (atomic_fetch_sub(&b->left, 1) == 1) {
		if (b->done == NULL)
			free(b);
		else if (loop_post(b->origin, broadcast_done, b) == -1) {
			/* Out of memory: run the completion here rather than never. */
			broadcast_done(b);
		}
	}
}

int
loop_broadcast(loop_fn fn, void *arg, loop_fn done, void *done_arg)
{
	struct broadcast *b;
	unsigned i;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return -1;
	b->fn = fn;
	b->arg = arg;
	b->done = done;
	b->done_arg = done_arg;
	b->origin = current;
	atomic_init(&b->left, nloops);
	for (i = 0; i < nloops; i++) {
		if (loops[i] == current)
			continue;
		if (loop_post(loops[i], broadcast_run, b) == -1) {
			/* Cannot reach that loop: count it as done so the rest completes. */
			log_err("loop broadcast: out of memory");
			atomic_fetch_sub(&b->left, 1);
		}
	}
	/* Our own share runs last, synchronously, so done never runs before it. */
	broadcast_run(b);
	return 0;
}

static void
loop_run_timers(struct loop *l, uint64_t now)
{
	while (l->nheap > 0 && l->heap[0]->deadline <= now) {
		struct loop_timer *t = l->heap[0];

		loop_timer_stop(l, t);
		t->cb(t);
	}
}

static int
loop_run(struct loop *l)
{
	struct epoll_event evs[64];
	int i, n, timeout;

	current = l;
	while (!atomic_load(&l->stopping)) {
		uint64_t now = loop_now_ms();

		loop_run_timers(l, now);
		timeout = -1;
		if (l->nheap > 0) {
			uint64_t d = l->heap[0]->deadline;
			timeout = d <= now ? 0 : (d - now > 60000 ? 60000 : (int)(d - now));
		}
		n = epoll_wait(l->epfd, evs, 64, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_err("loop %u: epoll_wait: %s", l->id, strerror(errno));
			return -1;
		}
		l->batch = evs;
		l->batch_n = n;
		for (i = 0; i < n; i++) {
			struct loop_watch *w = evs[i].data.ptr;

			l->batch_i = i;
			if (w != NULL)
				w->cb(w, evs[i].events);
		}
		l->batch = NULL;
		l->batch_n = 0;
	}
	/* Run what was posted before the stop so nobody waits on a lost post. */
	loop_drain_posts(&l->wake, 0);
	return 0;
}

static void *
loop_thread(void *arg)
{
	sigset_t all;

	/* Signals are the main thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	loop_run(arg);
	return NULL;
}

int
loops_init(unsigned n)
{
	unsigned i;

	if (n == 0)
		n = 1;
	if ((loops = calloc(n, sizeof(*loops))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if ((loops[i] = loop_new(i)) == NULL)
			goto fail;
		nloops = i + 1;
	}
	current = loops[0];
	return 0;
fail:
	loops_free();
	return -1;
}

unsigned
loops_count(void)
{
	return nloops;
}

struct loop *
loops_get(unsigned i)
{
	return i < nloops ? loops[i] : NULL;
}

struct loop *
loop_current(void)
{
	return current;
}

unsigned
loop_id(const struct loop *l)
{
	return l->id;
}

int
loops_run(void)
{
	unsigned i, started = 1;
	int r;

	for (i = 1; i < nloops; i++) {
		if ((errno = pthread_create(&loops[i]->thread, NULL, loop_thread, loops[i])) != 0) {
			log_err("loop %u: pthread_create: %s", i, strerror(errno));
			loops_stop();
			break;
		}
		started++;
	}
	r = loop_run(loops[0]);
	for (i = 1; i < started; i++)
		pthread_join(loops[i]->thread, NULL);
	return r;
}

void
loops_stop(void)
{
	unsigned i;

	/* Only atomics and write(2): safe from a signal handler. */
	for (i = 0; i < nloops; i++) {
		uint64_t one = 1;

		atomic_store(&loops[i]->stopping, true);
		if (write(loops[i]->wake.fd, &one, sizeof(one)) == -1) {
			/* EAGAIN means a wake-up is already pending. */
		}
	}
}

void
loops_free(void)
{
	unsigned i;

	/* Completions posted after the loops stopped (database jobs that
	 * finished during shutdown) still run, so nothing they own leaks. */
	for (i = 0; i < nloops; i++) {
		current = loops[i];
		loop_drain_posts(&loops[i]->wake, 0);
	}
	current = NULL;
	for (i = 0; i < nloops; i++)
		loop_free(loops[i]);
	free(loops);
	loops = NULL;
	nloops = 0;
}
