/* The server's side of the stacks helper (cli/stackshelper.c).
 *
 * The server never ptraces (its worker threads would see each other's
 * ptrace stops); it hands stack requests to one long-lived, single-threaded
 * helper, `procdiag stacks-helper --fd 3`, exec'd from /proc/self/exe with
 * one end of a socketpair. The helper keeps lib/stacks.h's caches, so a
 * second request on the same process is served from them.
 *
 * - Requests are serialized by a mutex (the helper does one at a time).
 * - The helper is started on first use and again whenever it died (it is
 *   reaped with waitpid on its own pid, never waitpid(-1)); a request that
 *   finds it dead before anything was sent is retried once on a new one.
 * - A helper that does not answer within timeout_ms is SIGKILLed; a target
 *   it had frozen runs on (PTRACE_SEIZE: the kernel detaches it).
 * - It dies with the thread that started it (PR_SET_PDEATHSIG); the server's
 *   worker threads live as long as the server.
 *
 * Errors are lib/stacks.h's, plus -EIO when the helper failed (detail in
 * err). */
#ifndef PD_STACKSRUN_H
#define PD_STACKSRUN_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/stacks.h"

/* helper: the procdiag binary; NULL (the server always): /proc/self/exe.
 * timeout_ms: 0 = 60 s. */
int pd_stacksrun(const char *helper, pid_t pid, uint64_t start_time,
		 const struct pd_stacks_opts *opts, unsigned timeout_ms, json_t **out, char *err,
		 size_t errlen);
/* A thread that is about to end (an operation's, lib/operations.c) and may
 * have started the helper: a helper it started is stopped now, between
 * requests, rather than killed by PR_SET_PDEATHSIG in the middle of
 * another thread's request; the next request starts a new one. */
void pd_stacksrun_thread_end(void);
/* Stops the helper (EOF, then SIGKILL if it lingers) and reaps it. */
void pd_stacksrun_shutdown(void);

#endif
