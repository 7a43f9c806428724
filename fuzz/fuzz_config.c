/* handlers/conffile.h: the configuration file (written by an operator, but
 * parsed before anything else runs, so it must never crash on a typo).
 * Invariants: 0, -EINVAL or -ENOMEM; an error message names the file and a
 * line that exists, and fits the buffer however small; on success every
 * value is in its documented range and each api_key_sha256 line added one
 * key; release leaves nothing behind (LeakSanitizer). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz/fuzz.h"
#include "handlers/conffile.h"

/* Lines whose key, trimmed, is api_key_sha256. */
static size_t key_lines(const char *s, size_t n)
{
	static const char key[] = "api_key_sha256";
	size_t count = 0;

	for (const char *p = s, *end = s + n; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;

		while (p < eol && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(eol - p) >= sizeof(key) - 1 && memcmp(p, key, sizeof(key) - 1) == 0) {
			p += sizeof(key) - 1;
			while (p < eol && (*p == ' ' || *p == '\t'))
				p++;
			count += p < eol && *p == '=';
		}
		p = eol + 1;
	}
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_exact(data, size);
	size_t lines = 1, errlen = size % 24 + 1;
	struct pd_config c;
	char err[256], *tiny = malloc(errlen);
	int rc;

	FUZZ_CHECK(tiny != NULL);
	for (size_t i = 0; i < size; i++)
		lines += text[i] == '\n';

	FUZZ_CHECK(pd_config_init(&c) == 0);
	err[0] = '\0';
	rc = pd_config_parse(&c, text, size, "fuzz.conf", err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc == -EINVAL) {
		long line;
		char *after;

		FUZZ_CHECK(strncmp(err, "fuzz.conf:", 10) == 0);
		line = strtol(err + 10, &after, 10);
		FUZZ_CHECK(line >= 1 && (size_t)line <= lines && *after == ':');
	} else if (rc == 0) {
		FUZZ_CHECK(c.threads >= 1 && c.threads <= 256);
		FUZZ_CHECK(c.list_max_age_ms >= 0 && c.list_max_age_ms <= 60000);
		FUZZ_CHECK(!c.listen || *c.listen);
		FUZZ_CHECK(!c.site_pid_file || *c.site_pid_file == '/');
		FUZZ_CHECK(c.keys.n == key_lines(text, size));
		FUZZ_CHECK(c.scope.all || c.scope.n > 0);
	}
	pd_config_release(&c);

	/* Again with an error buffer of a few bytes: same answer, and the
	 * message is cut, not overrun (ASan watches the heap block). */
	FUZZ_CHECK(pd_config_init(&c) == 0);
	FUZZ_CHECK(pd_config_parse(&c, text, size, "fuzz.conf", tiny, errlen) == rc ||
		   rc == -ENOMEM);
	if (rc == -EINVAL)
		FUZZ_CHECK(strlen(tiny) < errlen);
	pd_config_release(&c);
	free(tiny);
	free(text);
	return 0;
}
