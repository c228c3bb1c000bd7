/* loop: the event loops, one per core, each an epoll set with timers and a
 * queue other threads post work to. Everything a session does runs on the
 * loop that accepted it. */
#ifndef MAILNODE_LOOP_H
#define MAILNODE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;

struct loop_watch {
	int	  fd;
	void	(*cb)(struct loop_watch *, uint32_t events);
	void	 *arg;
};

struct loop_timer {
	uint64_t  deadline;	/* loop_now_ms() at which it fires */
	size_t	  slot;		/* index in the heap + 1; 0 when not armed */
	void	(*cb)(struct loop_timer *);
	void	 *arg;
};

typedef void (*loop_fn)(void *);

/* Create n loops; loop 0 is run by the caller's thread (loop_run_main),
 * the others each get a thread. */
int		 loops_init(unsigned n);
unsigned	 loops_count(void);
struct loop	*loops_get(unsigned i);
/* The loop of the calling thread, NULL outside loop threads. */
struct loop	*loop_current(void);
unsigned	 loop_id(const struct loop *);
/* Run loop 0 on this thread until loops_stop(); then join the others. */
int		 loops_run(void);
void		 loops_stop(void);	/* thread- and signal-safe */
void		 loops_free(void);

/* Add may be called for any loop from any thread (epoll is thread-safe);
 * del only from the loop's own thread, so that a watch removed during a
 * batch of events never gets a stale one (free it right after). */
int	 loop_watch_add(struct loop *, struct loop_watch *, uint32_t events);
int	 loop_watch_mod(struct loop *, struct loop_watch *, uint32_t events);
void	 loop_watch_del(struct loop *, struct loop_watch *);

void	 loop_timer_start(struct loop *, struct loop_timer *, uint64_t ms);
void	 loop_timer_stop(struct loop *, struct loop_timer *);
bool	 loop_timer_armed(const struct loop_timer *);

/* Run fn(arg) on loop l; callable from any thread. */
int	 loop_post(struct loop *, loop_fn, void *arg);
/* Run fn(arg) on every loop, then done(done_arg) on the calling loop once
 * all have run it. Must be called from a loop thread. */
int	 loop_broadcast(loop_fn fn, void *arg, loop_fn done, void *done_arg);

uint64_t loop_now_ms(void);

#endif
