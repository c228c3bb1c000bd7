/* fuzz_ydoc: libFuzzer target for node/ydoc.c and node/yamlw.c. Every
 * provisioning document goes through ydoc_parse, so it must survive any
 * bytes; what it accepts must be a well-formed tree with 1-based positions,
 * and writing that tree with yamlw and reading it back must give the same
 * shape and the same scalar texts. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "yamlw.h"
#include "ydoc.h"

/* libFuzzer's default max_len is far below this; it bounds -max_len runs. */
#define FUZZ_MAXLEN	(256 * 1024)

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* Check one node and its subtree; clear *emittable if a scalar holds a NUL
 * (yamlw writes C strings, so such trees cannot be written back). */
static void
walk(const struct ydoc_node *n, unsigned depth, bool *emittable)
{
	size_t i, j;

	check(n != NULL);
	check(n->line >= 1 && n->col >= 1);
	check(depth <= YDOC_MAX_DEPTH);
	switch (n->type) {
	case YDOC_SCALAR:
		check(n->str != NULL);
		check(n->str[n->len] == '\0');
		if (memchr(n->str, '\0', n->len) == NULL)
			check(strlen(n->str) == n->len);
		else
			*emittable = false;
		check(n->n == 0);
		check(ydoc_str(n) == n->str);
		check(ydoc_count(n) == 0);
		check(ydoc_get(n, n->str) == NULL);
		break;
	case YDOC_SEQ:
		check(n->n == 0 || n->items != NULL);
		check(ydoc_count(n) == n->n);
		check(ydoc_str(n) == NULL);
		for (i = 0; i < n->n; i++)
			walk(n->items[i], depth + 1, emittable);
		break;
	case YDOC_MAP:
		check(n->n == 0 || n->items != NULL);
		check(ydoc_count(n) == n->n);
		check(ydoc_str(n) == NULL);
		for (i = 0; i < n->n; i++) {
			const struct ydoc_node *k = n->items[2 * i];

			check(k != NULL && k->type == YDOC_SCALAR);
			check(n->items[2 * i + 1] != NULL);
			/* keys are unique, so each finds its own value */
			for (j = 0; j < i; j++)
				check(strcmp(n->items[2 * j]->str, k->str) != 0);
			check(ydoc_get(n, k->str) == n->items[2 * i + 1]);
			walk(k, depth + 1, emittable);
			walk(n->items[2 * i + 1], depth + 1, emittable);
		}
		break;
	default:
		check(false);
	}
}

static void
emit(struct yamlw *w, const struct ydoc_node *n)
{
	size_t i;

	switch (n->type) {
	case YDOC_SCALAR:
		yamlw_str(w, n->str);
		break;
	case YDOC_SEQ:
		yamlw_seq(w);
		for (i = 0; i < n->n; i++)
			emit(w, n->items[i]);
		yamlw_seq_end(w);
		break;
	case YDOC_MAP:
		yamlw_map(w);
		for (i = 0; i < 2 * n->n; i++)
			emit(w, n->items[i]);
		yamlw_map_end(w);
		break;
	}
}

/* Same shape and the same texts (quoting may differ). */
static bool
same_tree(const struct ydoc_node *a, const struct ydoc_node *b)
{
	size_t i, count;

	if (a->type != b->type)
		return false;
	if (a->type == YDOC_SCALAR)
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	if (a->n != b->n)
		return false;
	count = a->type == YDOC_MAP ? 2 * a->n : a->n;
	for (i = 0; i < count; i++)
		if (!same_tree(a->items[i], b->items[i]))
			return false;
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ydoc_stream *s = NULL, *again = NULL;
	struct yamlw w;
	struct buf out;
	char err[256];
	bool emittable = true;
	size_t i;

	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (data == NULL)	/* the empty input may come as NULL */
		data = (const uint8_t *)"";

	memset(err, 'x', sizeof(err));
	if (ydoc_parse((const char *)data, size, &s, err, sizeof(err)) != 0) {
		/* a refusal always says where */
		check(s == NULL);
		check(memchr(err, '\0', sizeof(err)) != NULL);
		check(strncmp(err, "line ", 5) == 0);
		check(strstr(err, ", column ") != NULL);
		return 0;
	}
	check(s != NULL);
	check(s->ndocs == 0 || s->docs != NULL);
	for (i = 0; i < s->ndocs; i++)
		walk(s->docs[i], 0, &emittable);

	if (emittable) {
		buf_init(&out, 0);
		yamlw_begin(&w, &out);
		for (i = 0; i < s->ndocs; i++) {
			yamlw_doc(&w);
			emit(&w, s->docs[i]);
		}
		check(yamlw_end(&w) == 0);
		if (ydoc_parse(buf_cstr(&out), buf_len(&out), &again, err, sizeof(err)) != 0)
			abort();	/* what yamlw wrote must read back */
		check(again->ndocs == s->ndocs);
		for (i = 0; i < s->ndocs; i++)
			check(same_tree(s->docs[i], again->docs[i]));
		ydoc_free(again);
		buf_free(&out);
	}
	ydoc_free(s);
	return 0;
}
