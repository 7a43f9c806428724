/* The FastCGI server: the listening socket; worker threads, each blocked in
 * FCGX_Accept_r on it, so a slow request (a dump) holds one thread and
 * never the others; and the calling thread, which waits for SIGTERM/SIGINT
 * and then drains. What happens to one request is request.c's business
 * (pd_req_serve). */
#include "config.h"

#include "fcgi/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/numparse.h"
#include "fcgi/request_int.h"

/* Wakes a worker out of accept() inside libfcgi: EINTR, and libfcgi gives
 * up because FCGX_ShutdownPending() was called. Workers let it through
 * only while accepting, so handlers' system calls are never interrupted. */
#define WAKE_SIGNAL SIGUSR2

struct server;

struct worker {
	struct server *srv;
	pthread_t tid;
	FCGX_Request fcgx;
	atomic_bool done;
	atomic_bool busy; /* between accept and finish of a request */
	unsigned accept_errors;
};

struct server {
	/* A copy: workers abandoned after drain_ms must not read the
	 * caller's stack. */
	struct pd_server_opts opts;
	int wake[2]; /* readable once stopping: ends keep-alive waits */
	atomic_bool stopping;
	atomic_int live;
	int nworkers;
	struct worker *w;
};

/* The fd pd_server_inherited_fd() returned, which is not ours alone. */
static int inherited_fd = -1;

static int set_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

/* A socket file left by a previous run is removed; one that still accepts
 * connections belongs to a running server, and anything that is not a
 * socket is not ours to delete. */
static int remove_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int probe, rc = 0;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return -errno;
	if (connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
		rc = -EADDRINUSE;
	else if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		rc = -errno;
	close(probe);
	return rc;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (!*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	rc = remove_stale(&sa);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* chmod before listen(): until then nobody can connect, whatever
	 * the umask let bind() create. */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int bind_any(const struct addrinfo *ai)
{
	int rc = -EADDRNOTAVAIL;

	for (; ai; ai = ai->ai_next) {
		int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			rc = -errno;
			continue;
		}
		/* A restart must not wait out TIME_WAIT connections. */
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
			return fd;
		rc = -errno;
		close(fd);
	}
	return rc;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (every address). */
static int listen_tcp(const char *spec)
{
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	char host[256];
	size_t hlen;
	uint64_t port;
	int rc;

	if (!colon || parse_u64(colon + 1, strlen(colon + 1), 65535, &port) < 0 || port == 0)
		return -EINVAL;
	hlen = (size_t)(colon - spec);
	if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
		spec++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host) || memchr(spec, '[', hlen) || memchr(spec, ']', hlen))
		return -EINVAL;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	rc = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
	if (rc)
		return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
	rc = bind_any(res);
	freeaddrinfo(res);
	return rc;
}

int pd_server_listen(const char *spec)
{
	if (!spec)
		return -EINVAL;
	if (strncmp(spec, "unix:", 5) == 0)
		return listen_unix(spec + 5);
	return listen_tcp(spec);
}

static int adopt(int fd)
{
	int rc = set_cloexec(fd);

	if (rc)
		return rc;
	inherited_fd = fd;
	return fd;
}

int pd_server_inherited_fd(void)
{
	int accepting = 0;
	socklen_t len = sizeof(accepting);

#ifdef HAVE_SYSTEMD
	int n = sd_listen_fds(1);

	if (n > 1)
		fprintf(stderr, "procdiag: systemd passed %d sockets; using the first\n", n);
	if (n > 0) {
		if (sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			return -ENOTSOCK;
		return adopt(SD_LISTEN_FDS_START);
	}
#endif
	/* spawn-fcgi's convention, which is also FastCGI's: fd 0. */
	if (getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting)
		return adopt(0);
	return -ENOTSOCK;
}

static void on_wake(int sig)
{
	(void)sig;
}

enum idle_next { IDLE_SERVE, IDLE_ACCEPT, IDLE_STOP };

/* A connection nginx keeps open (fastcgi_keep_conn) between requests.
 * Parking here is only fair while nobody else is waiting: nginx may leave
 * this connection idle in its pool and open new ones, which would then sit
 * in our backlog behind workers that all wait on idle connections. So a
 * pending connection on the listening socket makes us drop this one. */
static enum idle_next wait_keepalive(struct server *s, int fd)
{
	struct pollfd p[3] = {
		{.fd = fd, .events = POLLIN},
		{.fd = s->wake[0], .events = POLLIN},
		{.fd = s->opts.listen_fd, .events = POLLIN},
	};

	while (poll(p, 3, -1) < 0)
		if (errno != EINTR)
			return IDLE_STOP;
	if (p[1].revents)
		return IDLE_STOP;
	/* A request already sent on this connection is served first. */
	if (p[0].revents)
		return IDLE_SERVE;
	return IDLE_ACCEPT;
}

static int accept_one(struct worker *w)
{
	sigset_t wake;
	int rc;

	sigemptyset(&wake);
	sigaddset(&wake, WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &wake, NULL);
	rc = FCGX_Accept_r(&w->fcgx);
	pthread_sigmask(SIG_BLOCK, &wake, NULL);
	return rc;
}

static void accept_failed(struct worker *w, int rc)
{
	struct timespec pause = {0, 100 * 1000 * 1000};

	/* EMFILE and the like: say so now and then, and do not spin. */
	if (w->accept_errors++ % 100 == 0)
		fprintf(stderr, "procdiag: accept failed: %s\n",
			rc > -4096 ? strerror(-rc) : "FastCGI protocol error");
	nanosleep(&pause, NULL);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->srv;

	while (!atomic_load(&s->stopping)) {
		if (w->fcgx.ipcFd >= 0) {
			enum idle_next next = wait_keepalive(s, w->fcgx.ipcFd);

			if (next == IDLE_STOP)
				break;
			if (next == IDLE_ACCEPT)
				FCGX_Free(&w->fcgx, 1);
		}
		int rc = accept_one(w);

		if (rc < 0) {
			if (atomic_load(&s->stopping))
				break;
			accept_failed(w, rc);
			continue;
		}
		/* libfcgi's accept() does not ask for close-on-exec. */
		set_cloexec(w->fcgx.ipcFd);
		atomic_store(&w->busy, true);
		pd_req_serve(&s->opts, &w->fcgx);
		if (atomic_load(&s->stopping))
			w->fcgx.keepConnection = 0;
		FCGX_Finish_r(&w->fcgx);
		atomic_store(&w->busy, false);
	}
	FCGX_Free(&w->fcgx, 1);
	atomic_store(&w->done, true);
	atomic_fetch_sub(&s->live, 1);
	return NULL;
}

static void stop(struct server *s)
{
	atomic_store(&s->stopping, true);
	FCGX_ShutdownPending();
	/* An inherited socket is shared with systemd (or spawn-fcgi's other
	 * children): shutting it down would refuse the connections that are
	 * meant to start our successor. Signals wake our threads instead. */
	if (s->opts.listen_fd != inherited_fd)
		shutdown(s->opts.listen_fd, SHUT_RDWR);
	if (write(s->wake[1], "x", 1) < 0)
		fprintf(stderr, "procdiag: cannot wake workers: %s\n", strerror(errno));
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Lets in-flight requests finish, for up to drain_ms; a second signal cuts
 * the wait short. */
static void drain(struct server *s, const sigset_t *sigs)
{
	struct timespec tick = {0, 20 * 1000 * 1000};
	long long deadline = now_ms() + s->opts.drain_ms;

	while (atomic_load(&s->live) > 0 && now_ms() < deadline) {
		/* Re-sent each tick: a worker between its checks and accept()
		 * misses one wake-up, never two. */
		for (int i = 0; i < s->nworkers; i++)
			if (!atomic_load(&s->w[i].done))
				pthread_kill(s->w[i].tid, WAKE_SIGNAL);
		if (sigtimedwait(sigs, NULL, &tick) > 0) {
			fprintf(stderr, "procdiag: second signal: not waiting for requests\n");
			break;
		}
	}
}

/* Joins the workers that finished; returns how many are still running and
 * sets *in_request to how many of those are inside a request (a worker only
 * slow to leave accept() is not an unfinished request). */
static int reap(struct server *s, int *in_request)
{
	int left = 0;

	*in_request = 0;
	for (int i = 0; i < s->nworkers; i++) {
		if (atomic_load(&s->w[i].done)) {
			pthread_join(s->w[i].tid, NULL);
		} else {
			pthread_detach(s->w[i].tid);
			left++;
			if (atomic_load(&s->w[i].busy))
				(*in_request)++;
		}
	}
	return left;
}

static int start_workers(struct server *s)
{
	int rc = 0;

	for (int i = 0; i < s->opts.threads; i++) {
		struct worker *w = &s->w[i];

		w->srv = s;
		FCGX_InitRequest(&w->fcgx, s->opts.listen_fd, 0);
		atomic_fetch_add(&s->live, 1);
		rc = pthread_create(&w->tid, NULL, worker_main, w);
		if (rc) {
			atomic_fetch_sub(&s->live, 1);
			break;
		}
		s->nworkers++;
	}
	if (s->nworkers == 0)
		return -rc;
	if (rc)
		fprintf(stderr, "procdiag: only %d of %d worker threads: %s\n", s->nworkers,
			s->opts.threads, strerror(rc));
	return 0;
}

static int setup_signals(sigset_t *stop_sigs, sigset_t *old)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, wake = {.sa_handler = on_wake};
	sigset_t block;

	/* A web server that closed the connection must cost a failed write
	 * (-EPIPE), not the process. */
	sigemptyset(&ign.sa_mask);
	sigemptyset(&wake.sa_mask);
	/* No SA_RESTART: the point is to interrupt accept(). */
	if (sigaction(SIGPIPE, &ign, NULL) < 0 || sigaction(WAKE_SIGNAL, &wake, NULL) < 0)
		return -errno;
	sigemptyset(stop_sigs);
	sigaddset(stop_sigs, SIGTERM);
	sigaddset(stop_sigs, SIGINT);
	/* Blocked here, inherited by every worker: only sigwait() below ever
	 * receives them. */
	block = *stop_sigs;
	sigaddset(&block, WAKE_SIGNAL);
	return -pthread_sigmask(SIG_BLOCK, &block, old);
}

static void wait_for_stop(const sigset_t *sigs)
{
	int sig;

	while (sigwait(sigs, &sig) != 0)
		;
	fprintf(stderr, "procdiag: %s: stopping\n", strsignal(sig));
}

int pd_server_run(const struct pd_server_opts *opts)
{
	sigset_t stop_sigs, old;
	struct server *s;
	int rc, left, busy;

	if (!opts || opts->listen_fd < 0 || opts->threads < 1 || (!opts->routes && opts->nroutes) ||
	    (!opts->no_auth && !opts->keys))
		return -EINVAL;
	if (FCGX_Init() != 0)
		return -EIO;
	rc = set_cloexec(opts->listen_fd);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->opts = *opts;
	if (s->opts.drain_ms <= 0)
		s->opts.drain_ms = 5000;
	s->wake[0] = s->wake[1] = -1;
	s->w = calloc((size_t)opts->threads, sizeof(*s->w));
	rc = s->w ? 0 : -ENOMEM;
	if (!rc && pipe2(s->wake, O_CLOEXEC) < 0)
		rc = -errno;
	if (!rc)
		rc = setup_signals(&stop_sigs, &old);
	if (rc)
		goto out;
	rc = start_workers(s);
	if (rc) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		goto out;
	}
	wait_for_stop(&stop_sigs);
	stop(s);
	drain(s, &stop_sigs);
	left = reap(s, &busy);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (left) {
		/* They may still touch s: leave it to the exiting process. */
		if (busy)
			fprintf(stderr, "procdiag: stopping with %d request(s) unfinished\n", busy);
		return 0;
	}
out:
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	free(s->w);
	free(s);
	return rc;
}
