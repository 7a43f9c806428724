#include "config.h"

#include "lib/stacksrun.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "common/strbuf.h"
#include "lib/helper.h"
#include "lib/sysclock.h"

#define DEFAULT_TIMEOUT 60000u
#define MAX_RESPONSE    (256u << 20)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t helper_pid;
static pthread_t helper_owner; /* the thread that started it (it dies with it) */
static int helper_sock = -1;
static struct pd_helper_lines rbuf = {STRBUF_INIT, MAX_RESPONSE}; /* past the last line */

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
		if (helper_pid > 0)
			pd_helper_kill(helper_pid, &st);
	}
	helper_pid = 0;
	strbuf_reset(&rbuf.buf);
}

/* `procdiag stacks-helper --fd N`, N its end of a socketpair (lib/helper.h:
 * the only fd it inherits besides 0-2). */
static int start_helper(const char *helper, char *err, size_t errlen)
{
	char fdarg[16];
	char *argv[] = {"procdiag", "stacks-helper", "--fd", fdarg, NULL};
	int sv[2], rc;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		pd_seterr(err, errlen, "socketpair: %s", strerror(-rc));
		return rc;
	}
	rc = pd_helper_fd_above_stdio(sv[1], true);
	if (rc >= 0) {
		sv[1] = rc;
		snprintf(fdarg, sizeof(fdarg), "%d", sv[1]);
		rc = pd_helper_spawn(helper, argv, &sv[1], 1, &pid);
	}
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		pd_seterr(err, errlen, "cannot start the stacks helper: %s", strerror(-rc));
		return rc;
	}
	helper_pid = pid;
	helper_owner = pthread_self();
	helper_sock = sv[0];
	strbuf_reset(&rbuf.buf);
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
	uint64_t now = pd_mono_ns();
	int rc;

	if (now >= deadline_ns)
		return -ETIME;
	rc = pd_helper_lines(&rbuf, helper_sock, (int)((deadline_ns - now) / 1000000u) + 1, line);
	return rc == 0 ? -EPIPE : rc < 0 ? rc : 0;
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
	rc = pd_dump_error_errno(pd_dump_error_from_code(code));
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

void pd_stacksrun_thread_end(void)
{
	pthread_mutex_lock(&lock);
	if (helper_pid > 0 && pthread_equal(helper_owner, pthread_self()))
		stop_helper(true);
	pthread_mutex_unlock(&lock);
}
