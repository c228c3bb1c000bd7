/* log: one line per event, "ts level key=value ... msg=..." on stderr and the
 * same to syslog, so operators can grep by service, tenant, session or peer. */
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static int		log_syslog;
static enum log_level	log_max = LOG_LVL_INFO;
static pthread_mutex_t	log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int level_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void
log_init(const char *ident, int use_syslog, enum log_level max)
{
	log_max = max;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_event(enum log_level lvl, const struct log_ctx *ctx, const char *fmt, ...)
{
	char fields[512], msg[1024], ts[40];
	struct timespec now;
	struct tm tm;
	size_t n = 0;
	int r;
	va_list ap;

	if (lvl > log_max)
		return;
	fields[0] = '\0';
	if (ctx != NULL) {
		/* Each append is bounded; a truncated field is still one line. */
		if (ctx->service && n < sizeof(fields)) {
			r = snprintf(fields + n, sizeof(fields) - n, " service=%s", ctx->service);
			n += r > 0 ? (size_t)r : 0;
		}
		if (ctx->tenant && n < sizeof(fields)) {
			r = snprintf(fields + n, sizeof(fields) - n, " tenant=%s", ctx->tenant);
			n += r > 0 ? (size_t)r : 0;
		}
		if (ctx->session && n < sizeof(fields)) {
			r = snprintf(fields + n, sizeof(fields) - n, " session=%" PRIu64, ctx->session);
			n += r > 0 ? (size_t)r : 0;
		}
		if (ctx->peer && n < sizeof(fields))
			snprintf(fields + n, sizeof(fields) - n, " peer=%s", ctx->peer);
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Keep it one line whatever the message held. */
	for (char *p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ldZ %s%s msg=\"%s\"\n", ts, now.tv_nsec / 1000000,
	    level_names[lvl], fields, msg);
	pthread_mutex_unlock(&log_lock);
	if (log_syslog)
		syslog(level_prio[lvl], "%s%s msg=\"%s\"", level_names[lvl], fields, msg);
}
