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
	pid_t pid;
	int sock, rc = pd_helper_spawn_socket(helper, "stacks-helper", "stacks", &sock, &pid, err,
					      errlen);

	if (rc < 0)
		return rc;
	helper_pid = pid;
	helper_owner = pthread_self();
	helper_sock = sock;
	strbuf_reset(&rbuf.buf);
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

int pd_stacksrun(const char *helper, pid_t pid, uint64_t start_time,
		 const struct pd_stacks_opts *opts, unsigned timeout_ms, json_t **out, char *err,
		 size_t errlen)
{
	struct strbuf line = STRBUF_INIT;
	json_t *req;
	uint64_t deadline;
	int rc = 0;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	req = json_pack("{s:i,s:I,s:i,s:b}", "pid", (int)pid, "start_time", (json_int_t)start_time,
			"deadline_ms", opts ? (int)opts->deadline_ms : 0, "no_source",
			opts ? opts->no_source : 0);
	if (pd_helper_request(req, opts ? opts->scope : NULL, &line) < 0) {
		strbuf_release(&line);
		return -ENOMEM;
	}
	deadline = pd_mono_ns() + (uint64_t)(timeout_ms ? timeout_ms : DEFAULT_TIMEOUT) * 1000000u;

	pthread_mutex_lock(&lock);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (helper_pid <= 0) {
			rc = start_helper(helper, err, errlen);
			if (rc < 0)
				break;
		}
		rc = pd_helper_send(helper_sock, line.buf, line.len);
		if (rc < 0) {
			/* It died while idle: a new one gets the request. */
			stop_helper(false);
			continue;
		}
		strbuf_reset(&line);
		rc = read_line(deadline, &line);
		if (rc == 0) {
			rc = pd_helper_answer(&line, "stacks", "stacks", out, err, errlen);
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
