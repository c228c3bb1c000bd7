/* yamlw: a thin layer over libyaml's emitter writing into a struct buf. */
#include "yamlw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int
yamlw_write(void *data, unsigned char *p, size_t n)
{
	struct yamlw *w = data;

	return buf_append(w->out, p, n) == 0;
}

static void
emit(struct yamlw *w, yaml_event_t *ev)
{
	if (w->failed) {
		yaml_event_delete(ev);
		return;
	}
	/* yaml_emitter_emit frees the event whatever it returns. */
	if (!yaml_emitter_emit(&w->em, ev))
		w->failed = true;
}

void
yamlw_begin(struct yamlw *w, struct buf *out)
{
	yaml_event_t ev;

	memset(w, 0, sizeof(*w));
	w->out = out;
	if (!yaml_emitter_initialize(&w->em)) {
		w->failed = true;
		return;
	}
	yaml_emitter_set_output(&w->em, yamlw_write, w);
	yaml_emitter_set_unicode(&w->em, 1);
	yaml_emitter_set_width(&w->em, -1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	emit(w, &ev);
}

static void
doc_end(struct yamlw *w)
{
	yaml_event_t ev;

	if (!w->in_doc)
		return;
	yaml_document_end_event_initialize(&ev, 1);
	emit(w, &ev);
	w->in_doc = false;
}

void
yamlw_doc(struct yamlw *w)
{
	yaml_event_t ev;

	doc_end(w);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0);
	emit(w, &ev);
	w->in_doc = true;
}

int
yamlw_end(struct yamlw *w)
{
	yaml_event_t ev;

	doc_end(w);
	yaml_stream_end_event_initialize(&ev);
	emit(w, &ev);
	if (!w->failed && !yaml_emitter_flush(&w->em))
		w->failed = true;
	yaml_emitter_delete(&w->em);
	return w->failed ? -1 : 0;
}

void
yamlw_map(struct yamlw *w)
{
	yaml_event_t ev;

	yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
	emit(w, &ev);
}

void
yamlw_map_end(struct yamlw *w)
{
	yaml_event_t ev;

	yaml_mapping_end_event_initialize(&ev);
	emit(w, &ev);
}

void
yamlw_seq(struct yamlw *w)
{
	yaml_event_t ev;

	yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
	emit(w, &ev);
}

void
yamlw_seq_end(struct yamlw *w)
{
	yaml_event_t ev;

	yaml_sequence_end_event_initialize(&ev);
	emit(w, &ev);
}

static void
scalar(struct yamlw *w, const char *s, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
	    (int)strlen(s), 1, 1, style)) {
		w->failed = true;
		return;
	}
	emit(w, &ev);
}

/* Would a plain scalar with this text be read back as a non-string? */
static int
looks_typed(const char *s)
{
	static const char *const words[] = { "true", "false", "yes", "no", "on", "off",
	    "null", "~", "True", "False", "Yes", "No", "On", "Off", "Null", "TRUE",
	    "FALSE", "YES", "NO", "ON", "OFF", "NULL", "" };
	size_t i;
	const char *p = s;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(s, words[i]) == 0)
			return 1;
	if (*p == '-' || *p == '+')
		p++;
	if (*p >= '0' && *p <= '9')
		return 1;		/* numbers, dates, versions: keep as strings */
	if (*p == '.')
		return 1;		/* .inf, .nan, .5 */
	return 0;
}

void
yamlw_str(struct yamlw *w, const char *s)
{
	if (s == NULL) {
		yamlw_null(w);
		return;
	}
	scalar(w, s, looks_typed(s) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
}

void
yamlw_u64(struct yamlw *w, uint64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRIu64, v);
	scalar(w, b, YAML_PLAIN_SCALAR_STYLE);
}

void
yamlw_bool(struct yamlw *w, bool v)
{
	scalar(w, v ? "true" : "false", YAML_PLAIN_SCALAR_STYLE);
}

void
yamlw_null(struct yamlw *w)
{
	scalar(w, "null", YAML_PLAIN_SCALAR_STYLE);
}

void
yamlw_kstr(struct yamlw *w, const char *k, const char *v)
{
	yamlw_str(w, k);
	yamlw_str(w, v);
}

void
yamlw_ku64(struct yamlw *w, const char *k, uint64_t v)
{
	yamlw_str(w, k);
	yamlw_u64(w, v);
}

void
yamlw_kbool(struct yamlw *w, const char *k, bool v)
{
	yamlw_str(w, k);
	yamlw_bool(w, v);
}

void
yamlw_ktime(struct yamlw *w, const char *k, int64_t epoch)
{
	char b[32];
	time_t t = (time_t)epoch;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(b, sizeof(b), "%" PRId64, epoch);
	yamlw_kstr(w, k, b);
}

void
yamlw_node(struct yamlw *w, const struct ydoc_node *n)
{
	size_t i;

	if (n == NULL) {
		yamlw_null(w);
		return;
	}
	switch (n->type) {
	case YDOC_SCALAR:
		if (n->plain)
			scalar(w, n->str, YAML_PLAIN_SCALAR_STYLE);
		else
			yamlw_str(w, n->str);
		return;
	case YDOC_SEQ:
		yamlw_seq(w);
		for (i = 0; i < n->n; i++)
			yamlw_node(w, n->items[i]);
		yamlw_seq_end(w);
		return;
	case YDOC_MAP:
		yamlw_map(w);
		for (i = 0; i < n->n; i++) {
			yamlw_str(w, n->items[2 * i]->str);
			yamlw_node(w, n->items[2 * i + 1]);
		}
		yamlw_map_end(w);
		return;
	}
}
