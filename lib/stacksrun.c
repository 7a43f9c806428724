#include "config.h"

#include "lib/stacksrun.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "common/strbuf.h"
#include "lib/sysclock.h"

#define HELPER_FD       3
#define DEFAULT_TIMEOUT 60000u
#define MAX_RESPONSE    (256u << 20)

extern char **environ;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t helper_pid;
static int helper_sock = -1;
static struct strbuf rbuf = STRBUF_INIT; /* bytes read past the last line */

/* Kills (if still running) and reaps the helper. Caller holds lock. */
static void stop_helper(bool gentle)
{
	if (helper_sock >= 0) {
		close(helper_sock);
		helper_sock = -1;
	}
	if (helper_pid > 0) {
		int st;

		if (gentle) {
			/* EOF makes it exit; give it a moment. */
			for (int i = 0; i < 100; i++) {
				if (waitpid(helper_pid, &st, WNOHANG) == helper_pid) {
					helper_pid = 0;
					break;
				}
				usleep(10000);
			}
		}
		if (helper_pid > 0) {
			kill(helper_pid, SIGKILL);
			while (waitpid(helper_pid, &st, 0) < 0 && errno == EINTR)
				;
		}
	}
	helper_pid = 0;
	strbuf_reset(&rbuf);
}

static int start_helper(const char *helper, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	char fdarg[16];
	char *argv[] = { "procdiag", "stacks-helper", "--fd", fdarg, NULL };
	int sv[2], rc;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		pd_seterr(err, errlen, "socketpair: %s", strerror(-rc));
		return rc;
	}
	snprintf(fdarg, sizeof(fdarg), "%d", HELPER_FD);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* dup2 onto fd 3 clears close-on-exec there (also when sv[1] is 3);
	 * every other fd of the server is close-on-exec. */
	posix_spawn_file_actions_adddup2(&fa, sv[1], HELPER_FD);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGCHLD);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, helper ? helper : "/proc/self/exe", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (rc != 0) {
		close(sv[0]);
		pd_seterr(err, errlen, "cannot start the stacks helper: %s", strerror(rc));
		return -rc;
	}
	helper_pid = pid;
	helper_sock = sv[0];
	strbuf_reset(&rbuf);
	return 0;
}

static int send_all(int fd, const char *s, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		off += (size_t)w;
	}
	return 0;
}

/* One line from the helper into line (without the newline). -EPIPE on EOF,
 * -ETIME past the deadline. */
static int read_line(uint64_t deadline_ns, struct strbuf *line)
{
	for (;;) {
		char *nl = memchr(rbuf.buf, '\n', rbuf.len);
		struct pollfd p = { .fd = helper_sock, .events = POLLIN };
		uint64_t now;
		ssize_t n;
		int r;

		if (nl) {
			size_t used = (size_t)(nl - rbuf.buf) + 1;

			if (strbuf_add(line, rbuf.buf, used - 1) < 0)
				return -ENOMEM;
			memmove(rbuf.buf, rbuf.buf + used, rbuf.len - used);
			strbuf_setlen(&rbuf, rbuf.len - used);
			return 0;
		}
		if (rbuf.len > MAX_RESPONSE)
			return -EFBIG;
		now = pd_mono_ns();
		if (now >= deadline_ns)
			return -ETIME;
		r = poll(&p, 1, (int)((deadline_ns - now) / 1000000u) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		if (strbuf_grow(&rbuf, 65536) < 0)
			return -ENOMEM;
		n = read(helper_sock, rbuf.buf + rbuf.len, rbuf.alloc - rbuf.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		strbuf_setlen(&rbuf, rbuf.len + (size_t)n);
	}
}

static int parse_response(const struct strbuf *line, json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *resp = json_loadb(line->buf, line->len, 0, &jerr), *doc;
	const char *code = NULL, *detail = NULL;
	int ok = 0, rc;

	if (!resp || json_unpack(resp, "{s:b,s?s,s?s}", "ok", &ok, "error", &code, "detail",
				 &detail) < 0) {
		json_decref(resp);
		pd_seterr(err, errlen, "the stacks helper answered something that is not its protocol");
		return -EPROTO;
	}
	if (ok && (doc = json_object_get(resp, "stacks")) && json_is_object(doc)) {
		*out = json_incref(doc);
		json_decref(resp);
		return 0;
	}
	rc = pd_stacks_error_rc(code);
	pd_seterr(err, errlen, "%s", detail ? detail : "the stacks helper failed");
	json_decref(resp);
	return rc;
}

int pd_stacksrun(const char *helper, pid_t pid, uint64_t start_time,
		 const struct pd_stacks_opts *opts, unsigned timeout_ms, json_t **out, char *err,
		 size_t errlen)
{
	struct strbuf line = STRBUF_INIT;
	json_t *req;
	char *s = NULL;
	uint64_t deadline;
	int rc = 0;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	req = json_pack("{s:i,s:I,s:i,s:b}", "pid", (int)pid, "start_time", (json_int_t)start_time,
			"deadline_ms", opts ? (int)opts->deadline_ms : 0, "no_source",
			opts ? opts->no_source : 0);
	if (req && opts && opts->scope) {
		struct strbuf sc = STRBUF_INIT;

		if (pd_scope_format(opts->scope, &sc) < 0 ||
		    json_object_set_new(req, "scope", json_string(sc.buf)) < 0) {
			json_decref(req);
			req = NULL;
		}
		strbuf_release(&sc);
	}
	s = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!s || strbuf_addstr(&line, s) < 0 || strbuf_addch(&line, '\n') < 0) {
		free(s);
		strbuf_release(&line);
		return -ENOMEM;
	}
	free(s);
	deadline = pd_mono_ns() + (uint64_t)(timeout_ms ? timeout_ms : DEFAULT_TIMEOUT) * 1000000u;

	pthread_mutex_lock(&lock);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (helper_pid <= 0) {
			rc = start_helper(helper, err, errlen);
			if (rc < 0)
				break;
		}
		rc = send_all(helper_sock, line.buf, line.len);
		if (rc < 0) {
			/* It died while idle: a new one gets the request. */
			stop_helper(false);
			continue;
		}
		strbuf_reset(&line);
		rc = read_line(deadline, &line);
		if (rc == 0) {
			rc = parse_response(&line, out, err, errlen);
			if (rc == -EPROTO) {
				stop_helper(false);
				rc = -EIO;
			}
		} else {
			if (rc == -ETIME)
				pd_seterr(err, errlen, "the stacks helper did not answer within %u ms",
				       timeout_ms ? timeout_ms : DEFAULT_TIMEOUT);
			else
				pd_seterr(err, errlen, "the stacks helper died (%s)", strerror(-rc));
			stop_helper(false);
			rc = -EIO;
		}
		break;
	}
	if (rc == -EPIPE) {
		pd_seterr(err, errlen, "the stacks helper cannot be reached");
		rc = -EIO;
	}
	pthread_mutex_unlock(&lock);
	strbuf_release(&line);
	return rc;
}

void pd_stacksrun_shutdown(void)
{
	pthread_mutex_lock(&lock);
	stop_helper(true);
	pthread_mutex_unlock(&lock);
}
