/* traps: notifications go out with send_v2trap(), which a subagent hands to
 * snmpd over AgentX; snmpd sends them to its trap sinks (trapsess). */
#include "traps.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <net-snmp/agent/net-snmp-agent-includes.h>

#include "mib_oids.h"

static const char *const thr_names[TRAPS_NTHRESHOLDS] = {
	"queueBacklogThreshold", "authFailureBurstThreshold", "authFailureBurstInterval",
	"tenantLimitThreshold"
};
static uint32_t	thr[TRAPS_NTHRESHOLDS] = { 1000, 50, 60, 100 };
static char	state_path[512];

/* What the last snapshot showed. */
struct seen_service {
	char	name[32];
	int	oper;
};
struct seen_tenant {
	uint32_t	id;
	unsigned	flagged;	/* bit per limit already notified */
};
static struct seen_service	*seen_svc;
static size_t			 nseen_svc;
static struct seen_tenant	*seen_ten;
static size_t			 nseen_ten;
static int			 backlog_sent;
static int			 burst_sent;
/* Failed logins seen at each check, for the burst window. */
#define SAMPLES	3600
static struct { time_t at; uint64_t failures; } samples[SAMPLES];
static size_t			 sample_next, nsamples;

int
traps_init(const char *path)
{
	FILE *f;
	char line[256], *slash;

	snprintf(state_path, sizeof(state_path), "%s", path);
	/* Its directory, private, so a first SET can save the thresholds. */
	if ((slash = strrchr(state_path, '/')) != NULL && slash != state_path) {
		*slash = '\0';
		if (mkdir(state_path, 0700) == -1 && errno != EEXIST)
			snmp_log(LOG_WARNING, "mailnode-snmp: %s: %s\n", state_path, strerror(errno));
		*slash = '/';
	}
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char key[64];
		unsigned long v;
		unsigned i;

		if (sscanf(line, "%63s %lu", key, &v) != 2)
			continue;
		for (i = 0; i < TRAPS_NTHRESHOLDS; i++)
			if (strcmp(key, thr_names[i]) == 0 && v <= UINT32_MAX)
				thr[i] = (uint32_t)v;
	}
	fclose(f);
	return 0;
}

uint32_t
traps_threshold(unsigned which)
{
	return which < TRAPS_NTHRESHOLDS ? thr[which] : 0;
}

void
traps_threshold_set(unsigned which, uint32_t value)
{
	if (which < TRAPS_NTHRESHOLDS)
		thr[which] = value;
}

int
traps_thresholds_save(void)
{
	char tmp[600];
	FILE *f;
	unsigned i;

	if (state_path[0] == '\0')
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "# mailnode-snmp notification thresholds (set through MAILNODE-MIB)\n");
	for (i = 0; i < TRAPS_NTHRESHOLDS; i++)
		fprintf(f, "%s %u\n", thr_names[i], thr[i]);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return -1;
	}
	if (fclose(f) != 0 || rename(tmp, state_path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static const oid trap_oid[] = { 1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0 };

static void
add_var(netsnmp_variable_list **vars, const oid *base, size_t baselen, oid col, const oid *idx,
    size_t idxlen, u_char type, const void *val, size_t len)
{
	oid name[MAX_OID_LEN];

	memcpy(name, base, baselen * sizeof(oid));
	name[baselen] = col;
	memcpy(name + baselen + 1, idx, idxlen * sizeof(oid));
	snmp_varlist_add_variable(vars, name, baselen + 1 + idxlen, type, val, len);
}

static void
trap_send(netsnmp_variable_list *vars)
{
	send_v2trap(vars);
	snmp_free_varbind(vars);
}

static netsnmp_variable_list *
trap_start(oid which)
{
	oid notif[] = { MN_NOTIFICATIONS, 0 };
	netsnmp_variable_list *vars = NULL;

	notif[OID_LENGTH(notif) - 1] = which;
	snmp_varlist_add_variable(&vars, trap_oid, OID_LENGTH(trap_oid), ASN_OBJECT_ID,
	    notif, sizeof(notif));
	return vars;
}

static void
service_trap(const struct snap_service *v)
{
	static const oid entry[] = { MN_SERVICE_ENTRY };
	netsnmp_variable_list *vars = trap_start(1);
	oid idx[1] = { v->index };
	long oper = v->oper, admin = v->want_running ? 1 : 2;

	add_var(&vars, entry, OID_LENGTH(entry), 2, idx, 1, ASN_OCTET_STR, v->name, strlen(v->name));
	add_var(&vars, entry, OID_LENGTH(entry), 4, idx, 1, ASN_INTEGER, &oper, sizeof(oper));
	add_var(&vars, entry, OID_LENGTH(entry), 5, idx, 1, ASN_INTEGER, &admin, sizeof(admin));
	snmp_log(LOG_INFO, "mailnode-snmp: service %s is now %ld: notification sent\n", v->name, oper);
	trap_send(vars);
}

static void
check_services(const struct snapshot *s)
{
	struct seen_service *now;
	size_t i, k;

	if ((now = calloc(s->nservices ? s->nservices : 1, sizeof(*now))) == NULL)
		return;
	for (i = 0; i < s->nservices; i++) {
		const struct snap_service *v = &s->services[i];

		snprintf(now[i].name, sizeof(now[i].name), "%s", v->name);
		now[i].oper = v->oper;
		for (k = 0; k < nseen_svc; k++)
			if (strcmp(seen_svc[k].name, v->name) == 0 && seen_svc[k].oper != v->oper)
				service_trap(v);
	}
	free(seen_svc);
	seen_svc = now;
	nseen_svc = s->nservices;
}

static void
check_queue(const struct snapshot *s)
{
	static const oid queue[] = { MN_QUEUE }, thresholds[] = { MN_THRESHOLDS };
	static const oid zero[1] = { 0 };
	netsnmp_variable_list *vars;
	u_long depth, age, limit = thr[THR_QUEUE_BACKLOG];

	if (limit == 0 || s->q_messages <= limit) {
		backlog_sent = 0;
		return;
	}
	if (backlog_sent)
		return;
	backlog_sent = 1;
	depth = s->q_messages > 0xffffffffu ? 0xffffffffu : (u_long)s->q_messages;
	age = s->q_oldest > 0xffffffffu ? 0xffffffffu : (u_long)s->q_oldest;
	vars = trap_start(2);
	add_var(&vars, queue, OID_LENGTH(queue), 1, zero, 1, ASN_GAUGE, &depth, sizeof(depth));
	add_var(&vars, queue, OID_LENGTH(queue), 3, zero, 1, ASN_GAUGE, &age, sizeof(age));
	add_var(&vars, thresholds, OID_LENGTH(thresholds), 1, zero, 1, ASN_UNSIGNED, &limit,
	    sizeof(limit));
	snmp_log(LOG_INFO, "mailnode-snmp: queue backlog %lu over %lu: notification sent\n", depth, limit);
	trap_send(vars);
}

static void
limit_trap(const struct snap_tenant *t, long which, uint64_t limit, uint64_t used)
{
	static const oid entry[] = { MN_TENANT_ENTRY }, info[] = { MN_NOTIFY_INFO };
	static const oid zero[1] = { 0 };
	netsnmp_variable_list *vars = trap_start(3);
	oid idx[1] = { t->id };
	u_long l, u;

	/* Levels, not counters: Gauge32 (which any trap sink, v1 too, can
	 * carry), storage in KiB as mnTenantStorageUsed. */
	if (which == 4) {	/* storage(4) */
		limit = limit / 1024;
		used = (used + 1023) / 1024;
	}
	l = limit > 0xffffffffu ? 0xffffffffu : (u_long)limit;
	u = used > 0xffffffffu ? 0xffffffffu : (u_long)used;
	add_var(&vars, entry, OID_LENGTH(entry), 2, idx, 1, ASN_OCTET_STR, t->name, strlen(t->name));
	add_var(&vars, info, OID_LENGTH(info), 1, zero, 1, ASN_INTEGER, &which, sizeof(which));
	add_var(&vars, info, OID_LENGTH(info), 2, zero, 1, ASN_GAUGE, &l, sizeof(l));
	add_var(&vars, info, OID_LENGTH(info), 3, zero, 1, ASN_GAUGE, &u, sizeof(u));
	snmp_log(LOG_INFO, "mailnode-snmp: tenant %s at its limit %ld: notification sent\n",
	    t->name, which);
	trap_send(vars);
}

static unsigned
find_flags(uint32_t id)
{
	size_t lo = 0, hi = nseen_ten;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (seen_ten[mid].id == id)
			return seen_ten[mid].flagged;
		if (seen_ten[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void
check_tenants(const struct snapshot *s)
{
	/* mnNotifyLimitName values and where the figures are. */
	static const struct { long name; enum tenant_limit limit; } kinds[] = {
		{ 1, LIMIT_DOMAINS }, { 2, LIMIT_MAILBOXES }, { 3, LIMIT_ALIASES }, { 4, LIMIT_STORAGE }
	};
	struct seen_tenant *now;
	uint64_t pct = thr[THR_TENANT_LIMIT_PCT];
	size_t i, k;

	if ((now = calloc(s->ntenants ? s->ntenants : 1, sizeof(*now))) == NULL)
		return;
	for (i = 0; i < s->ntenants; i++) {
		const struct snap_tenant *t = &s->tenants[i];
		unsigned old = find_flags(t->id), flags = 0;

		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			uint64_t limit = t->limit[kinds[k].limit], used;

			used = kinds[k].limit == LIMIT_DOMAINS ? t->domains :
			    kinds[k].limit == LIMIT_MAILBOXES ? t->mailboxes :
			    kinds[k].limit == LIMIT_ALIASES ? t->aliases : t->storage_used;
			if (pct == 0 || limit == 0 || used * 100 < limit * pct)
				continue;
			flags |= 1u << k;
			if (!(old & (1u << k)))
				limit_trap(t, kinds[k].name, limit, used);
		}
		now[i].id = t->id;
		now[i].flagged = flags;
	}
	free(seen_ten);
	seen_ten = now;
	nseen_ten = s->ntenants;
}

static void
check_logins(const struct snapshot *s)
{
	static const oid info[] = { MN_NOTIFY_INFO }, thresholds[] = { MN_THRESHOLDS };
	static const oid zero[1] = { 0 };
	time_t now = time(NULL), since = now - (time_t)thr[THR_AUTH_INTERVAL];
	uint64_t base = s->login_failures;
	netsnmp_variable_list *vars;
	u_long n, interval = thr[THR_AUTH_INTERVAL];
	size_t i;

	samples[sample_next].at = now;
	samples[sample_next].failures = s->login_failures;
	sample_next = (sample_next + 1) % SAMPLES;
	if (nsamples < SAMPLES)
		nsamples++;
	/* The oldest sample inside the window is the base. */
	for (i = 0; i < nsamples; i++)
		if (samples[i].at >= since && samples[i].failures < base)
			base = samples[i].failures;
	n = (u_long)(s->login_failures - base);
	if (thr[THR_AUTH_BURST] == 0 || n <= thr[THR_AUTH_BURST]) {
		burst_sent = 0;
		return;
	}
	if (burst_sent)
		return;
	burst_sent = 1;
	vars = trap_start(4);
	add_var(&vars, info, OID_LENGTH(info), 4, zero, 1, ASN_UNSIGNED, &n, sizeof(n));
	add_var(&vars, thresholds, OID_LENGTH(thresholds), 3, zero, 1, ASN_UNSIGNED, &interval,
	    sizeof(interval));
	snmp_log(LOG_INFO, "mailnode-snmp: %lu failed logins in %lu s: notification sent\n", n,
	    interval);
	trap_send(vars);
}

void
traps_check(const struct snapshot *s)
{
	if (!s->reachable)
		return;		/* nothing new to compare */
	check_services(s);
	check_queue(s);
	check_tenants(s);
	check_logins(s);
}
