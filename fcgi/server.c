/* The FastCGI server. The calling thread is the acceptor: it alone accepts
 * connections and waits, with poll() and a deadline, until a connection's
 * FastCGI parameters are all there; only then is the connection handed to
 * a worker thread, so a client that connects and sends nothing, or half a
 * request, holds no worker (docs/OPERATIONS.md, "Connections without a
 * key"). Workers read the parameters with libfcgi (which then never
 * blocks), serve the request (request.c's pd_req_serve), and give the
 * connection back: to be kept (FCGI_KEEP_CONN) or closed. On SIGTERM or
 * SIGINT the acceptor answers every request not yet begun with 503 and
 * Retry-After, lets the running ones finish for up to drain_ms, cuts what
 * is left, and returns. */
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
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "common/numparse.h"
#include "fcgi/request_int.h"
#include "fcgi/response.h"

struct server;

struct worker {
	struct server *srv;
	pthread_t tid;
	FCGX_Request fcgx;
	int fd;	   /* the connection of the request being served, or -1 (lock) */
	bool done; /* the thread has returned (lock) */
};

/* What the acceptor knows of a connection it holds. */
enum conn_state {
	CONN_READING, /* waiting for its parameters, until deadline */
	CONN_IDLE,    /* kept open after a request (FCGI_KEEP_CONN) */
	CONN_CLOSING, /* shut down for writing; read until EOF or deadline */
};

struct conn {
	int fd;
	enum conn_state state;
	long long deadline; /* ms, CLOCK_MONOTONIC */
	unsigned seen;	    /* bytes queued when it was last looked at */
	bool served;	    /* a request was answered on it (kept) */
};

/* A connection a worker gives back (through the back pipe). */
struct returned {
	int fd;
	int keep;
};

struct server {
	/* A copy: workers abandoned after drain_ms must not read the
	 * caller's stack. */
	struct pd_server_opts opts;
	atomic_bool stopping; /* a stop signal came: no request begins */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when ready grows or quit is set */
	int *ready;	     /* complete requests for the workers: a ring */
	int ready_head, ready_n, cap;
	int busy;    /* workers inside a request (lock) */
	bool quit;   /* workers return once the ring is empty (lock) */
	int back[2]; /* workers -> acceptor: struct returned */
	int sigfd;
	struct conn *conns; /* held by the acceptor */
	int nconns;
	struct pollfd *pfd;
	unsigned char *peek; /* PARAMS_MAX bytes */
	size_t peeked;	     /* of which the last peek filled (wiped after: keys) */
	int nworkers;
	struct worker *w;
	unsigned refused;	 /* answered 503 while stopping */
	unsigned long timed_out; /* dropped at request_read_timeout */
	unsigned accept_errors;
	int stuck; /* workers that did not return */
};

/* Parameters larger than this are refused (nginx sends a few KB; its
 * header buffers cap them far below). */
#define PARAMS_MAX (128 * 1024)
/* A connection that was shut down gets this long to read our answer. */
#define LINGER_MS 2000
/* An idle kept connection may wait this long for its next request. */
#define KEEPALIVE_MS 60000

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

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int pd_conn_timeout(int fd, int which, long long ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1; /* 0 would mean "never" */
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return setsockopt(fd, SOL_SOCKET, which, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

/* ---- workers -------------------------------------------------------- */

/* The next complete request's connection, or -1 when it is time to go. */
static int next_request(struct server *s)
{
	int fd = -1;

	pthread_mutex_lock(&s->lock);
	while (!s->ready_n && !s->quit)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->ready_n) {
		fd = s->ready[s->ready_head];
		s->ready_head = (s->ready_head + 1) % s->cap;
		s->ready_n--;
		s->busy++;
	}
	pthread_mutex_unlock(&s->lock);
	return fd;
}

/* Reads fd's request (its parameters are all queued: libfcgi does not
 * block), serves it, and returns the connection if it is still open, with
 * *keep set when the client asked to keep it (FCGI_KEEP_CONN). */
static int serve_conn(struct server *s, struct worker *w, int fd, int *keep)
{
	FCGX_Request *q = &w->fcgx;

	/* Safety nets: a read or write that waits longer fails, so no
	 * client holds this thread for long by not sending or not reading. */
	pd_conn_timeout(fd, SO_RCVTIMEO, s->opts.read_timeout_ms);
	pd_conn_timeout(fd, SO_SNDTIMEO, s->opts.send_timeout_ms);
	q->ipcFd = fd;
	/* FCGX_Accept_r begins by finishing the previous request: this keeps
	 * it from closing fd. detached: libfcgi closes without lingering
	 * (reading what the peer still sends, for as long as it sends). */
	q->keepConnection = 1;
	q->detached = 1;
	if (FCGX_Accept_r(q) < 0) {
		/* libfcgi closed fd (a protocol error) and found no other
		 * connection: it has no listening socket. */
		if (q->ipcFd >= 0)
			close(q->ipcFd);
		FCGX_Free(q, 0);
		q->ipcFd = -1;
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	w->fd = fd;
	pthread_mutex_unlock(&s->lock);
	pd_req_serve(&s->opts, q);
	*keep = q->keepConnection && !atomic_load(&s->stopping);
	pthread_mutex_lock(&s->lock);
	w->fd = -1;
	pthread_mutex_unlock(&s->lock);
	q->keepConnection = 1;
	q->detached = 1;
	FCGX_Finish_r(q);
	fd = q->ipcFd;
	q->ipcFd = -1;
	return fd;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->srv;
	int fd;

	while ((fd = next_request(s)) >= 0) {
		struct returned back = {.fd = -1};

		back.fd = serve_conn(s, w, fd, &back.keep);
		pthread_mutex_lock(&s->lock);
		s->busy--;
		pthread_mutex_unlock(&s->lock);
		/* Also with no fd: it wakes the acceptor, which may be
		 * waiting for the last request of a drain. */
		if (write(s->back[1], &back, sizeof(back)) != sizeof(back) && back.fd >= 0)
			close(back.fd);
	}
	pthread_mutex_lock(&s->lock);
	w->done = true;
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ---- the acceptor ------------------------------------------------------- */

/* epoll data of the fds that are not connections (connections: their slot). */
enum { EV_SIGNAL = -1, EV_BACK = -2, EV_LISTEN = -3 };

static int watch(int ep, int op, int fd, int id, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(int64_t)id};

	return epoll_ctl(ep, op, fd, &ev) < 0 ? -errno : 0;
}

/* Connections are watched edge-triggered: a connection that sent half a
 * request stays readable, and must wake the acceptor only when more
 * arrives. */
#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

static void drop(struct server *s, int ep, int slot)
{
	struct conn *c = &s->conns[slot];

	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	s->nconns--;
}

/* The connection leaves the acceptor (to a worker, or answered). */
static int take(struct server *s, int ep, int slot)
{
	struct conn *c = &s->conns[slot];
	int fd = c->fd;

	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	c->fd = -1;
	s->nconns--;
	return fd;
}

/* A free slot, or -1. */
static int free_slot(struct server *s)
{
	for (int i = 0; i < s->cap; i++)
		if (s->conns[i].fd < 0)
			return i;
	return -1;
}

/* Makes room for one more connection: the one waiting longest for its
 * parameters goes first, then the longest idle or closing one. */
static bool evict(struct server *s, int ep)
{
	int best = -1;

	for (int pass = 0; pass < 2 && best < 0; pass++)
		for (int i = 0; i < s->cap; i++) {
			struct conn *c = &s->conns[i];

			if (c->fd < 0 || (pass == 0 && c->state != CONN_READING))
				continue;
			if (best < 0 || c->deadline < s->conns[best].deadline)
				best = i;
		}
	if (best < 0)
		return false;
	drop(s, ep, best);
	return true;
}

/* A counter the workers change (s->ready_n, s->busy), read under the lock. */
static int locked_int(struct server *s, const int *v)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = *v;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* The acceptor takes fd into its care. Held connections and those waiting
 * for a worker are at most cap together: past it, the oldest goes. */
static int hold(struct server *s, int ep, int fd, enum conn_state state, long long deadline)
{
	int slot = -1;
	struct conn *c;

	if (s->nconns + locked_int(s, &s->ready_n) < s->cap || evict(s, ep))
		slot = free_slot(s);
	if (slot < 0 || watch(ep, EPOLL_CTL_ADD, fd, slot, CONN_EVENTS) < 0) {
		close(fd);
		return -1;
	}
	c = &s->conns[slot];
	c->fd = fd;
	c->state = state;
	c->deadline = deadline;
	c->seen = 0;
	c->served = state == CONN_IDLE;
	s->nconns++;
	return slot;
}

/* Shut down for writing, so the peer sees the end of our answer, and
 * read what it still sends (closing with unread bytes would reset a TCP
 * connection, and the answer with it) until it closes or LINGER_MS pass. */
static void start_close(struct server *s, int ep, int fd)
{
	shutdown(fd, SHUT_WR);
	hold(s, ep, fd, CONN_CLOSING, now_ms() + LINGER_MS);
}

enum params { PARAMS_MORE, PARAMS_DONE, PARAMS_BAD };

/* Are a request's FastCGI records, from FCGI_BEGIN_REQUEST to the empty
 * FCGI_PARAMS record that ends its parameters, all queued on c? Looks
 * without taking them: libfcgi reads them next, in a worker, and must not
 * wait for a byte. Records before the BEGIN_REQUEST are libfcgi's to
 * judge; it does so without waiting either. */
static enum params params_queued(struct server *s, struct conn *c)
{
	const unsigned char *p = s->peek;
	ssize_t n = recv(c->fd, s->peek, PARAMS_MAX, MSG_PEEK | MSG_DONTWAIT);
	size_t off = 0;
	unsigned id = 0;
	bool begun = false;

	s->peeked = n > 0 ? (size_t)n : 0;

	if (n == 0)
		return PARAMS_BAD; /* closed */
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? PARAMS_MORE : PARAMS_BAD;
	if ((unsigned)n == c->seen)
		return PARAMS_MORE;
	c->seen = (unsigned)n;
	while (off + 8 <= (size_t)n) {
		unsigned type = p[off + 1], rid = (unsigned)p[off + 2] << 8 | p[off + 3];
		size_t pad = p[off + 6], len = 8 + ((size_t)p[off + 4] << 8 | p[off + 5]) + pad;

		if (p[off] != 1) /* FCGI_VERSION_1 */
			return PARAMS_BAD;
		if (off + len > (size_t)n)
			break;
		if (type == 1) { /* FCGI_BEGIN_REQUEST */
			if (begun)
				return PARAMS_BAD;
			begun = true;
			id = rid;
		} else if (begun && rid == id) {
			if (type != 4) /* FCGI_PARAMS, or nothing yet */
				return PARAMS_BAD;
			if (len == 8 + pad)
				return PARAMS_DONE;
		}
		off += len;
	}
	return n == PARAMS_MAX ? PARAMS_BAD : PARAMS_MORE;
}

/* During a drain: a request that was not begun is answered 503, with
 * Retry-After, by the acceptor itself (a worker may not be free). The
 * answer is small: it fits in the socket's buffer. */
static void answer_unavailable(struct server *s, int ep, int fd, long long drain_end)
{
	FCGX_Request q;
	struct pd_req r;
	long long left = (drain_end - now_ms() + 999) / 1000;
	char retry[24];

	FCGX_InitRequest(&q, -1, 0);
	pd_conn_timeout(fd, SO_RCVTIMEO, 100);
	pd_conn_timeout(fd, SO_SNDTIMEO, 100);
	q.ipcFd = fd;
	q.keepConnection = 1;
	q.detached = 1;
	if (FCGX_Accept_r(&q) < 0) {
		FCGX_Free(&q, 0);
		return;
	}
	pd_req_init(&r, &q, &s->opts);
	snprintf(retry, sizeof(retry), "%lld", left > 1 ? left : 1);
	pd_resp_header(&r, "Retry-After", retry);
	pd_resp_problem(&r, 503, NULL, "procdiag is shutting down; try again in %s s.", retry);
	pd_resp_flush(&r);
	pd_req_release(&r);
	s->refused++;
	q.keepConnection = 1;
	q.detached = 1;
	FCGX_Finish_r(&q);
	if (q.ipcFd >= 0)
		start_close(s, ep, q.ipcFd);
}

static void to_workers(struct server *s, int fd)
{
	pthread_mutex_lock(&s->lock);
	s->ready[(s->ready_head + s->ready_n) % s->cap] = fd;
	s->ready_n++;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_conn(struct server *s, int ep, int slot, uint32_t events, long long drain_end)
{
	struct conn *c = &s->conns[slot];
	enum params st;
	int fd, unread = 0;

	if (c->state == CONN_CLOSING) {
		char buf[4096];
		ssize_t n;

		while ((n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			;
		explicit_bzero(buf, sizeof(buf)); /* it may have held a key */
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			drop(s, ep, slot);
		return;
	}
	if (c->state == CONN_IDLE) {
		c->state = CONN_READING;
		c->deadline = now_ms() + s->opts.read_timeout_ms;
	}
	st = params_queued(s, c);
	/* The peek holds the request's parameters, its key included: procdiag
	 * keeps no copy of a credential past its check (fcgi/wipe.c). */
	explicit_bzero(s->peek, s->peeked);
	if (st == PARAMS_MORE && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		st = PARAMS_BAD; /* the rest will never come */
	/* nginx reads a whole answer before it sends the next request on a
	 * kept connection. A peer that sends requests without reading the
	 * answers would, once the socket's buffer is full, hold the worker
	 * that writes the next one for send_timeout: it is dropped. */
	if (st == PARAMS_DONE && c->state == CONN_READING && c->served &&
	    ioctl(c->fd, SIOCOUTQ, &unread) == 0 && unread > 0)
		st = PARAMS_BAD;
	if (st == PARAMS_BAD) {
		drop(s, ep, slot);
	} else if (st == PARAMS_DONE) {
		fd = take(s, ep, slot);
		if (atomic_load(&s->stopping))
			answer_unavailable(s, ep, fd, drain_end);
		else
			to_workers(s, fd);
	}
}

/* Drops the connections past their deadline; *next gets the earliest
 * deadline left. */
static void expire(struct server *s, int ep, long long now, long long *next)
{
	for (int i = 0; i < s->cap; i++) {
		struct conn *c = &s->conns[i];

		if (c->fd < 0)
			continue;
		if (c->deadline <= now) {
			/* Said now and then: under attack, every second. */
			if (c->state == CONN_READING && s->timed_out++ % 100 == 0)
				fprintf(stderr,
					"procdiag: closed a connection that sent no complete "
					"request within request_read_timeout (%lu so far)\n",
					s->timed_out);
			drop(s, ep, i);
		} else if (c->deadline < *next) {
			*next = c->deadline;
		}
	}
}

static void accept_new(struct server *s, int ep, long long *paused_until)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(s->opts.listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0) {
			hold(s, ep, fd, CONN_READING, now_ms() + s->opts.read_timeout_ms);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of descriptors: make room, or wait a little
			 * rather than spin on a socket that stays readable. */
			if (s->accept_errors++ % 100 == 0)
				fprintf(stderr, "procdiag: accept failed: %s\n", strerror(errno));
			if (!evict(s, ep)) {
				watch(ep, EPOLL_CTL_MOD, s->opts.listen_fd, EV_LISTEN, 0);
				*paused_until = now_ms() + 100;
			}
		}
		return;
	}
}

/* The first signal: no new request begins from now on. Requests waiting
 * for a worker are answered 503, idle connections closed. */
static void begin_drain(struct server *s, int ep, long long drain_end)
{
	atomic_store(&s->stopping, true);
	for (int i = 0; i < s->cap; i++)
		if (s->conns[i].fd >= 0 && s->conns[i].state == CONN_IDLE)
			drop(s, ep, i);
	for (;;) {
		int fd = -1;

		pthread_mutex_lock(&s->lock);
		if (s->ready_n) {
			fd = s->ready[s->ready_head];
			s->ready_head = (s->ready_head + 1) % s->cap;
			s->ready_n--;
		}
		pthread_mutex_unlock(&s->lock);
		if (fd < 0)
			break;
		answer_unavailable(s, ep, fd, drain_end);
	}
}

static void take_back(struct server *s, int ep)
{
	struct returned b;

	while (read(s->back[0], &b, sizeof(b)) == sizeof(b)) {
		if (b.fd < 0)
			continue;
		if (b.keep && !atomic_load(&s->stopping))
			hold(s, ep, b.fd, CONN_IDLE, now_ms() + KEEPALIVE_MS);
		else
			start_close(s, ep, b.fd);
	}
}

/* Until a stop signal, and then until the running requests are done or
 * drain_ms have passed (a second signal cuts that short). */
static void acceptor(struct server *s, int ep)
{
	long long drain_end = 0, paused_until = 0;

	for (;;) {
		struct epoll_event ev[64];
		long long now = now_ms(), next = now + 60000;
		int n;

		expire(s, ep, now, &next);
		if (atomic_load(&s->stopping)) {
			if (locked_int(s, &s->busy) == 0 || now >= drain_end)
				return;
			if (drain_end < next)
				next = drain_end;
		}
		if (paused_until) {
			if (now >= paused_until) {
				watch(ep, EPOLL_CTL_MOD, s->opts.listen_fd, EV_LISTEN, EPOLLIN);
				paused_until = 0;
			} else if (paused_until < next) {
				next = paused_until;
			}
		}
		n = epoll_wait(ep, ev, 64, (int)(next - now));
		for (int i = 0; i < n; i++) {
			int id = (int)(int64_t)ev[i].data.u64;

			if (id == EV_SIGNAL) {
				struct signalfd_siginfo si;

				if (read(s->sigfd, &si, sizeof(si)) != sizeof(si))
					continue;
				if (atomic_load(&s->stopping)) {
					fprintf(stderr, "procdiag: second signal: not waiting for "
							"requests\n");
					return;
				}
				fprintf(stderr, "procdiag: %s: stopping\n",
					strsignal((int)si.ssi_signo));
				drain_end = now_ms() + s->opts.drain_ms;
				begin_drain(s, ep, drain_end);
			} else if (id == EV_BACK) {
				take_back(s, ep);
			} else if (id == EV_LISTEN) {
				accept_new(s, ep, &paused_until);
			} else if (id >= 0 && id < s->cap && s->conns[id].fd >= 0) {
				on_conn(s, ep, id, ev[i].events, drain_end);
			}
		}
	}
}

/* After the acceptor: requests still running are cut (their connection
 * shut down, so their next write fails and the handler returns), the
 * workers told to go. Returns how many requests were cut. */
static int finish(struct server *s)
{
	int cut = 0, left = 0;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->nworkers; i++)
		if (s->w[i].fd >= 0) {
			shutdown(s->w[i].fd, SHUT_RDWR);
			cut++;
		}
	s->quit = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* A second to notice; a handler in a system call that does not
	 * return (a helper that hangs) is left to the exiting process. */
	for (int tick = 0; tick < 50; tick++) {
		struct timespec t = {0, 20 * 1000 * 1000};

		left = 0;
		pthread_mutex_lock(&s->lock);
		for (int i = 0; i < s->nworkers; i++)
			left += !s->w[i].done;
		pthread_mutex_unlock(&s->lock);
		if (!left)
			break;
		nanosleep(&t, NULL);
	}
	for (int i = 0; i < s->nworkers; i++) {
		bool done;

		pthread_mutex_lock(&s->lock);
		done = s->w[i].done;
		pthread_mutex_unlock(&s->lock);
		if (done)
			pthread_join(s->w[i].tid, NULL);
		else
			pthread_detach(s->w[i].tid);
	}
	if (cut)
		fprintf(stderr, "procdiag: drain over: cut %d unfinished request(s)\n", cut);
	s->stuck = left;
	return cut;
}

static int start_workers(struct server *s)
{
	int rc = 0;

	for (int i = 0; i < s->opts.threads; i++) {
		struct worker *w = &s->w[i];

		w->srv = s;
		w->fd = -1;
		/* No listening socket: libfcgi only reads the connections the
		 * acceptor hands over. */
		FCGX_InitRequest(&w->fcgx, -1, 0);
		rc = pthread_create(&w->tid, NULL, worker_main, w);
		if (rc)
			break;
		s->nworkers++;
	}
	if (s->nworkers == 0)
		return -rc;
	if (rc)
		fprintf(stderr, "procdiag: only %d of %d worker threads: %s\n", s->nworkers,
			s->opts.threads, strerror(rc));
	return 0;
}

/* SIGTERM and SIGINT blocked in every thread (workers inherit the mask)
 * and read from a signalfd by the acceptor; a web server that closed the
 * connection costs a failed write (-EPIPE), not the process. The other
 * signals are set back to their defaults (pd_server_default_signals). */
int pd_server_default_signals(void)
{
	static const int dfl[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM};
	struct sigaction def = {.sa_handler = SIG_DFL};

	sigemptyset(&def.sa_mask);
	for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
		if (sigaction(dfl[i], &def, NULL) < 0)
			return -errno;
	return 0;
}

static int setup_signals(struct server *s, sigset_t *old)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigset_t stop;
	int rc;

	sigemptyset(&ign.sa_mask);
	if ((rc = pd_server_default_signals()) < 0)
		return rc;
	if (sigaction(SIGPIPE, &ign, NULL) < 0)
		return -errno;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	rc = pthread_sigmask(SIG_BLOCK, &stop, old);
	if (rc)
		return -rc;
	s->sigfd = signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK);
	return s->sigfd < 0 ? -errno : 0;
}

/* How many connections the acceptor holds at most (waiting for their
 * parameters, idle, closing, or waiting for a worker): a quarter of the
 * descriptors we may open, the rest being for spools, helpers and /proc. */
static int conn_cap(void)
{
	struct rlimit rl;
	rlim_t n = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur;
	n /= 4;
	return n < 16 ? 16 : n > 4096 ? 4096 : (int)n;
}

static int setup(struct server *s)
{
	int fl, ep;

	s->cap = conn_cap();
	s->ready = calloc((size_t)s->cap, sizeof(*s->ready));
	s->conns = calloc((size_t)s->cap, sizeof(*s->conns));
	s->peek = malloc(PARAMS_MAX);
	s->w = calloc((size_t)s->opts.threads, sizeof(*s->w));
	if (!s->ready || !s->conns || !s->peek || !s->w)
		return -ENOMEM;
	for (int i = 0; i < s->cap; i++)
		s->conns[i].fd = -1;
	if (pipe2(s->back, O_CLOEXEC) < 0 || fcntl(s->back[0], F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	/* accept4() must not wait: another process may take the connection
	 * between epoll's word and ours (spawn-fcgi's children share it). */
	fl = fcntl(s->opts.listen_fd, F_GETFL);
	if (fl < 0 || fcntl(s->opts.listen_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return -errno;
	if (watch(ep, EPOLL_CTL_ADD, s->sigfd, EV_SIGNAL, EPOLLIN) < 0 ||
	    watch(ep, EPOLL_CTL_ADD, s->back[0], EV_BACK, EPOLLIN) < 0 ||
	    watch(ep, EPOLL_CTL_ADD, s->opts.listen_fd, EV_LISTEN, EPOLLIN) < 0) {
		close(ep);
		return -errno;
	}
	return ep;
}

static void release(struct server *s, int ep)
{
	if (ep >= 0)
		close(ep);
	for (int i = 0; s->conns && i < s->cap; i++)
		if (s->conns[i].fd >= 0)
			close(s->conns[i].fd);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->back[0] >= 0) {
		close(s->back[0]);
		close(s->back[1]);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->ready);
	free(s->conns);
	free(s->peek);
	free(s->w);
	free(s);
}

int pd_server_run(const struct pd_server_opts *opts)
{
	sigset_t old;
	struct server *s;
	int rc, ep = -1;

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
	if (s->opts.drain_ms < 0)
		s->opts.drain_ms = PD_DRAIN_MS_DEFAULT;
	if (s->opts.read_timeout_ms <= 0)
		s->opts.read_timeout_ms = PD_READ_TIMEOUT_MS_DEFAULT;
	if (s->opts.send_timeout_ms <= 0)
		s->opts.send_timeout_ms = PD_SEND_TIMEOUT_MS_DEFAULT;
	s->back[0] = s->back[1] = s->sigfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	rc = setup_signals(s, &old);
	if (rc) {
		release(s, ep);
		return rc;
	}
	ep = setup(s);
	rc = ep < 0 ? ep : start_workers(s);
	if (rc) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		release(s, ep);
		return rc;
	}
	acceptor(s, ep);
	/* An inherited socket is shared with systemd (or spawn-fcgi's other
	 * children): shutting it down would refuse the connections that are
	 * meant to start our successor. */
	if (s->opts.listen_fd != inherited_fd)
		shutdown(s->opts.listen_fd, SHUT_RDWR);
	finish(s);
	if (s->refused)
		fprintf(stderr, "procdiag: answered %u request(s) 503 while stopping\n",
			s->refused);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s->stuck)
		return 0; /* they may still touch s: leave it to the exiting process */
	release(s, ep);
	return 0;
}
