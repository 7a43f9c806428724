/* The FastCGI server: a listening socket, a pool of worker threads blocked
 * in FCGX_Accept_r, one signal thread. SIGTERM/SIGINT shut the listening
 * socket down (which wakes the accepting threads), let in-flight requests
 * finish for up to drain_ms, and return. */
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
	int drain_ms;             /* default 5000 */
	bool log_requests;        /* one line per request on stderr */
};

/* "unix:PATH" (created mode 0660, stale socket removed) or "HOST:PORT" /
 * ":PORT". Returns a listening, close-on-exec fd, or -errno. */
int pd_server_listen(const char *spec);
/* A socket handed over by systemd (sd_listen_fds) or, failing that, fd 0 if
 * it is a listening socket (spawn-fcgi). -ENOTSOCK when there is none. */
int pd_server_inherited_fd(void);
/* Runs until SIGTERM/SIGINT. 0, or -errno when it could not start. */
int pd_server_run(const struct pd_server_opts *opts);

#endif
