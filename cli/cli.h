/* procdiag subcommands. Each returns the process exit status:
 * 0 success, 1 failure, 2 usage error. */
#ifndef PD_CLI_H
#define PD_CLI_H

int cmd_serve(int argc, char **argv);
int cmd_genkey(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_stacks(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_crash_handler(int argc, char **argv);
int cmd_dumps(int argc, char **argv);
int cmd_rules(int argc, char **argv);
/* Internal (not in --help): the dump helper of docs/DUMPS.md. */
int cmd_dump_helper(int argc, char **argv);
/* Internal (not in --help): the stacks helper (cli/stackshelper.c). */
int cmd_stacks_helper(int argc, char **argv);
/* Internal (not in --help): one profile for the server (cli/profile.c). */
int cmd_profile_helper(int argc, char **argv);

#endif
