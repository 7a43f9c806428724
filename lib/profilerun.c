/* Profiles in their own helper: see lib/profilerun.h. */
#include "config.h"

#include "lib/profilerun.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "common/strbuf.h"
#include "lib/helper.h"

#define MAX_ANSWER  (256u << 20)
#define MAX_REQUEST 4096
#define GRACE_S	    30u

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t running[PD_PROFILES_AT_ONCE]; /* 0: a free slot */

/* A slot for pid: its index, -EBUSY (pid has one), -EUSERS (none free). */
static int take_slot(pid_t pid)
{
	int free_ix = -1, rc;

	pthread_mutex_lock(&lock);
	for (int i = 0; i < PD_PROFILES_AT_ONCE; i++) {
		if (running[i] == pid) {
			pthread_mutex_unlock(&lock);
			return -EBUSY;
		}
		if (!running[i] && free_ix < 0)
			free_ix = i;
	}
	if (free_ix >= 0)
		running[free_ix] = pid;
	rc = free_ix >= 0 ? free_ix : -EUSERS;
	pthread_mutex_unlock(&lock);
	return rc;
}

static void drop_slot(int ix)
{
	pthread_mutex_lock(&lock);
	running[ix] = 0;
	pthread_mutex_unlock(&lock);
}

static int ask(const char *helper, const struct strbuf *req, unsigned seconds, json_t **out,
	       char *err, size_t errlen)
{
	struct pd_helper_lines lines = { STRBUF_INIT, MAX_ANSWER };
	struct strbuf line = STRBUF_INIT;
	int sock, rc, st;
	pid_t pid;

	rc = pd_helper_spawn_socket(helper, "profile-helper", "profile", &sock, &pid, err, errlen);
	if (rc < 0)
		return -EIO;
	rc = pd_helper_send(sock, req->buf, req->len);
	if (rc == 0)
		rc = pd_helper_lines(&lines, sock, (int)((seconds + GRACE_S) * 1000u), &line);
	close(sock);
	if (rc != 1) {
		pd_helper_kill(pid, &st);
		if (rc == -ETIME)
			pd_seterr(err, errlen, "the profile helper did not answer within %u s",
				  seconds + GRACE_S);
		else
			pd_helper_describe_exit(err, errlen, "profile", "died", st);
		pd_helper_lines_release(&lines);
		strbuf_release(&line);
		return -EIO;
	}
	pd_helper_reap(pid, &st);
	rc = pd_helper_answer(&line, "profile", "profile", out, err, errlen);
	pd_helper_lines_release(&lines);
	strbuf_release(&line);
	return rc == -EPROTO ? -EIO : rc;
}

int pd_profilerun(const char *helper, pid_t pid, uint64_t start_time,
		  const struct pd_profile_opts *o, json_t **out, char *err, size_t errlen)
{
	struct strbuf req = STRBUF_INIT;
	json_t *r;
	int slot, rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	r = json_pack("{s:i,s:I,s:i,s:i,s:s}", "pid", (int)pid, "start_time",
		      (json_int_t)start_time, "seconds", (int)o->seconds, "hz", (int)o->hz,
		      "method", pd_profile_method_name(o->method));
	if (pd_helper_request(r, o->scope, &req) < 0) {
		strbuf_release(&req);
		return -ENOMEM;
	}
	slot = take_slot(pid);
	if (slot < 0) {
		if (slot == -EBUSY)
			pd_seterr(err, errlen, "a profile of process %d is already running", (int)pid);
		else
			pd_seterr(err, errlen, "%d profiles are already running", PD_PROFILES_AT_ONCE);
		strbuf_release(&req);
		return slot;
	}
	rc = ask(helper, &req, o->seconds, out, err, errlen);
	drop_slot(slot);
	strbuf_release(&req);
	return rc;
}

static json_t *handle(const char *line)
{
	struct pd_profile_opts o = { 0 };
	struct pd_scope scope = PD_SCOPE_INIT;
	const char *scope_spec = NULL, *method = "auto";
	json_int_t pid = 0, start = 0, seconds = 0, hz = 0;
	json_t *req = json_loads(line, 0, NULL), *doc = NULL, *resp;
	char err[512];
	int m, rc;

	if (!req ||
	    json_unpack(req, "{s:I,s?I,s:I,s:I,s?s,s?s}", "pid", &pid, "start_time", &start,
			"seconds", &seconds, "hz", &hz, "method", &method, "scope", &scope_spec) < 0 ||
	    pid <= 0 || pid > 4194304 || start < 0 || seconds < 1 ||
	    seconds > PD_PROFILE_SECONDS_MAX || hz < 1 || hz > PD_PROFILE_HZ_MAX ||
	    (m = pd_profile_method_parse(method)) < 0 ||
	    (scope_spec && pd_scope_parse_ids(&scope, scope_spec) < 0)) {
		json_decref(req);
		pd_scope_release(&scope);
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "error", "internal", "detail",
				 "bad request");
	}
	o.seconds = (unsigned)seconds;
	o.hz = (unsigned)hz;
	o.method = (enum pd_profile_method)m;
	o.scope = scope_spec ? &scope : NULL;
	rc = pd_profile_run((pid_t)pid, (uint64_t)start, &o, &doc, err, sizeof(err));
	json_decref(req); /* scope_spec and method were its strings */
	pd_scope_release(&scope);
	if (rc < 0)
		return json_pack("{s:b,s:s,s:s}", "ok", 0, "error",
				 pd_dump_error_code(pd_dump_error_from_errno(rc, false)), "detail",
				 err[0] ? err : strerror(-rc));
	resp = json_pack("{s:b,s:o}", "ok", 1, "profile", doc);
	return resp;
}

int pd_profile_helper_serve(int fd)
{
	struct pd_helper_lines lines = { STRBUF_INIT, MAX_REQUEST };
	struct strbuf line = STRBUF_INIT;
	int rc;

	/* A dead server must not leave us behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	rc = pd_helper_lines(&lines, fd, 10000, &line);
	if (rc == 1)
		rc = pd_helper_send_json(fd, handle(line.buf));
	pd_helper_lines_release(&lines);
	strbuf_release(&line);
	return rc < 0 ? 1 : 0;
}
