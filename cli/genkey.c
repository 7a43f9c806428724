#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "fcgi/auth.h"

/* Line 1: the key (shown once, stored nowhere). Line 2: the config line that
 * stores its hash. Scripts read the first two lines; nothing else is on
 * stdout. */
int cmd_genkey(int argc, char **argv)
{
	char key[64], hex[65];

	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			printf("usage: procdiag genkey\n\n"
			       "Prints a new random API key on the first line and, on the second,\n"
			       "the line that stores its SHA-256 in the config file. Only the hash\n"
			       "is ever stored; keep the key somewhere safe.\n");
			return 0;
		}
		fprintf(stderr, "usage: procdiag genkey\n");
		return 2;
	}
	if (pd_auth_genkey(key, sizeof(key), hex) < 0) {
		fprintf(stderr, "procdiag genkey: cannot get random bytes\n");
		return 1;
	}
	printf("%s\napi_key_sha256 = %s\n", key, hex);
	return fflush(stdout) == 0 ? 0 : 1;
}
