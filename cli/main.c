#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "serve", cmd_serve, "run the FastCGI responder" },
	{ "genkey", cmd_genkey, "print a new API key and its config line" },
	{ "stacks", cmd_stacks, "print the native stack of every thread of a process" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: procdiag COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\n'procdiag COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("procdiag %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "dump-helper")) /* internal: kept out of usage() */
		return cmd_dump_helper(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stacks-helper")) /* internal too */
		return cmd_stacks_helper(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "procdiag: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
