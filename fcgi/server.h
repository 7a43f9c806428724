/* The FastCGI server: a listening socket, the calling thread as acceptor
 * (it reads each connection's parameters, with a deadline, before any
 * worker sees it) and a pool of worker threads. SIGTERM/SIGINT: requests
 * not yet begun are answered 503 with Retry-After, running ones may finish
 * for up to drain_ms, then the rest are cut and pd_server_run returns. */
#ifndef PD_SERVER_H
#define PD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "fcgi/auth.h"
#include "fcgi/route.h"

struct pd_server_opts {
	int listen_fd;
	int threads;              /* worker threads, >= 1 */
	bool no_auth;
	const struct pd_keyset *keys;
	bool trust_proxy;         /* honour X-Forwarded-Proto / -Host / -Port */
	const char *public_url;   /* normal form (fcgi/origin.h); NULL: links from the request */
	const struct pd_route *routes;
	size_t nroutes;
	void *app;                /* handed to handlers via pd_req_app() */
	int drain_ms;             /* after SIGTERM; < 0: PD_DRAIN_MS_DEFAULT */
	bool log_requests;        /* one line per request on stderr */
	/* A connection's FastCGI parameters must all arrive within this
	 * (from accept, or from the first byte on a kept connection), else it
	 * is closed. <= 0: PD_READ_TIMEOUT_MS_DEFAULT. */
	int read_timeout_ms;
	/* No write to the web server may wait longer; the response is then
	 * cut. <= 0: PD_SEND_TIMEOUT_MS_DEFAULT. */
	int send_timeout_ms;
	/* A body streamed from a file (pd_resp_write_fd: dumps) gets
	 * send_timeout_ms plus its length at this many bytes a second, in
	 * all (one write may then wait that long); past that it is cut.
	 * 0: no bound but send_timeout_ms for each write. */
	unsigned long long download_min_rate;
};

#define PD_DRAIN_MS_DEFAULT 30000
#define PD_READ_TIMEOUT_MS_DEFAULT 5000
#define PD_SEND_TIMEOUT_MS_DEFAULT 60000

/* "unix:PATH" (created mode 0660, stale socket removed) or "HOST:PORT" /
 * ":PORT". Returns a listening, close-on-exec fd, or -errno. */
int pd_server_listen(const char *spec);
/* A socket handed over by systemd (sd_listen_fds) or, failing that, fd 0 if
 * it is a listening socket (spawn-fcgi). -ENOTSOCK when there is none. */
int pd_server_inherited_fd(void);

/* Sets SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 and SIGALRM back
 * to their defaults: the server takes no disposition from whoever started
 * it (a shell's background job starts with SIGQUIT and SIGINT ignored).
 * Called first thing by `procdiag serve`, and again by pd_server_run.
 * Returns 0 or -errno. */
int pd_server_default_signals(void);
/* Runs until SIGTERM/SIGINT. 0, or -errno when it could not start. */
int pd_server_run(const struct pd_server_opts *opts);

#endif
