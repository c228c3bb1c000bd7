/* set_txn: building the document stream of a SET. Services take partial
 * documents (only the named settings change); a Tenant document is whole,
 * so the tenant's stored spec is read and written back with the changed
 * fields. The stored documents read on the way make the undo stream.
 *
 * Over AgentX the phases arrive as TestSet (RESERVE1, RESERVE2), CommitSet
 * (ACTION), UndoSet (UNDO) and CleanupSet (COMMIT or FREE), and snmpd
 * answers the manager after CommitSet: so the change is applied in ACTION,
 * where a failure still reaches the manager (commitFailed), and undone with
 * the undo stream when another part of the request failed. */
#include "set_txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "node_client.h"
#include "snapshot.h"
#include "traps.h"
#include "yamlw.h"
#include "ydoc.h"

#define TXN_MAX	64

enum ov_kind { OV_STR, OV_U64, OV_BOOL, OV_ACCESS };

struct txn_change {
	enum txn_scope	 scope;
	char		 name[64];
	char		 key[32];
	enum ov_kind	 kind;
	char		 s[64];
	uint64_t	 u;
	bool		 b;
};

struct txn_rule {
	enum txn_scope	 scope;
	char		 name[64];
	char		 address[64];
	enum txn_rule_op op;
};

static struct {
	long			 owner;		/* the request's transaction id */
	int			 phase;
	bool			 validated, applied;
	int			 verdict;
	struct txn_change	 ch[TXN_MAX];
	size_t			 nch;
	struct txn_rule		 rules[TXN_MAX];
	size_t			 nrules;
	uint32_t		 thr[TRAPS_NTHRESHOLDS], thr_old[TRAPS_NTHRESHOLDS];
	bool			 thr_set[TRAPS_NTHRESHOLDS];
	struct buf		 stream, undo;
} txn;

/* The phases of one SET come in separate AgentX messages (TestSet,
 * CommitSet, CleanupSet), each with its own agent request; the AgentX
 * transaction id is what they share. */
static long
txn_id(netsnmp_agent_request_info *ri)
{
	return ri && ri->asp && ri->asp->pdu ? ri->asp->pdu->transid : -1;
}

static void
txn_reset(long owner)
{
	buf_free(&txn.stream);
	buf_free(&txn.undo);
	memset(&txn, 0, sizeof(txn));
	buf_init(&txn.stream, 0);
	buf_init(&txn.undo, 0);
	txn.owner = owner;
	txn.phase = MODE_SET_RESERVE1;
}

void
set_txn_begin(netsnmp_agent_request_info *ri)
{
	/* The same request passes RESERVE1 once per handler. */
	if (txn.owner != txn_id(ri) || txn.phase != MODE_SET_RESERVE1)
		txn_reset(txn_id(ri));
}

static struct txn_change *
change_new(enum txn_scope scope, const char *name, const char *key)
{
	struct txn_change *c = NULL;
	size_t i;

	for (i = 0; i < txn.nch; i++)
		if (txn.ch[i].scope == scope && strcmp(txn.ch[i].name, name) == 0 &&
		    strcmp(txn.ch[i].key, key) == 0)
			c = &txn.ch[i];		/* the last varbind wins */
	if (c == NULL) {
		if (txn.nch == TXN_MAX)
			return NULL;
		c = &txn.ch[txn.nch++];
	}
	memset(c, 0, sizeof(*c));
	c->scope = scope;
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->key, sizeof(c->key), "%s", key);
	return c;
}

int
set_txn_str(enum txn_scope scope, const char *name, const char *key, const char *value)
{
	struct txn_change *c = change_new(scope, name, key);

	if (c == NULL)
		return -1;
	c->kind = OV_STR;
	snprintf(c->s, sizeof(c->s), "%s", value);
	return 0;
}

int
set_txn_u64(enum txn_scope scope, const char *name, const char *key, uint64_t value)
{
	struct txn_change *c = change_new(scope, name, key);

	if (c == NULL)
		return -1;
	c->kind = OV_U64;
	c->u = value;
	return 0;
}

int
set_txn_bool(enum txn_scope scope, const char *name, const char *key, bool value)
{
	struct txn_change *c = change_new(scope, name, key);

	if (c == NULL)
		return -1;
	c->kind = OV_BOOL;
	c->b = value;
	return 0;
}

int
set_txn_mode(enum txn_scope scope, const char *name, int mode)
{
	return set_txn_str(scope, name, "access.mode", snapshot_mode_name(mode));
}

int
set_txn_rule(enum txn_scope scope, const char *name, const char *address, enum txn_rule_op op)
{
	struct txn_rule *r;

	if (txn.nrules == TXN_MAX)
		return -1;
	r = &txn.rules[txn.nrules++];
	r->scope = scope;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->op = op;
	return 0;
}

int
set_txn_threshold(unsigned which, uint32_t value)
{
	if (which >= TRAPS_NTHRESHOLDS)
		return -1;
	txn.thr[which] = value;
	txn.thr_set[which] = true;
	return 0;
}

/* The access rules of a scope after this transaction. */
struct access_after {
	bool		 touched;
	const char	*mode;
	const char	*list[1024];
	size_t		 n;
};

/* Apply the staged mode and rules to the stored access (acc: the spec's
 * access node, may be NULL). Returns an SNMP error for a RowStatus that
 * does not fit what is stored. */
static int
access_compute(enum txn_scope scope, const char *name, const struct ydoc_node *acc,
    struct access_after *a)
{
	const struct ydoc_node *list = ydoc_get(acc, "addresses");
	size_t i, k;

	memset(a, 0, sizeof(*a));
	a->mode = ydoc_str(ydoc_get(acc, "mode")) ? ydoc_str(ydoc_get(acc, "mode")) : "open";
	for (i = 0; list && list->type == YDOC_SEQ && i < list->n && a->n < 1024; i++)
		if (ydoc_str(list->items[i]))
			a->list[a->n++] = ydoc_str(list->items[i]);
	for (i = 0; i < txn.nch; i++)
		if (txn.ch[i].scope == scope && strcmp(txn.ch[i].name, name) == 0 &&
		    strcmp(txn.ch[i].key, "access.mode") == 0) {
			a->mode = txn.ch[i].s;
			a->touched = true;
		}
	for (i = 0; i < txn.nrules; i++) {
		const struct txn_rule *r = &txn.rules[i];
		size_t at = a->n;

		if (r->scope != scope || strcmp(r->name, name) != 0)
			continue;
		for (k = 0; k < a->n; k++)
			if (strcmp(a->list[k], r->address) == 0)
				at = k;
		switch (r->op) {
		case RULE_CREATE:
			if (at < a->n)
				return SNMP_ERR_INCONSISTENTVALUE;	/* the row exists */
			if (a->n == 1024)
				return SNMP_ERR_RESOURCEUNAVAILABLE;
			a->list[a->n++] = r->address;
			a->touched = true;
			break;
		case RULE_ACTIVE:
			if (at == a->n)
				return SNMP_ERR_INCONSISTENTVALUE;	/* no such row */
			break;
		case RULE_DESTROY:
			if (at < a->n) {
				memmove(&a->list[at], &a->list[at + 1], (a->n - at - 1) * sizeof(a->list[0]));
				a->n--;
				a->touched = true;
			}
			break;
		}
	}
	return SNMP_ERR_NOERROR;
}

static void
emit_access(struct yamlw *w, const struct access_after *a)
{
	size_t i;

	yamlw_map(w);
	yamlw_kstr(w, "mode", a->mode);
	yamlw_str(w, "addresses");
	yamlw_seq(w);
	for (i = 0; i < a->n; i++)
		yamlw_str(w, a->list[i]);
	yamlw_seq_end(w);
	yamlw_map_end(w);
}

static void
emit_change(struct yamlw *w, const struct txn_change *c)
{
	switch (c->kind) {
	case OV_STR:
		yamlw_str(w, c->s);
		break;
	case OV_U64:
		yamlw_u64(w, c->u);
		break;
	case OV_BOOL:
		yamlw_bool(w, c->b);
		break;
	case OV_ACCESS:
		break;
	}
}

/* The changes of one scope, by spec path; access.mode is part of access. */
struct ov_set {
	const struct txn_change	*c[TXN_MAX];
	bool			 used[TXN_MAX];
	size_t			 n;
	const struct access_after *access;	/* replaces spec.access when touched */
	bool			 access_used;
};

static bool
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Write map (may be NULL) with the overrides under prefix put in. */
static void
emit_map(struct yamlw *w, const struct ydoc_node *map, const char *prefix, struct ov_set *o)
{
	char full[128];
	size_t i, k, plen = strlen(prefix);

	yamlw_map(w);
	/* A map's n counts pairs: items[2i] is a key, items[2i + 1] its value. */
	for (i = 0; map && map->type == YDOC_MAP && i < 2 * map->n; i += 2) {
		const char *key = ydoc_str(map->items[i]);
		bool done = false, below = false;

		if (key == NULL)
			continue;
		snprintf(full, sizeof(full), "%s%s", prefix, key);
		if (strcmp(full, "access") == 0 && o->access) {
			yamlw_str(w, key);
			emit_access(w, o->access);
			o->access_used = true;
			continue;
		}
		for (k = 0; k < o->n; k++)
			if (strcmp(o->c[k]->key, full) == 0) {
				yamlw_str(w, key);
				emit_change(w, o->c[k]);
				o->used[k] = done = true;
				break;
			}
		if (done)
			continue;
		for (k = 0; k < o->n; k++)
			if (has_prefix(o->c[k]->key, full) && o->c[k]->key[strlen(full)] == '.')
				below = true;
		yamlw_str(w, key);
		if (below && map->items[i + 1]->type == YDOC_MAP) {
			char sub[sizeof(full) + 1];

			snprintf(sub, sizeof(sub), "%s.", full);
			emit_map(w, map->items[i + 1], sub, o);
		} else
			yamlw_node(w, map->items[i + 1]);
	}
	if (plen == 0 && o->access && !o->access_used) {
		yamlw_str(w, "access");
		emit_access(w, o->access);
		o->access_used = true;
	}
	for (k = 0; k < o->n; k++) {
		const char *rest, *dot;

		if (o->used[k] || !has_prefix(o->c[k]->key, prefix))
			continue;
		rest = o->c[k]->key + plen;
		if ((dot = strchr(rest, '.')) == NULL) {
			yamlw_str(w, rest);
			emit_change(w, o->c[k]);
			o->used[k] = true;
		} else {
			char name[64], sub[256];

			snprintf(name, sizeof(name), "%.*s", (int)(dot - rest), rest);
			snprintf(sub, sizeof(sub), "%s%s.", prefix, name);
			yamlw_str(w, name);
			emit_map(w, NULL, sub, o);
		}
	}
	yamlw_map_end(w);
}

/* The stored document of a service or tenant; its spec in *spec. */
static int
fetch_spec(enum txn_scope scope, const char *name, struct ydoc_stream **st,
    const struct ydoc_node **spec)
{
	char path[160], err[256];
	struct buf out;
	int status;

	*st = NULL;
	*spec = NULL;
	snprintf(path, sizeof(path), "/v1/%s/%s", scope == TXN_SERVICE ? "services" : "tenants", name);
	buf_init(&out, 0);
	status = node_request("GET", path, NULL, 0, &out, err, sizeof(err));
	if (status == -1) {
		snmp_log(LOG_WARNING, "mailnode-snmp: SET: %s\n", err);
		buf_free(&out);
		return SNMP_ERR_RESOURCEUNAVAILABLE;
	}
	if (status == 404) {
		buf_free(&out);
		return SNMP_ERR_INCONSISTENTNAME;
	}
	if (status != 200 || ydoc_parse(buf_cstr(&out), buf_len(&out), st, err, sizeof(err)) == -1 ||
	    (*st)->ndocs < 1) {
		buf_free(&out);
		ydoc_free(*st);
		*st = NULL;
		return SNMP_ERR_GENERR;
	}
	buf_free(&out);
	*spec = ydoc_get((*st)->docs[0], "spec");
	return SNMP_ERR_NOERROR;
}

static void
doc_head(struct yamlw *w, enum txn_scope scope, const char *name)
{
	yamlw_doc(w);
	yamlw_map(w);
	yamlw_kstr(w, "apiVersion", "mailnode/v1");
	yamlw_kstr(w, "kind", scope == TXN_SERVICE ? "Service" : "Tenant");
	yamlw_str(w, "metadata");
	yamlw_map(w);
	yamlw_kstr(w, "name", name);
	yamlw_map_end(w);
	yamlw_str(w, "spec");
}

/* What a Service document must say to put back the stored values of the
 * settings this transaction changes. */
static void
emit_service_undo(struct yamlw *u, const struct ydoc_node *spec, const struct ov_set *o, bool access)
{
	const struct ydoc_node *v;
	size_t k;

	yamlw_map(u);
	for (k = 0; k < o->n; k++)
		if ((v = ydoc_get(spec, o->c[k]->key)) != NULL) {
			yamlw_str(u, o->c[k]->key);
			yamlw_node(u, v);
		}
	if (access) {
		yamlw_str(u, "access");
		if ((v = ydoc_get(spec, "access")) != NULL)
			yamlw_node(u, v);
		else {
			yamlw_map(u);
			yamlw_kstr(u, "mode", "open");
			yamlw_map_end(u);
		}
	}
	yamlw_map_end(u);
}

/* One document for a scope with staged changes (w), and the one that
 * restores what is stored now (u). */
static int
emit_scope(struct yamlw *w, struct yamlw *u, enum txn_scope scope, const char *name)
{
	struct ydoc_stream *st = NULL;
	const struct ydoc_node *spec;
	struct access_after acc;
	struct ov_set o;
	bool rules = false;
	size_t i;
	int err;

	memset(&o, 0, sizeof(o));
	for (i = 0; i < txn.nch; i++)
		if (txn.ch[i].scope == scope && strcmp(txn.ch[i].name, name) == 0 &&
		    strcmp(txn.ch[i].key, "access.mode") != 0)
			o.c[o.n++] = &txn.ch[i];
	for (i = 0; i < txn.nrules; i++)
		if (txn.rules[i].scope == scope && strcmp(txn.rules[i].name, name) == 0)
			rules = true;
	if ((err = fetch_spec(scope, name, &st, &spec)) != SNMP_ERR_NOERROR)
		return err;
	if ((err = access_compute(scope, name, ydoc_get(spec, "access"), &acc)) != SNMP_ERR_NOERROR) {
		ydoc_free(st);
		return err;
	}
	if (acc.touched || rules)
		o.access = &acc;
	doc_head(w, scope, name);
	/* A Service document names only what changes; a Tenant's is whole. */
	emit_map(w, scope == TXN_TENANT ? spec : NULL, "", &o);
	yamlw_map_end(w);
	doc_head(u, scope, name);
	if (scope == TXN_TENANT) {
		if (spec)
			yamlw_node(u, spec);
		else {
			yamlw_map(u);
			yamlw_map_end(u);
		}
	} else
		emit_service_undo(u, spec, &o, o.access != NULL);
	yamlw_map_end(u);
	ydoc_free(st);
	return SNMP_ERR_NOERROR;
}

static bool
seen_before(enum txn_scope scope, const char *name, size_t ch_upto, size_t rule_upto)
{
	size_t i;

	for (i = 0; i < ch_upto; i++)
		if (txn.ch[i].scope == scope && strcmp(txn.ch[i].name, name) == 0)
			return true;
	for (i = 0; i < rule_upto; i++)
		if (txn.rules[i].scope == scope && strcmp(txn.rules[i].name, name) == 0)
			return true;
	return false;
}

static int
build_stream(void)
{
	struct yamlw w, u;
	size_t i;
	int err = SNMP_ERR_NOERROR;

	buf_reset(&txn.stream);
	buf_reset(&txn.undo);
	if (txn.nch == 0 && txn.nrules == 0)
		return SNMP_ERR_NOERROR;
	yamlw_begin(&w, &txn.stream);
	yamlw_begin(&u, &txn.undo);
	for (i = 0; i < txn.nch && err == SNMP_ERR_NOERROR; i++)
		if (!seen_before(txn.ch[i].scope, txn.ch[i].name, i, 0))
			err = emit_scope(&w, &u, txn.ch[i].scope, txn.ch[i].name);
	for (i = 0; i < txn.nrules && err == SNMP_ERR_NOERROR; i++)
		if (!seen_before(txn.rules[i].scope, txn.rules[i].name, txn.nch, i))
			err = emit_scope(&w, &u, txn.rules[i].scope, txn.rules[i].name);
	if ((yamlw_end(&w) == -1 || yamlw_end(&u) == -1) && err == SNMP_ERR_NOERROR)
		err = SNMP_ERR_GENERR;
	return err;
}

/* The node's verdict on an apply as an SNMP error. */
static int
apply(const struct buf *stream, bool dry_run)
{
	struct buf out;
	char err[256];
	int status;

	buf_init(&out, 0);
	status = node_request("POST", dry_run ? "/v1/apply?dryRun=true" : "/v1/apply",
	    buf_data(stream), buf_len(stream), &out, err, sizeof(err));
	if (status != 200) {
		snmp_log(LOG_WARNING, "mailnode-snmp: SET refused (%d): %s\n", status,
		    status == -1 ? err : buf_cstr(&out));
		snmp_log(LOG_DEBUG, "mailnode-snmp: the documents were:\n%.*s\n",
		    (int)buf_len(stream), buf_data(stream));
	}
	buf_free(&out);
	switch (status) {
	case 200:
		return SNMP_ERR_NOERROR;
	case 400:
		return SNMP_ERR_WRONGVALUE;
	case 404:
		return SNMP_ERR_INCONSISTENTNAME;
	case 409:
		return SNMP_ERR_INCONSISTENTVALUE;
	case -1:
	case 503:
		return SNMP_ERR_RESOURCEUNAVAILABLE;
	default:
		return SNMP_ERR_GENERR;
	}
}

int
set_txn_validate(netsnmp_agent_request_info *ri)
{
	if (txn.owner != txn_id(ri))
		return SNMP_ERR_GENERR;
	txn.phase = MODE_SET_RESERVE2;
	if (txn.validated)
		return SNMP_ERR_NOERROR;	/* told once, on the first handler */
	txn.validated = true;
	if ((txn.verdict = build_stream()) == SNMP_ERR_NOERROR && buf_len(&txn.stream) > 0)
		txn.verdict = apply(&txn.stream, true);
	return txn.verdict;
}

int
set_txn_action(netsnmp_agent_request_info *ri)
{
	unsigned i;

	if (txn.owner != txn_id(ri) || !txn.validated || txn.verdict != SNMP_ERR_NOERROR)
		return SNMP_ERR_COMMITFAILED;
	txn.phase = MODE_SET_ACTION;
	if (txn.applied)
		return SNMP_ERR_NOERROR;
	/* All or nothing: a failed apply stored nothing. */
	if (buf_len(&txn.stream) > 0 && apply(&txn.stream, false) != SNMP_ERR_NOERROR) {
		snapshot_invalidate();
		return SNMP_ERR_COMMITFAILED;
	}
	txn.applied = true;
	for (i = 0; i < TRAPS_NTHRESHOLDS; i++) {
		txn.thr_old[i] = traps_threshold(i);
		if (txn.thr_set[i])
			traps_threshold_set(i, txn.thr[i]);
	}
	snapshot_invalidate();
	return SNMP_ERR_NOERROR;
}

int
set_txn_undo(netsnmp_agent_request_info *ri)
{
	unsigned i;
	int err = SNMP_ERR_NOERROR;

	if (txn.owner != txn_id(ri) || !txn.applied)
		return SNMP_ERR_NOERROR;
	txn.applied = false;
	for (i = 0; i < TRAPS_NTHRESHOLDS; i++)
		traps_threshold_set(i, txn.thr_old[i]);
	if (buf_len(&txn.undo) > 0 && apply(&txn.undo, false) != SNMP_ERR_NOERROR)
		err = SNMP_ERR_UNDOFAILED;
	snapshot_invalidate();
	return err;
}

void
set_txn_commit(netsnmp_agent_request_info *ri)
{
	unsigned i;

	if (txn.owner != txn_id(ri) || !txn.applied)
		return;
	txn.phase = MODE_SET_COMMIT;
	for (i = 0; i < TRAPS_NTHRESHOLDS; i++)
		if (txn.thr_set[i]) {
			if (traps_thresholds_save() == -1)
				snmp_log(LOG_WARNING, "mailnode-snmp: thresholds set but not saved to disk\n");
			break;
		}
	txn_reset(-1);
}

void
set_txn_abort(netsnmp_agent_request_info *ri)
{
	if (txn.owner == txn_id(ri))
		txn_reset(-1);
}
