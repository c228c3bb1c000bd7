/* genwatch: the generation poll behind every snapshot of the directory the
 * node keeps in memory (tenants' rules, domains' certificates). The worker
 * reads the generation first and builds only when it moved. */
#include "genwatch.h"

#include <stdlib.h>

#include "db.h"

#define GENWATCH_POLL_MS	1000

struct gw_job {
	struct genwatch	*w;
	void		*job;
	uint64_t	 known, gen;
	bool		 force;
	int		 result;
};

static int
gw_run(MYSQL *m, void *arg)
{
	struct gw_job *j = arg;
	MYSQL_RES *res;
	MYSQL_ROW row;

	if (mysql_query(m, "SELECT v FROM node_meta WHERE k = 'config_generation'") != 0 ||
	    (res = mysql_store_result(m)) == NULL)
		return -1;
	row = mysql_fetch_row(res);
	j->gen = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
	mysql_free_result(res);
	if (!j->force && j->gen == j->known) {
		j->result = 0;
		return 0;
	}
	if (j->w->load(m, j->job) == -1)
		return -1;
	j->result = 1;
	return 0;
}

static void submit(struct genwatch *);

static void
gw_done(void *arg, int result)
{
	struct gw_job *j = arg;
	struct genwatch *w = j->w;

	w->inflight = false;
	if (result == 0 && !w->stopping) {
		w->gen = j->gen;
		w->loaded = true;
	} else {
		j->result = -1;
		if (j->force)
			w->force = true;	/* a kick not served yet */
	}
	w->job_done(w->owner, j->job, j->result);
	free(j);
	if (w->again && !w->stopping) {
		w->again = false;
		submit(w);
	}
}

static void
submit(struct genwatch *w)
{
	struct gw_job *j;

	if (w->inflight) {
		w->again = true;
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return;
	if ((j->job = w->job_new(w->owner)) == NULL) {
		free(j);
		return;
	}
	j->w = w;
	j->known = w->gen;
	j->force = w->force || !w->loaded;
	w->force = false;
	w->inflight = true;
	if (db_submit(gw_run, gw_done, j) == -1) {
		w->inflight = false;
		w->force = w->force || j->force;
		w->job_done(w->owner, j->job, -1);
		free(j);
	}
}

static void
tick(struct loop_timer *t)
{
	struct genwatch *w = t->arg;

	if (w->stopping)
		return;
	submit(w);
	loop_timer_start(w->loop, t, GENWATCH_POLL_MS);
}

void
genwatch_start(struct genwatch *w)
{
	w->loop = loop_current();
	w->timer.cb = tick;
	w->timer.arg = w;
	w->started = true;
	submit(w);
	loop_timer_start(w->loop, &w->timer, GENWATCH_POLL_MS);
}

void
genwatch_stop(struct genwatch *w)
{
	if (!w->started || w->stopping)
		return;
	w->stopping = true;
	loop_timer_stop(w->loop, &w->timer);
}

void
genwatch_kick(struct genwatch *w)
{
	if (!w->started || w->stopping)
		return;
	w->force = true;
	submit(w);
}

bool
genwatch_loaded(const struct genwatch *w)
{
	return w->loaded;
}
