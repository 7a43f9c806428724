#include "config.h"

#include "lib/users.h"

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/numparse.h"

/* A listing asks for the same few uids over and over; NSS (LDAP, sssd) may
 * take milliseconds each. The cache is bounded: when full it is emptied,
 * which is simple and, with a few hundred users at most, rare. */
#define CACHE_MAX 512
/* A passwd entry larger than this is not one we want. */
#define PWBUF_MAX (1u << 20)

struct entry {
	uid_t uid;
	char *name; /* the passwd name, or the decimal uid if there is none */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *cache;
static size_t ncache;

/* getpwuid_r/getpwnam_r with a buffer grown on ERANGE. 1 found, 0 no such
 * entry, -errno on failure. *bufp (caller frees) backs pw's strings. */
static int pw_lookup(const char *name, uid_t uid, struct passwd *pw, char **bufp)
{
	long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = hint > 0 ? (size_t)hint : 1024;
	struct passwd *res;

	*bufp = NULL;
	for (;;) {
		char *b = realloc(*bufp, size);
		int e;

		if (!b)
			return -ENOMEM;
		*bufp = b;
		if (name)
			e = getpwnam_r(name, pw, b, size, &res);
		else
			e = getpwuid_r(uid, pw, b, size, &res);
		if (e == ERANGE && size < PWBUF_MAX) {
			size *= 2;
			continue;
		}
		if (e == 0)
			return res ? 1 : 0;
		/* getpwnam(3) lists these as other ways of saying "not found". */
		if (e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
			return 0;
		return -e;
	}
}

static int copy_out(const char *s, char *buf, size_t buflen)
{
	size_t n = strlen(s);

	if (n >= buflen)
		return -ENOSPC;
	memcpy(buf, s, n + 1);
	return 0;
}

static struct entry *find(uid_t uid)
{
	for (size_t i = 0; i < ncache; i++)
		if (cache[i].uid == uid)
			return &cache[i];
	return NULL;
}

static void clear_cache(void)
{
	for (size_t i = 0; i < ncache; i++)
		free(cache[i].name);
	ncache = 0;
}

/* Takes ownership of name on success. Called with the lock held. */
static bool insert(uid_t uid, char *name)
{
	if (find(uid))
		return false; /* another thread was faster */
	if (!cache) {
		cache = calloc(CACHE_MAX, sizeof(*cache));
		if (!cache)
			return false;
	}
	if (ncache == CACHE_MAX)
		clear_cache();
	cache[ncache].uid = uid;
	cache[ncache].name = name;
	ncache++;
	return true;
}

/* The name to show for uid, malloc'd. -errno only for failures worth
 * retrying (memory, NSS trouble); a missing entry gives the number. */
static int resolve(uid_t uid, char **out)
{
	struct passwd pw;
	char *pwbuf, num[24];
	int r;

	r = pw_lookup(NULL, uid, &pw, &pwbuf);
	if (r >= 0) {
		if (r == 0)
			snprintf(num, sizeof(num), "%lu", (unsigned long)uid);
		*out = strdup(r ? pw.pw_name : num);
		r = *out ? 0 : -ENOMEM;
	}
	free(pwbuf);
	return r;
}

int pd_user_name(uid_t uid, char *buf, size_t buflen)
{
	char *name;
	int r = 1;

	pthread_mutex_lock(&lock);
	{
		struct entry *e = find(uid);

		if (e)
			r = copy_out(e->name, buf, buflen);
	}
	pthread_mutex_unlock(&lock);
	if (r <= 0)
		return r;

	/* Resolve without the lock: NSS may be slow and must not serialize
	 * every worker thread behind one lookup. */
	if (resolve(uid, &name) < 0) {
		char num[24];

		/* Not cached, so a passing failure is retried next time. */
		snprintf(num, sizeof(num), "%lu", (unsigned long)uid);
		return copy_out(num, buf, buflen);
	}
	pthread_mutex_lock(&lock);
	r = copy_out(name, buf, buflen);
	if (!insert(uid, name))
		free(name);
	pthread_mutex_unlock(&lock);
	return r;
}

int pd_user_lookup(const char *name, uid_t *out)
{
	struct passwd pw;
	char *pwbuf;
	uint64_t v;
	int r;

	if (!name || !*name)
		return -ENOENT;
	/* All digits is a uid, with or without a passwd entry (containers
	 * often run as bare numbers). (uid_t)-1 means "no uid" to the kernel. */
	r = parse_u64(name, strlen(name), (uid_t)-2, &v);
	if (r == 0) {
		*out = (uid_t)v;
		return 0;
	}
	if (r == -ERANGE)
		return -ENOENT;
	r = pw_lookup(name, 0, &pw, &pwbuf);
	if (r > 0)
		*out = pw.pw_uid;
	free(pwbuf);
	if (r == -ENOMEM)
		return r;
	return r > 0 ? 0 : -ENOENT;
}
