/* fuzz_settings: libFuzzer target for node/settings.c. Setting values come
 * from the provisioning API and SNMP SETs; every definition must refuse bad
 * text with a reason naming the setting, and what it accepts must format to
 * canonical text that parses back to the same canonical text. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "settings.h"

#define FUZZ_MAXLEN	1024

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static void
fuzz_def(const struct setting_def *d, const char *text)
{
	struct service_settings s, t;
	struct buf one, two;
	char err[256];
	size_t klen = strlen(d->key);

	memset(&s, 0, sizeof(s));
	memset(err, 'x', sizeof(err));
	if (settings_parse(d, text, &s, err, sizeof(err)) != 0) {
		check(memchr(err, '\0', sizeof(err)) != NULL);
		check(strncmp(err, d->key, klen) == 0 && err[klen] == ':');
		return;
	}
	switch (d->type) {
	case SETTING_BOOL:
		break;
	case SETTING_ADDRLIST:
		check(s.nbind >= d->min && s.nbind <= d->max);
		break;
	default: {
		uint32_t v;

		memcpy(&v, (char *)&s + d->offset, sizeof(v));
		check(v >= d->min && v <= d->max);
		break;
	}
	}

	buf_init(&one, 4096);
	buf_init(&two, 4096);
	check(settings_format(d, &s, &one) == 0);
	memset(&t, 0, sizeof(t));
	check(settings_parse(d, buf_cstr(&one), &t, err, sizeof(err)) == 0);
	check(settings_format(d, &t, &two) == 0);
	check(buf_len(&one) == buf_len(&two));
	check(memcmp(buf_cstr(&one), buf_cstr(&two), buf_len(&one)) == 0);
	buf_free(&one);
	buf_free(&two);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[FUZZ_MAXLEN + 1];
	size_t i;

	if (size > FUZZ_MAXLEN)
		size = FUZZ_MAXLEN;
	if (size > 0)
		memcpy(text, data, size);
	text[size] = '\0';
	for (i = 0; i < settings_ndefs; i++)
		fuzz_def(&settings_defs[i], text);
	return 0;
}
