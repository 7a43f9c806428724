/* procdiag's helper processes, one module for both (CONTRACT §3).
 *
 * The server and the CLI never ptrace: they run the procdiag binary itself
 * as a single-threaded helper, the dump helper (lib/dumprun.h: one per dump,
 * a core fd and a status pipe) or the stacks helper (lib/stacksrun.h: long
 * lived, one socket). This module is what both share:
 *
 *   - pd_helper_spawn: /proc/self/exe with stdin /dev/null, stdout onto
 *     stderr (it must never write into a stream that may be a dump), stderr
 *     inherited, exactly the fds named kept at their numbers and no other,
 *     default signal dispositions and an empty mask;
 *   - pd_helper_lines: its JSON lines read with a timeout (the caller's
 *     tick or deadline);
 *   - pd_helper_kill / pd_helper_reap: SIGKILL and waitpid on its pid only
 *     (a helper seized its target with PTRACE_SEIZE: the kernel resumes the
 *     target when the helper dies);
 *   - the one table of error kinds, their words in the helpers' protocols
 *     and their errnos. */
#ifndef PD_HELPER_H
#define PD_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/strbuf.h"

/* What went wrong, whoever tells it (a helper's word, an errno of lib/). */
enum pd_dump_error {
	PD_DUMP_OK = 0,
	PD_DUMP_GONE, /* no such process, start time differs, exited mid-freeze */
	PD_DUMP_ZOMBIE,
	PD_DUMP_KERNEL_THREAD,
	PD_DUMP_NOT_PERMITTED, /* ptrace refused */
	PD_DUMP_TIMEOUT,       /* a thread never stopped before the deadline */
	PD_DUMP_BUSY,	       /* another tracer holds it (a debugger, a dump) */
	PD_DUMP_NO_SPACE,      /* ENOSPC/EDQUOT/EFBIG writing the core */
	PD_DUMP_IO,
	PD_DUMP_INTERNAL,  /* also: an error code this build does not know */
	PD_DUMP_CANCELLED, /* the caller gave up (lib/dumpjob.h); never a helper's */
	PD_DUMP_CHANGED,   /* the process changed while it was read; try again */
};

/* Its word in the helpers' protocols: "gone", "zombie", ... ("" for OK). */
const char *pd_dump_error_code(enum pd_dump_error e);
/* ... and back; a word this build does not know is PD_DUMP_INTERNAL. */
enum pd_dump_error pd_dump_error_from_code(const char *word);

/* The one map from an errno of reading, freezing or unwinding a process
 * (lib/freeze.h, lib/corefile.h, lib/stacks.h) to a kind: -ESRCH/-ENOENT
 * gone, -EOWNERDEAD zombie, -EOPNOTSUPP kernel thread, -EPERM/-EACCES not
 * permitted, -EBUSY busy, -ETIMEDOUT timeout, -EAGAIN changed, else
 * internal. write_failed: the errno came from writing the core (no space
 * for -ENOSPC/-EDQUOT/-EFBIG, else io). */
enum pd_dump_error pd_dump_error_from_errno(int rc, bool write_failed);
/* The errno a kind stands for, the inverse of the map above (-ESRCH,
 * ..., -ENOSPC, -ECANCELED; io and internal: -EIO). */
int pd_dump_error_errno(enum pd_dump_error e);

/* Starts exe (NULL: /proc/self/exe) with argv as above, keeping the nkeep
 * fds of keep (each > 2, as pd_helper_fd_above_stdio makes them). posix_spawn
 * uses CLONE_VFORK: safe from a threaded server. 0 or -errno. */
int pd_helper_spawn(const char *exe, char *const argv[], const int *keep, size_t nkeep, pid_t *pid);
/* A close-on-exec duplicate of fd numbered above 2 (a caller with a closed
 * stdin may hold fd 0, which the child's stdio set-up would clobber); fd is
 * closed when close_old. The new fd or -errno. */
int pd_helper_fd_above_stdio(int fd, bool close_old);
/* waitpid(pid) until it is reaped. 0 or -errno (*status 0 then). */
int pd_helper_reap(pid_t pid, int *status);
/* SIGKILL, then reaped. */
void pd_helper_kill(pid_t pid, int *status);
/* SIGTERM, so that it may clean up (the dump helper kills and reaps its
 * copy-on-write clone), then SIGKILL after grace_ms all the same, then
 * reaped. */
void pd_helper_stop(pid_t pid, unsigned grace_ms, int *status);
/* "the NAME helper WHAT and was killed by SIGNAL" / "... exited with status
 * N", into buf. */
void pd_helper_describe_exit(char *buf, size_t size, const char *name, const char *what,
			     int status);

/* `procdiag CMD --fd N` (exe NULL: /proc/self/exe), N its end of a new
 * socketpair; *sock is ours. 0 or -errno (detail in err, naming the NAME
 * helper). */
int pd_helper_spawn_socket(const char *exe, const char *cmd, const char *name, int *sock,
			   pid_t *pid, char *err, size_t errlen);

/* A helper's lines. */
struct pd_helper_lines {
	struct strbuf buf; /* bytes read past the last line */
	size_t max;	   /* the longest line (0: 4096) */
};
#define PD_HELPER_LINES_INIT                                                                       \
	{                                                                                          \
		STRBUF_INIT, 0                                                                     \
	}
/* The next line from fd (without its '\n') into line (reset first):
 * 1 a line, 0 end of file, -ETIME when timeout_ms passed first (-1: no
 * timeout), -EFBIG a line longer than max, -errno. */
int pd_helper_lines(struct pd_helper_lines *l, int fd, int timeout_ms, struct strbuf *line);
void pd_helper_lines_release(struct pd_helper_lines *l);

/* The JSON-lines protocols of the stacks and profile helpers. */
#include <jansson.h>
struct pd_scope;
/* req (stolen), with "scope" (pd_scope_format's) when scope is not NULL, as
 * one compact line with its '\n' into line. 0 or -ENOMEM. */
int pd_helper_request(json_t *req, const struct pd_scope *scope, struct strbuf *line);
/* All of s to the socket fd (MSG_NOSIGNAL). 0 or -errno (-EPIPE). */
int pd_helper_send(int fd, const char *s, size_t len);
/* obj (stolen) as one compact line. 0 or -errno. */
int pd_helper_send_json(int fd, json_t *obj);
/* An answer line: {"ok":true, MEMBER:{...}} gives *out (a new reference),
 * 0; {"ok":false,"error":WORD,"detail":TEXT} the word's errno (above) with
 * TEXT in err; anything else -EPROTO ("the NAME helper answered something
 * that is not its protocol"). */
int pd_helper_answer(const struct strbuf *line, const char *member, const char *name,
		     json_t **out, char *err, size_t errlen);

#endif
