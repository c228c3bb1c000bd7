/* fuzz_dsn: libFuzzer target for db_conf_parse (node/db.c). A DSN comes
 * from the node's configuration; whatever it holds, parsing must not crash
 * or leak, and an accepted one names a database that is safe to put in SQL
 * unquoted. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

#define FUZZ_MAXLEN	2048

static void
check(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dsn[FUZZ_MAXLEN + 1], err[256];
	struct db_conf c;
	const char *p;

	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (size > 0)
		memcpy(dsn, data, size);
	dsn[size] = '\0';

	memset(&c, 0xaa, sizeof(c));
	memset(err, 'x', sizeof(err));
	if (db_conf_parse(dsn, &c, err, sizeof(err)) == 0) {
		check(c.database != NULL && c.database[0] != '\0');
		for (p = c.database; *p; p++)
			check((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '_');
		check(c.user != NULL);
		check(c.port <= 65535);
		check(strncmp(dsn, "mysql://", 8) == 0 || strncmp(dsn, "mariadb://", 10) == 0);
	} else {
		check(memchr(err, '\0', sizeof(err)) != NULL);
		check(err[0] != '\0');
		/* nothing is left behind for the caller to free */
		check(c.host == NULL && c.socket == NULL && c.user == NULL &&
		    c.password == NULL && c.database == NULL);
	}
	db_conf_free(&c);
	check(c.host == NULL && c.socket == NULL && c.user == NULL &&
	    c.password == NULL && c.database == NULL);
	return 0;
}
