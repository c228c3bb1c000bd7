/* ydoc: libyaml's event parser folded into a tree with source marks. */
#include "ydoc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct builder {
	yaml_parser_t	  parser;
	const char	 *input;	/* for positions of reader (encoding) errors */
	size_t		  inputlen;
	size_t		  nodes;
	char		 *err;
	size_t		  errlen;
};

static void
node_free(struct ydoc_node *n)
{
	size_t i, count;

	if (n == NULL)
		return;
	count = n->type == YDOC_MAP ? n->n * 2 : n->n;
	for (i = 0; i < count; i++)
		node_free(n->items[i]);
	free(n->items);
	free(n->str);
	free(n);
}

void
ydoc_free(struct ydoc_stream *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->ndocs; i++)
		node_free(s->docs[i]);
	free(s->docs);
	free(s);
}

static int
fail_at(struct builder *b, const yaml_mark_t *m, const char *what)
{
	snprintf(b->err, b->errlen, "line %zu, column %zu: %s",
	    m->line + 1, m->column + 1, what);
	return -1;
}

static struct ydoc_node *parse_node(struct builder *, yaml_event_t *, unsigned depth);

static int
cmp_key_pos(const void *a, const void *b)
{
	const struct ydoc_node *x = *(const struct ydoc_node *const *)a;
	const struct ydoc_node *y = *(const struct ydoc_node *const *)b;
	int c = x->len == y->len ? memcmp(x->str, y->str, x->len) : (x->len < y->len ? -1 : 1);

	if (c != 0)
		return c;
	return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col < y->col ? -1 : x->col > y->col);
}

/* Sorted copy of the keys: duplicates sit side by side, O(n log n) even for
 * a hostile map of a million keys. The later one is reported. */
static int
check_duplicate_keys(struct builder *b, const struct ydoc_node *map)
{
	const struct ydoc_node **keys = calloc(map->n, sizeof(*keys));
	size_t i;
	int rc = 0;

	if (keys == NULL) {
		fail_at(b, &(yaml_mark_t){ .line = map->line - 1, .column = map->col - 1 }, "out of memory");
		return -1;
	}
	for (i = 0; i < map->n; i++)
		keys[i] = map->items[2 * i];
	qsort(keys, map->n, sizeof(*keys), cmp_key_pos);
	for (i = 1; i < map->n; i++)
		if (keys[i]->len == keys[i - 1]->len &&
		    memcmp(keys[i]->str, keys[i - 1]->str, keys[i]->len) == 0) {
			char what[160];

			snprintf(what, sizeof(what), "duplicate key '%.100s'", keys[i]->str);
			fail_at(b, &(yaml_mark_t){ .line = keys[i]->line - 1, .column = keys[i]->col - 1 }, what);
			rc = -1;
			break;
		}
	free(keys);
	return rc;
}

/* Append to a growable item array. */
static int
items_add(struct ydoc_node ***items, size_t *count, size_t *cap, struct ydoc_node *n)
{
	if (*count == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct ydoc_node **p = realloc(*items, ncap * sizeof(*p));

		if (p == NULL)
			return -1;
		*items = p;
		*cap = ncap;
	}
	(*items)[(*count)++] = n;
	return 0;
}

static struct ydoc_node *
new_node(struct builder *b, enum ydoc_type t, const yaml_mark_t *m)
{
	struct ydoc_node *n;

	if (++b->nodes > YDOC_MAX_NODES) {
		fail_at(b, m, "document too large");
		return NULL;
	}
	if ((n = calloc(1, sizeof(*n))) == NULL) {
		fail_at(b, m, "out of memory");
		return NULL;
	}
	n->type = t;
	n->line = (unsigned)m->line + 1;
	n->col = (unsigned)m->column + 1;
	return n;
}

static int
next_event(struct builder *b, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&b->parser, ev)) {
		const char *problem = b->parser.problem ? b->parser.problem : "malformed YAML";
		char what[256];

		if (b->parser.context)
			snprintf(what, sizeof(what), "%s %s", problem, b->parser.context);
		else
			snprintf(what, sizeof(what), "%s", problem);
		if (b->parser.error == YAML_READER_ERROR) {
			/* The reader gives only a byte offset: count lines up to it. */
			yaml_mark_t m = { 0 };
			size_t i, off = b->parser.problem_offset;

			/* A broken sequence is reported at its bad trailing byte;
			 * point at the sequence's first byte instead. */
			if (strstr(problem, "trailing") != NULL && off <= b->inputlen) {
				while (off > 0 && ((unsigned char)b->input[off - 1] & 0xc0) == 0x80)
					off--;
				if (off > 0 && (unsigned char)b->input[off - 1] >= 0xc0)
					off--;
			}

			for (i = 0; i < off && i < b->inputlen; i++) {
				if (b->input[i] == '\n') {
					m.line++;
					m.column = 0;
				} else if (((unsigned char)b->input[i] & 0xc0) != 0x80)
					m.column++;
			}
			return fail_at(b, &m, what);
		}
		return fail_at(b, &b->parser.problem_mark, what);
	}
	return 0;
}

/* Children until the matching end event; ev holds the start event. */
static struct ydoc_node *
parse_collection(struct builder *b, yaml_event_t *start, unsigned depth)
{
	bool map = start->type == YAML_MAPPING_START_EVENT;
	struct ydoc_node *n;
	size_t count = 0, cap = 0;

	if (depth >= YDOC_MAX_DEPTH) {
		fail_at(b, &start->start_mark, "nested too deeply");
		return NULL;
	}
	if ((n = new_node(b, map ? YDOC_MAP : YDOC_SEQ, &start->start_mark)) == NULL)
		return NULL;
	for (;;) {
		yaml_event_t ev;
		struct ydoc_node *child;

		if (next_event(b, &ev) == -1)
			goto fail;
		if (ev.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
			yaml_event_delete(&ev);
			break;
		}
		child = parse_node(b, &ev, depth + 1);
		yaml_event_delete(&ev);
		if (child == NULL)
			goto fail;
		if (map && (count % 2) == 0 && child->type != YDOC_SCALAR) {
			fail_at(b, &(yaml_mark_t){ .line = child->line - 1, .column = child->col - 1 },
			    "mapping keys must be plain strings");
			node_free(child);
			goto fail;
		}

		if (items_add(&n->items, &count, &cap, child) == -1) {
			node_free(child);
			fail_at(b, &start->start_mark, "out of memory");
			goto fail;
		}
		n->n = map ? count / 2 : count;
	}
	n->n = map ? count / 2 : count;
	if (map && n->n > 1 && check_duplicate_keys(b, n) == -1) {
		node_free(n);
		return NULL;
	}
	return n;
fail:
	/* Free by the count actually held, including an unpaired last key. */
	n->n = map ? (count + 1) / 2 : count;
	if (map && (count % 2) == 1) {
		/* node_free walks n*2 items: give the odd key a NULL partner. */
		if (items_add(&n->items, &count, &cap, NULL) == -1) {
			node_free(n->items[count - 1]);
			n->n = count / 2;
		}
	}
	node_free(n);
	return NULL;
}

static struct ydoc_node *
parse_node(struct builder *b, yaml_event_t *ev, unsigned depth)
{
	struct ydoc_node *n;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor) {
			fail_at(b, &ev->start_mark, "anchors are not accepted");
			return NULL;
		}
		if ((n = new_node(b, YDOC_SCALAR, &ev->start_mark)) == NULL)
			return NULL;
		n->len = ev->data.scalar.length;
		if ((n->str = malloc(n->len + 1)) == NULL) {
			free(n);
			fail_at(b, &ev->start_mark, "out of memory");
			return NULL;
		}
		memcpy(n->str, ev->data.scalar.value, n->len);
		n->str[n->len] = '\0';
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		return n;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if ((ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor) ||
		    (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor)) {
			fail_at(b, &ev->start_mark, "anchors are not accepted");
			return NULL;
		}
		return parse_collection(b, ev, depth);
	case YAML_ALIAS_EVENT:
		fail_at(b, &ev->start_mark, "aliases are not accepted");
		return NULL;
	default:
		fail_at(b, &ev->start_mark, "unexpected YAML event");
		return NULL;
	}
}

int
ydoc_parse(const char *data, size_t len, struct ydoc_stream **out,
    char *err, size_t errlen)
{
	struct builder b = { .err = err, .errlen = errlen, .input = data, .inputlen = len };
	struct ydoc_stream *s;
	size_t cap = 0;
	bool done = false;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!yaml_parser_initialize(&b.parser)) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* libyaml asserts on a NULL input even when it is empty. */
	yaml_parser_set_input_string(&b.parser, (const unsigned char *)(data ? data : ""), data ? len : 0);
	while (!done) {
		yaml_event_t ev;
		struct ydoc_node *root = NULL;

		if (next_event(&b, &ev) == -1)
			goto fail;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			yaml_event_delete(&ev);
			if (next_event(&b, &ev) == -1)
				goto fail;
			root = parse_node(&b, &ev, 0);
			yaml_event_delete(&ev);
			if (root == NULL)
				goto fail;
			if (items_add(&s->docs, &s->ndocs, &cap, root) == -1) {
				node_free(root);
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			if (next_event(&b, &ev) == -1)
				goto fail;
			if (ev.type != YAML_DOCUMENT_END_EVENT) {
				fail_at(&b, &ev.start_mark, "expected the end of the document");
				yaml_event_delete(&ev);
				goto fail;
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&b.parser);
	*out = s;
	return 0;
fail:
	yaml_parser_delete(&b.parser);
	ydoc_free(s);
	return -1;
}

struct ydoc_node *
ydoc_get(const struct ydoc_node *map, const char *key)
{
	size_t i;

	if (map == NULL || map->type != YDOC_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->items[2 * i]->str, key) == 0)
			return map->items[2 * i + 1];
	return NULL;
}

const char *
ydoc_str(const struct ydoc_node *n)
{
	return n != NULL && n->type == YDOC_SCALAR ? n->str : NULL;
}

size_t
ydoc_count(const struct ydoc_node *n)
{
	return n != NULL && n->type != YDOC_SCALAR ? n->n : 0;
}

const char *
ydoc_type_name(enum ydoc_type t)
{
	switch (t) {
	case YDOC_SCALAR:	return "a scalar";
	case YDOC_SEQ:		return "a list";
	case YDOC_MAP:		return "a mapping";
	}
	return "?";
}
