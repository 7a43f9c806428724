/* procdiag's helper processes (lib/helper.h). */
#include "config.h"

#include "lib/helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "lib/scope.h"
#include "lib/sysclock.h"

extern char **environ;

/* ---- the kinds, their words and errnos ----------------------------------- */

static const struct {
	const char *word;
	int rc; /* the errno the kind stands for */
} kinds[] = {
	[PD_DUMP_OK] = {"", 0},
	[PD_DUMP_GONE] = {"gone", -ESRCH},
	[PD_DUMP_ZOMBIE] = {"zombie", -EOWNERDEAD},
	[PD_DUMP_KERNEL_THREAD] = {"kernel_thread", -EOPNOTSUPP},
	[PD_DUMP_NOT_PERMITTED] = {"not_permitted", -EPERM},
	[PD_DUMP_TIMEOUT] = {"timeout", -ETIMEDOUT},
	[PD_DUMP_BUSY] = {"busy", -EBUSY},
	[PD_DUMP_NO_SPACE] = {"no_space", -ENOSPC},
	[PD_DUMP_IO] = {"io", -EIO},
	[PD_DUMP_INTERNAL] = {"internal", -EIO},
	[PD_DUMP_CANCELLED] = {"cancelled", -ECANCELED},
	[PD_DUMP_CHANGED] = {"changed", -EAGAIN},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const char *pd_dump_error_code(enum pd_dump_error e)
{
	return (size_t)e < NKINDS ? kinds[e].word : "internal";
}

enum pd_dump_error pd_dump_error_from_code(const char *word)
{
	for (size_t i = 1; word && i < NKINDS; i++)
		if (strcmp(word, kinds[i].word) == 0)
			return (enum pd_dump_error)i;
	return PD_DUMP_INTERNAL;
}

int pd_dump_error_errno(enum pd_dump_error e)
{
	return (size_t)e < NKINDS ? kinds[e].rc : -EIO;
}

enum pd_dump_error pd_dump_error_from_errno(int rc, bool write_failed)
{
	if (write_failed)
		return rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG ? PD_DUMP_NO_SPACE
								      : PD_DUMP_IO;
	switch (rc) {
	case -ENOENT: return PD_DUMP_GONE;
	case -EACCES: return PD_DUMP_NOT_PERMITTED;
	case -EIO: return PD_DUMP_INTERNAL;
	case 0: return PD_DUMP_OK;
	default: break;
	}
	/* The rest is the table read backwards (no_space and io are only
	 * ever the core's writes, above). */
	for (size_t i = 1; i < NKINDS; i++)
		if (kinds[i].rc == rc && i != PD_DUMP_NO_SPACE && i != PD_DUMP_IO &&
		    i != PD_DUMP_CANCELLED)
			return (enum pd_dump_error)i;
	return PD_DUMP_INTERNAL;
}

/* ---- spawning, reaping ---------------------------------------------------- */

int pd_helper_fd_above_stdio(int fd, bool close_old)
{
	int n;

	if (fd > 2 && !close_old) {
		n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		return n < 0 ? -errno : n;
	}
	if (fd > 2)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (n < 0)
		return -errno;
	if (close_old)
		close(fd);
	return n;
}

int pd_helper_spawn(const char *exe, char *const argv[], const int *keep, size_t nkeep, pid_t *pid)
{
	static const int dfl[] = {SIGPIPE, SIGTERM, SIGINT,  SIGHUP, SIGQUIT,
				  SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	int rc, top = 2;

	for (size_t i = 0; i < nkeep; i++) {
		if (keep[i] <= 2)
			return -EBADF;
		if (keep[i] > top)
			top = keep[i];
	}
	sigemptyset(&none);
	sigemptyset(&def);
	for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
		sigaddset(&def, dfl[i]);
	rc = posix_spawn_file_actions_init(&fa);
	if (rc)
		return -rc;
	rc = posix_spawnattr_init(&at);
	if (rc) {
		posix_spawn_file_actions_destroy(&fa);
		return -rc;
	}
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, 2, 1);
	/* dup2 onto itself clears FD_CLOEXEC in the child (POSIX 2024,
	 * glibc >= 2.29): the only fds it inherits besides 0-2. */
	for (size_t i = 0; i < nkeep; i++)
		rc = rc ? rc : posix_spawn_file_actions_adddup2(&fa, keep[i], keep[i]);
	rc = rc ? rc : posix_spawn_file_actions_addclosefrom_np(&fa, top + 1);
	rc = rc ? rc
		: posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = rc ? rc : posix_spawnattr_setsigmask(&at, &none);
	rc = rc ? rc : posix_spawnattr_setsigdefault(&at, &def);
	if (!rc)
		rc = posix_spawn(pid, exe ? exe : "/proc/self/exe", &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return -rc;
}

int pd_helper_reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0) {
		if (errno != EINTR) {
			*status = 0;
			return -errno;
		}
	}
	return 0;
}

void pd_helper_kill(pid_t pid, int *status)
{
	kill(pid, SIGKILL);
	pd_helper_reap(pid, status);
}

void pd_helper_stop(pid_t pid, unsigned grace_ms, int *status)
{
	uint64_t until = pd_mono_ns() + (uint64_t)grace_ms * 1000000u;
	siginfo_t si;

	kill(pid, SIGTERM);
	while (pd_mono_ns() < until) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid)
			break;
		nanosleep(&(struct timespec){0, 2000000}, NULL);
	}
	pd_helper_kill(pid, status);
}

void pd_helper_describe_exit(char *buf, size_t size, const char *name, const char *what, int st)
{
	if (WIFSIGNALED(st))
		snprintf(buf, size, "the %s helper %s and was killed by %s", name, what,
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, size, "the %s helper %s and exited with status %d", name, what,
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* ---- lines ---------------------------------------------------------------- */

int pd_helper_lines(struct pd_helper_lines *l, int fd, int timeout_ms, struct strbuf *line)
{
	size_t max = l->max ? l->max : 4096;
	uint64_t deadline = timeout_ms < 0 ? 0 : pd_mono_ns() + (uint64_t)timeout_ms * 1000000u;

	strbuf_reset(line);
	for (;;) {
		char *nl = l->buf.len ? memchr(l->buf.buf, '\n', l->buf.len) : NULL;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int wait = -1, r;
		ssize_t n;

		if (nl) {
			size_t used = (size_t)(nl - l->buf.buf) + 1;

			if (strbuf_add(line, l->buf.buf, used - 1) < 0)
				return -ENOMEM;
			memmove(l->buf.buf, l->buf.buf + used, l->buf.len - used);
			strbuf_setlen(&l->buf, l->buf.len - used);
			return 1;
		}
		if (l->buf.len > max)
			return -EFBIG;
		if (timeout_ms >= 0) {
			uint64_t now = pd_mono_ns();

			if (now >= deadline)
				return -ETIME;
			wait = (int)((deadline - now + 999999u) / 1000000u);
		}
		r = poll(&p, 1, wait);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		if (strbuf_grow(&l->buf, 65536) < 0)
			return -ENOMEM;
		n = read(fd, l->buf.buf + l->buf.len, l->buf.alloc - l->buf.len - 1);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		strbuf_setlen(&l->buf, l->buf.len + (size_t)n);
	}
}

void pd_helper_lines_release(struct pd_helper_lines *l)
{
	strbuf_release(&l->buf);
}

int pd_helper_request(json_t *req, const struct pd_scope *scope, struct strbuf *line)
{
	struct strbuf sc = STRBUF_INIT;
	char *s = NULL;
	int rc = -ENOMEM;

	if (req && scope &&
	    (pd_scope_format(scope, &sc) < 0 || json_object_set_new(req, "scope", json_string(sc.buf)) < 0)) {
		json_decref(req);
		req = NULL;
	}
	strbuf_release(&sc);
	s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (s && strbuf_addstr(line, s) == 0 && strbuf_addch(line, '\n') == 0)
		rc = 0;
	free(s);
	return rc;
}

int pd_helper_send(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t w = send(fd, s, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		s += w;
		len -= (size_t)w;
	}
	return 0;
}

int pd_helper_send_json(int fd, json_t *obj)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	size_t len;
	int rc;

	json_decref(obj);
	if (!s)
		return -ENOMEM;
	len = strlen(s);
	s[len++] = '\n'; /* json_dumps' NUL becomes the newline */
	rc = pd_helper_send(fd, s, len);
	free(s);
	return rc;
}

int pd_helper_answer(const struct strbuf *line, const char *member, const char *name,
		     json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *resp = json_loadb(line->buf, line->len, 0, &jerr), *doc;
	const char *code = NULL, *detail = NULL;
	int ok = 0, rc;

	if (!resp || json_unpack(resp, "{s:b,s?s,s?s}", "ok", &ok, "error", &code, "detail",
				 &detail) < 0) {
		json_decref(resp);
		pd_seterr(err, errlen, "the %s helper answered something that is not its protocol",
			  name);
		return -EPROTO;
	}
	if (ok && (doc = json_object_get(resp, member)) && json_is_object(doc)) {
		*out = json_incref(doc);
		json_decref(resp);
		return 0;
	}
	rc = pd_dump_error_errno(pd_dump_error_from_code(code));
	pd_seterr(err, errlen, "%s", detail ? detail : "the helper failed");
	json_decref(resp);
	return rc;
}

int pd_helper_spawn_socket(const char *exe, const char *cmd, const char *name, int *sock,
			   pid_t *pid, char *err, size_t errlen)
{
	char fdarg[16];
	char *argv[] = { "procdiag", (char *)cmd, "--fd", fdarg, NULL };
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		pd_seterr(err, errlen, "socketpair: %s", strerror(-rc));
		return rc;
	}
	rc = pd_helper_fd_above_stdio(sv[1], true);
	if (rc >= 0) {
		sv[1] = rc;
		snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
		rc = pd_helper_spawn(exe, argv, &sv[1], 1, pid);
	}
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		pd_seterr(err, errlen, "cannot start the %s helper: %s", name, strerror(-rc));
		return rc;
	}
	*sock = sv[0];
	return 0;
}
