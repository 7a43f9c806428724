#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "serve", cmd_serve, "run the FastCGI responder" },
	{ "ps", cmd_ps, "list the processes of this host" },
	{ "kill", cmd_kill, "kill a process and all its descendants" },
	{ "genkey", cmd_genkey, "print a new API key and its config line" },
	{ "dump", cmd_dump, "write an ELF core dump (or a zip bundle) of a process" },
	{ "stacks", cmd_stacks, "print the native stack of every thread of a process" },
	{ "profile", cmd_profile, "sample every thread's stack: folded stacks or speedscope" },
	{ "crash-handler", cmd_crash_handler, "the kernel's core_pattern handler; --install" },
	{ "dumps", cmd_dumps, "list, get or remove the dump store's entries" },
	{ "rules", cmd_rules, "print the trigger rules of the configuration" },
};

/* `procdiag COMMAND ... --version` works for every command. */
static bool asks_version(int argc, char **argv)
{
	for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--version"))
			return true;
	return false;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: procdiag COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\n'procdiag COMMAND --help' describes a command's options;\n"
		     "'procdiag --version' (or COMMAND --version) prints the version.\n"
		     "Exit status: 0 success, 1 failure, 2 usage error; kill: 3 no such\n"
		     "process, dumps: 3 no such entry (docs/cli.md).\n");
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
	if (!strcmp(argv[1], "profile-helper")) /* internal too */
		return cmd_profile_helper(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if (asks_version(argc, argv)) {
			printf("procdiag %s\n", PACKAGE_VERSION);
			return 0;
		}
		return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "procdiag: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
