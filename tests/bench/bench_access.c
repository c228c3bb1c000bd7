/* bench_access: admission decisions per second of the access engine with
 * 10,000 rules (deny-listed patterns of every form, plus per-address
 * limits), from 1 and 2 threads, against a linear scan of the same
 * patterns for scale. Prints figures; asserts nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "addr.h"
#include "buf.h"

#define NRULES		10000
#define NDECISIONS	2000000

static struct access_scope *scope;
static struct addr *probes;
static size_t nprobes = 65536;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
worker(void *arg)
{
	size_t i, n = *(size_t *)arg, ok = 0;

	for (i = 0; i < n; i++) {
		struct access_hold h;

		if (access_admit(scope, &probes[i % nprobes], 1000 + i / 100000, &h) == ACCESS_OK) {
			ok++;
			access_release(&h);
		}
	}
	*(size_t *)arg = ok;
	return NULL;
}

static double
run_threads(int nthreads)
{
	pthread_t t[8];
	size_t counts[8];
	double t0 = now_s();
	int i;

	for (i = 0; i < nthreads; i++) {
		counts[i] = NDECISIONS / nthreads;
		pthread_create(&t[i], NULL, worker, &counts[i]);
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	return NDECISIONS / (now_s() - t0);
}

int
main(void)
{
	struct buf json;
	struct addr_pattern *pats;
	struct access_rules *rules;
	char err[256];
	size_t i, hits = 0;
	double t0, linear;

	srandom(1);
	buf_init(&json, 0);
	pats = calloc(NRULES, sizeof(*pats));
	probes = calloc(nprobes, sizeof(*probes));
	if (pats == NULL || probes == NULL)
		return 1;
	buf_puts(&json, "{\"mode\":\"deny-listed\",\"addresses\":[");
	for (i = 0; i < NRULES; i++) {
		char p[64];
		long r = random();

		switch (i % 4) {
		case 0: snprintf(p, sizeof(p), "%ld.%ld.%ld.0/24", 1 + r % 223, (r >> 8) % 256, (r >> 16) % 256); break;
		case 1: snprintf(p, sizeof(p), "%ld.%ld.*", 1 + r % 223, (r >> 8) % 256); break;
		case 2: snprintf(p, sizeof(p), "%ld.%ld.%ld.%ld", 1 + r % 223, (r >> 8) % 256, (r >> 16) % 256, (r >> 24) % 256); break;
		default: snprintf(p, sizeof(p), "2001:db8:%lx::/48", r & 0xffff); break;
		}
		buf_printf(&json, "%s\"%s\"", i ? "," : "", p);
		if (addr_pattern_parse(p, &pats[i], err, sizeof(err)) == -1) {
			fprintf(stderr, "%s: %s\n", p, err);
			return 1;
		}
	}
	buf_puts(&json, "]}");
	for (i = 0; i < nprobes; i++) {
		char a[64];
		long r = random();

		if (i % 4 == 3)
			snprintf(a, sizeof(a), "2001:db8:%lx::%lx", r & 0xffff, (r >> 16) & 0xffff);
		else
			snprintf(a, sizeof(a), "%ld.%ld.%ld.%ld", 1 + r % 223, (r >> 8) % 256, (r >> 16) % 256, (r >> 24) % 256);
		addr_parse(a, &probes[i]);
	}
	t0 = now_s();
	rules = access_rules_compile(buf_cstr(&json), "{\"maxConcurrent\":100,\"perIpPerMinute\":1000000}",
	    err, sizeof(err));
	if (rules == NULL) {
		fprintf(stderr, "compile: %s\n", err);
		return 1;
	}
	printf("compile %d rules: %.1f ms\n", NRULES, (now_s() - t0) * 1e3);
	scope = access_scope_new("bench");
	access_scope_set_rules(scope, rules);
	printf("admission decisions/s, 1 thread:  %.0f\n", run_threads(1));
	printf("admission decisions/s, 2 threads: %.0f\n", run_threads(2));
	/* The same question answered by scanning every pattern. */
	t0 = now_s();
	for (i = 0; i < 20000; i++) {
		size_t j;

		for (j = 0; j < NRULES; j++)
			if (addr_pattern_match(&pats[j], &probes[i % nprobes])) {
				hits++;
				break;
			}
	}
	linear = 20000 / (now_s() - t0);
	printf("linear scan of the patterns, decisions/s: %.0f (%zu hits)\n", linear, hits);
	access_scope_unref(scope);
	buf_free(&json);
	free(pats);
	free(probes);
	return 0;
}
