/* The table of spools kept for a resume (lib/spoolkeep.h). */
#include "config.h"

#include "lib/spoolkeep.h"

#include "common/numparse.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct kept {
	int fd;
	char token[PD_SPOOL_TOKEN_LEN + 1];
	struct pd_spool_key key;
	struct timespec until; /* CLOCK_MONOTONIC */
	struct kept *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static struct kept *head; /* oldest first */
static unsigned count;
static bool reaper;

int pd_spool_token(char token[PD_SPOOL_TOKEN_LEN + 1])
{
	unsigned char b[PD_SPOOL_TOKEN_LEN / 2];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	hex_encode(b, sizeof(b), token);
	explicit_bzero(b, sizeof(b));
	return 0;
}

/* Tokens compared in time that does not depend on where they differ. */
static bool same_token(const char *a, const char *b)
{
	unsigned char diff = 0;

	for (size_t i = 0; i < PD_SPOOL_TOKEN_LEN; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Unlinks and returns *pp (lock held). */
static struct kept *unlink_at(struct kept **pp)
{
	struct kept *k = *pp;

	*pp = k->next;
	count--;
	return k;
}

static void drop(struct kept *k)
{
	close(k->fd);
	explicit_bzero(k->token, sizeof(k->token));
	free(k);
}

/* Closes what has expired, then sleeps until the next expiry or a new
 * spool. */
static void *reap(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		struct timespec now, next = {0, 0};
		struct kept **pp = &head, *gone = NULL;
		bool any = false;

		clock_gettime(CLOCK_MONOTONIC, &now);
		while (*pp) {
			if (!before(&now, &(*pp)->until)) {
				struct kept *k = unlink_at(pp);

				k->next = gone;
				gone = k;
				continue;
			}
			if (!any || before(&(*pp)->until, &next))
				next = (*pp)->until;
			any = true;
			pp = &(*pp)->next;
		}
		if (gone) {
			pthread_mutex_unlock(&lock);
			while (gone) {
				struct kept *k = gone;

				gone = k->next;
				drop(k);
			}
			pthread_mutex_lock(&lock);
			continue;
		}
		if (any)
			pthread_cond_timedwait(&wake, &lock, &next);
		else
			pthread_cond_wait(&wake, &lock);
	}
	return NULL;
}

/* The expiry thread, started with the first spool kept (lock held). */
static int start_reaper(void)
{
	pthread_condattr_t ca;
	pthread_attr_t ta;
	pthread_t t;
	int rc;

	if (reaper)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&ta);
	pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&ta, 64 * 1024);
	rc = pthread_create(&t, &ta, reap, NULL);
	pthread_attr_destroy(&ta);
	if (rc) {
		pthread_cond_destroy(&wake);
		return -rc;
	}
	reaper = true;
	return 0;
}

int pd_spool_keep(int fd, const char *token, const struct pd_spool_key *key, unsigned seconds,
		  unsigned max)
{
	struct kept *k, *old = NULL;
	int rc;

	if (!seconds || !max || strlen(token) != PD_SPOOL_TOKEN_LEN) {
		close(fd);
		return 0;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		close(fd);
		return -ENOMEM;
	}
	k->fd = fd;
	memcpy(k->token, token, PD_SPOOL_TOKEN_LEN + 1);
	k->key = *key;
	clock_gettime(CLOCK_MONOTONIC, &k->until);
	k->until.tv_sec += seconds;
	pthread_mutex_lock(&lock);
	rc = start_reaper();
	if (rc < 0) {
		pthread_mutex_unlock(&lock);
		drop(k);
		return rc;
	}
	if (count >= max)
		old = unlink_at(&head);
	{
		struct kept **pp = &head;

		while (*pp)
			pp = &(*pp)->next;
		*pp = k;
		count++;
	}
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	if (old)
		drop(old);
	return 0;
}

int pd_spool_take(const char *token, const struct pd_spool_key *key)
{
	struct kept *k = NULL;
	int fd;

	if (strnlen(token, PD_SPOOL_TOKEN_LEN + 1) != PD_SPOOL_TOKEN_LEN)
		return -ENOENT;
	pthread_mutex_lock(&lock);
	for (struct kept **pp = &head; *pp; pp = &(*pp)->next) {
		const struct kept *c = *pp;

		if (c->key.pid == key->pid && c->key.start_time == key->start_time &&
		    c->key.kind == key->kind && same_token(c->token, token)) {
			k = unlink_at(pp);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	if (!k)
		return -ENOENT;
	fd = k->fd;
	explicit_bzero(k->token, sizeof(k->token));
	free(k);
	return fd;
}
