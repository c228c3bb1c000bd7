/* fuzz_schema: libFuzzer target for provisioning/schema.c. Every document a
 * control panel sends is parsed by ydoc and validated against the real
 * schemas/mailnode-v1.schema.yaml, so validation must survive any tree;
 * whatever it says must be consistent: valid exactly when no error is
 * stored, and every error at a real position (line and column >= 1) with a
 * NUL-terminated path and a message that says something. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "ydoc.h"

#ifndef MAILNODE_SCHEMA_DIR
#define MAILNODE_SCHEMA_DIR	"schemas"
#endif

#define FUZZ_MAXLEN	(256 * 1024)
#define FUZZ_MAXERR	16

static struct schema *schema;

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* A format callback like the node's: refuses some values so that format
 * errors are exercised too, and checks what it is given. */
static int
format_cb(void *ctx, const char *format, const struct ydoc_node *value, const char *key,
    char *why, size_t whylen)
{
	(void)ctx;
	check(format != NULL && key != NULL && value != NULL && why != NULL && whylen > 0);
	check(value->type == YDOC_SCALAR);
	if (strcmp(format, "size") == 0)
		return -1;	/* unknown to the callback: must count as valid */
	if (value->len > 0 && value->str[0] == 'X') {
		snprintf(why, whylen, "starts with X\n(and a second line)");
		return 0;
	}
	return 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("MAILNODE_SOURCE_DIR");
	char path[1024], err[512];

	(void)argc;
	(void)argv;
	if (dir != NULL && dir[0] != '\0')
		snprintf(path, sizeof(path), "%s/schemas/mailnode-v1.schema.yaml", dir);
	else
		snprintf(path, sizeof(path), "%s/mailnode-v1.schema.yaml", MAILNODE_SCHEMA_DIR);
	if ((schema = schema_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_schema: %s\n", err);
		abort();
	}
	schema_set_format(schema, format_cb, NULL);
	return 0;
}

static void
check_result(int rc, const struct schema_error *errs, size_t max, size_t n)
{
	size_t i;

	check(rc == 0 || rc == 1);
	check(n <= max);
	if (max > 0)
		check((rc == 0) == (n == 0));
	for (i = 0; i < n; i++) {
		check(errs[i].line >= 1 && errs[i].col >= 1);
		check(memchr(errs[i].path, '\0', sizeof(errs[i].path)) != NULL);
		check(memchr(errs[i].message, '\0', sizeof(errs[i].message)) != NULL);
		check(errs[i].message[0] != '\0');
		/* sorted by position */
		if (i > 0)
			check(errs[i - 1].line < errs[i].line ||
			    (errs[i - 1].line == errs[i].line && errs[i - 1].col <= errs[i].col));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct schema_error errs[FUZZ_MAXERR];
	struct ydoc_stream *s = NULL;
	char err[256];
	size_t i, n, nfew;
	int rc, rcfew;

	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (data == NULL)
		data = (const uint8_t *)"";
	if (ydoc_parse((const char *)data, size, &s, err, sizeof(err)) != 0)
		return 0;
	for (i = 0; i < s->ndocs; i++) {
		/* poison so that unterminated strings would be caught */
		memset(errs, 'x', sizeof(errs));
		rc = schema_validate(schema, "#", s->docs[i], errs, FUZZ_MAXERR, &n);
		check_result(rc, errs, FUZZ_MAXERR, n);
		/* fewer slots: same verdict, the first ones of the longer list */
		rcfew = schema_validate(schema, "#", s->docs[i], errs, 1, &nfew);
		check_result(rcfew, errs, 1, nfew);
		check(rcfew == rc);
		/* a definition as the entry point */
		rc = schema_validate(schema, "#/$defs/TenantSpec", s->docs[i], errs,
		    FUZZ_MAXERR, &n);
		check_result(rc, errs, FUZZ_MAXERR, n);
	}
	ydoc_free(s);
	return 0;
}
