/* Crash capture: what `procdiag crash-handler` does with a core the kernel
 * pipes to it (docs/CRASH.md).
 *
 * The kernel runs the handler (kernel.core_pattern "|..."), as root, with
 * the core on stdin, an empty environment and nothing else open. While the
 * handler reads, the dying process waits in the kernel; with
 * core_pipe_limit > 0 it waits until the handler closes stdin, so
 * /proc/PID (maps, map_files, status) stays readable that long. Every path
 * here ends with stdin read to its end and closed, so the kernel is never
 * left writing into a pipe nobody reads. */
#ifndef PD_CRASHCAP_H
#define PD_CRASHCAP_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/rules.h"
#include "lib/store.h"

/* What the kernel said: the pattern's %P %i %s %t %e. */
struct pd_crash_args {
	pid_t pid;     /* %P: the thread group's id in the initial pid namespace */
	pid_t tid;     /* %i: the crashing thread, in its own namespace */
	int sig;       /* %s */
	int64_t time;  /* %t: seconds since the epoch */
	char comm[64]; /* %e: its comm (one argument even with spaces, kernel >= 5.7) */
};

struct pd_crash_opts {
	struct pd_crash_args a;
	const char *store_dir; /* NULL: nothing can be stored */
	struct pd_store_limits limits;
	const struct pd_ruleset *rules;
	const char *site_pid_file; /* the config's: which pid is the site */
	unsigned timeout_s;	   /* crash_timeout */
	bool chain;		   /* crash_chain */
	const char *saved;	   /* the saved core_pattern (lib/corepattern.h) */
	int stdin_fd;		   /* the core: 0 */
};

/* Set by the SIGALRM handler pd_crash_handle installs. */
extern volatile sig_atomic_t pd_crash_timed_out;

/* Handles one crash; returns the exit status (0: stored, or nothing to
 * do; 1: a failure, recorded). Chaining execs the previous handler and
 * does not return when that works. */
int pd_crash_handle(const struct pd_crash_opts *o);

/* Reads in_fd to its end into out_fd from offset 0, leaving holes for the
 * 4 KiB blocks that are all zeros, and sets the file's size. limit: the
 * most out_fd may hold (0: none; past it -EFBIG). Stops with -ECANCELED
 * when *stop is set (a read interrupted by a signal looks at it). 0 or
 * -errno; *size gets the bytes read. */
int pd_crash_copy_sparse(int in_fd, int out_fd, uint64_t limit, volatile sig_atomic_t *stop,
			 uint64_t *size);

/* Reads fd to its end and throws the bytes away. */
void pd_crash_drain(int fd);

/* The state file in the store's directory (docs/CRASH.md, "State"):
 * STORE_DIR/.crash-state.json, changed under an flock of
 * STORE_DIR/.crash-state.lock, replaced by rename. */
#define PD_CRASH_STATE	    ".crash-state.json"
#define PD_CRASH_STATE_LOCK ".crash-state.lock"

/* The state file of the store at store_dir, as it is (a new reference),
 * or an empty state when there is none. NULL when out of memory. */
json_t *pd_crash_state_load(const char *store_dir);

/* Expands a pipe pattern's arguments as the kernel would for this crash
 * (%P %p %i %I %s %t %e %E %f %u %g %c %h %d %F %%) into argv (malloc'd,
 * NULL-terminated; free with pd_crash_argv_free). *pidfd gets the pidfd
 * %F asked for (-1: none). 0 or -errno. */
int pd_crash_expand(const char *pattern, const struct pd_crash_args *a, char ***argv, int *pidfd);
void pd_crash_argv_free(char **argv);

#endif
