/* Spools kept for a resume: a finished dump whose download was broken off
 * by its client, held (still unnamed, still only an fd of this process)
 * for a while under a random token, so that a second request can fetch the
 * rest of the very same bytes.
 *
 * The table holds at most `max` spools; keeping one more closes the
 * oldest. A spool is closed when its time is up (a thread of this module
 * wakes for it), when it is taken and then not kept again, or when the
 * process ends, whatever the way: never a file left behind. */
#ifndef PD_SPOOLKEEP_H
#define PD_SPOOLKEEP_H

#include <stdint.h>

/* 128 random bits in hex. */
#define PD_SPOOL_TOKEN_LEN 32

/* What a token must come with to be honoured: the dump's process and what
 * was asked of it (kind: the caller's code for the dump type and format). */
struct pd_spool_key {
	int pid;
	uint64_t start_time;
	uint64_t kind;
};

/* A fresh token (getrandom), NUL-terminated. 0 or -errno. */
int pd_spool_token(char token[PD_SPOOL_TOKEN_LEN + 1]);

/* Keeps fd (owned from now on, closed here on every path) under token for
 * seconds; seconds or max 0: closed at once. 0, or -ENOMEM / -EAGAIN (no
 * thread for the expiry) with fd closed. */
int pd_spool_keep(int fd, const char *token, const struct pd_spool_key *key, unsigned seconds,
		  unsigned max);

/* The spool kept under token for key, now the caller's (it leaves the
 * table); -ENOENT when there is none (never kept, expired, evicted, taken,
 * or kept for another key). */
int pd_spool_take(const char *token, const struct pd_spool_key *key);

#endif
