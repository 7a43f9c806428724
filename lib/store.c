/* The dump store (lib/store.h; docs/STORE.md). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/store.h"
#include "lib/memcopy.h" /* pd_pwrite_all */
#include "lib/rules.h" /* pd_dump_format_name */
#include "lib/stacks.h" /* pd_stacks_text */
#include "common/strbuf.h"

#define NEW_PREFIX ".new-"
#define DEL_PREFIX ".del-"
#define META_NAME  "meta.json"
#define FILES_MAX  16

struct pd_store {
	char *dir;
	int dfd; /* the store directory, for the *at calls */
	struct pd_store_limits lim;
	uid_t uid; /* the directory's owner and group: what root gives new entries */
	gid_t gid;
};

struct store_file {
	char name[PD_STORE_NAME_MAX];
	int fd;	    /* the store's own reference */
	bool named; /* made as .tmp-NAME (no O_TMPFILE on this file system) */
};

struct pd_store_new {
	struct pd_store *s;
	char id[PD_STORE_ID_MAX];
	char dname[PD_STORE_ID_MAX + 8]; /* ".new-<id>" */
	int nfd;			 /* .new-<id>, flocked while it lives */
	int pid;
	bool uid_known; /* uid: the owner of /proc/PID at begin (lib/scope.h) */
	uid_t uid;
	struct timespec created;
	struct store_file files[FILES_MAX];
	size_t nfiles;
};


static bool is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* YYYYMMDDTHHMMSSZ-PID-hhhh */
bool pd_store_id_valid(const char *id)
{
	size_t len, plen;
	const char *p;

	if (!id)
		return false;
	len = strnlen(id, PD_STORE_ID_MAX);
	if (len >= PD_STORE_ID_MAX || len < 16 + 1 + 1 + 1 + 4)
		return false;
	if (!is_digits(id, 8) || id[8] != 'T' || !is_digits(id + 9, 6) || id[15] != 'Z' ||
	    id[16] != '-')
		return false;
	p = id + 17;
	plen = strcspn(p, "-");
	if (plen < 1 || plen > 10 || !is_digits(p, plen) || p[plen] != '-')
		return false;
	p += plen + 1;
	if (strlen(p) != 4)
		return false;
	for (int i = 0; i < 4; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

bool pd_store_name_valid(const char *name)
{
	size_t len;

	if (!name)
		return false;
	len = strnlen(name, PD_STORE_NAME_MAX);
	if (len < 1 || len >= PD_STORE_NAME_MAX || name[0] == '.' || !strcmp(name, META_NAME))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* The id's second, for an entry without a readable meta.json. */
static uint64_t id_time_ns(const char *id)
{
	struct tm tm = {0};

	if (!strptime(id, "%Y%m%dT%H%M%SZ", &tm))
		return 0;
	return (uint64_t)timegm(&tm) * 1000000000ull;
}

/* The store directory locked (a new open file description each time, so
 * threads of one process exclude each other as processes do). */
static int lock_store(const struct pd_store *s)
{
	int fd = openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int rc = -errno;

			close(fd);
			return rc;
		}
	}
	return fd;
}

static void unlock_store(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* Removes name (a file, or a directory and what it holds) under dfd.
 * ENOENT is success: someone else removed it first. */
static int remove_tree(int dfd, const char *name)
{
	int fd, rc = 0;
	DIR *d;
	struct dirent *e;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int r = remove_tree(dirfd(d), e->d_name);

		if (r < 0 && !rc)
			rc = r;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !rc)
		rc = -errno;
	return rc;
}

/* An entry out of the listing at once (renamed to .del-<id>), then
 * deleted. */
static int remove_entry(const struct pd_store *s, const char *id)
{
	char del[PD_STORE_ID_MAX + 8];

	snprintf(del, sizeof(del), DEL_PREFIX "%s", id);
	if (renameat(s->dfd, id, s->dfd, del) < 0)
		return -errno;
	return remove_tree(s->dfd, del);
}

/* .new-* nobody holds (a writer that died) and .del-* (a removal cut
 * short). Under the store lock: a writer makes and locks its directory
 * under it too, so none is ever seen unlocked while alive. */
static void sweep(const struct pd_store *s)
{
	int fd = openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, DEL_PREFIX, strlen(DEL_PREFIX))) {
			remove_tree(s->dfd, e->d_name);
		} else if (!strncmp(e->d_name, NEW_PREFIX, strlen(NEW_PREFIX))) {
			int nfd = openat(s->dfd, e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (nfd < 0)
				continue;
			if (flock(nfd, LOCK_EX | LOCK_NB) == 0)
				remove_tree(s->dfd, e->d_name);
			close(nfd);
		}
	}
	closedir(d);
}

/* An entry's meta.json, or NULL. */
static json_t *read_meta(int edfd)
{
	int fd = openat(edfd, META_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	json_t *m;

	if (fd < 0)
		return NULL;
	m = json_loadfd(fd, 0, NULL);
	close(fd);
	if (m && !json_is_object(m)) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

/* The allocated bytes of an entry's files (meta.json not counted). */
static uint64_t entry_bytes(int edfd)
{
	int fd = openat(edfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	uint64_t sum = 0;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, META_NAME))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512u;
	}
	closedir(d);
	return sum;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct pd_quota_item *x = a, *y = b;

	if (x->created_ns != y->created_ns)
		return x->created_ns < y->created_ns ? -1 : 1;
	return strcmp(x->name, y->name);
}

void pd_quota_sort(struct pd_quota_item *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof(*v), cmp_entry);
}

void pd_quota_mark(const struct pd_store_limits *l, struct pd_quota_item *v, size_t n,
		   uint64_t now_ns, bool room, uint64_t add_bytes)
{
	uint64_t age_ns = l->max_age_s * 1000000000ull, total = 0;
	size_t left = 0;

	for (size_t i = 0; i < n; i++) {
		v[i].evict = l->max_age_s && v[i].created_ns + age_ns <= now_ns;
		if (!v[i].evict) {
			left++;
			total += v[i].bytes;
		}
	}
	for (size_t i = 0; room && i < n; i++) {
		if (v[i].evict)
			continue;
		if (!((l->max_count && left + 1 > l->max_count) ||
		      (l->max_bytes && total + add_bytes > l->max_bytes)))
			break;
		v[i].evict = true;
		left--;
		total -= v[i].bytes;
	}
}

bool pd_quota_too_big(const struct pd_store_limits *l, uint64_t bytes)
{
	return l->max_bytes && bytes > l->max_bytes;
}

/* The entries, oldest first; with_bytes: their sizes too. */
static int scan(const struct pd_store *s, bool with_bytes, struct pd_quota_item **out, size_t *n)
{
	int fd = openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct pd_quota_item *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *e;

	if (!d) {
		int rc = -errno;

		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((e = readdir(d))) {
		int edfd;
		json_t *m;
		json_t *c;

		if (!pd_store_id_valid(e->d_name))
			continue;
		edfd = openat(s->dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (edfd < 0)
			continue; /* removed meanwhile, or not a directory */
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct pd_quota_item *nv = realloc(v, ncap * sizeof(*v));

			if (!nv) {
				close(edfd);
				closedir(d);
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap = ncap;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		snprintf(v[cnt].name, sizeof(v[cnt].name), "%.47s", e->d_name);
		m = read_meta(edfd);
		c = m ? json_object_get(m, "created_ns") : NULL;
		v[cnt].created_ns = json_is_integer(c) ? (uint64_t)json_integer_value(c)
						       : id_time_ns(e->d_name);
		json_decref(m);
		if (with_bytes)
			v[cnt].bytes = entry_bytes(edfd);
		close(edfd);
		cnt++;
	}
	closedir(d);
	pd_quota_sort(v, cnt);
	*out = v;
	*n = cnt;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Entries past max_age removed; under the store lock. */
static void expire(const struct pd_store *s)
{
	struct pd_quota_item *v = NULL;
	size_t n = 0;

	if (!s->lim.max_age_s || scan(s, false, &v, &n) < 0)
		return;
	pd_quota_mark(&s->lim, v, n, now_ns(), false, 0);
	for (size_t i = 0; i < n; i++)
		if (v[i].evict)
			remove_entry(s, v[i].name);
	free(v);
}

int pd_store_open(const char *dir, const struct pd_store_limits *l, struct pd_store **out)
{
	struct pd_store *s;
	struct stat st;
	int lk;

	*out = NULL;
	if (!dir || dir[0] != '/')
		return -EINVAL;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return -ENOMEM;
	}
	if (l)
		s->lim = *l;
	s->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dfd < 0 || fstat(s->dfd, &st) < 0) {
		int rc = -errno;

		pd_store_close(s);
		return rc;
	}
	s->uid = st.st_uid;
	s->gid = st.st_gid;
	lk = lock_store(s);
	if (lk < 0) {
		pd_store_close(s);
		return lk;
	}
	sweep(s);
	expire(s);
	unlock_store(lk);
	*out = s;
	return 0;
}

void pd_store_close(struct pd_store *s)
{
	if (!s)
		return;
	if (s->dfd >= 0)
		close(s->dfd);
	free(s->dir);
	free(s);
}

const char *pd_store_dir(const struct pd_store *s)
{
	return s->dir;
}

const struct pd_store_limits *pd_store_get_limits(const struct pd_store *s)
{
	return &s->lim;
}

/* Root (the crash handler) gives what it makes to the store's owner, so
 * the responder can read and remove it. */
static void own(const struct pd_store *s, int fd)
{
	if (geteuid() == 0 && (s->uid != 0 || s->gid != 0))
		(void)!fchown(fd, s->uid, s->gid);
}

static void make_id(char *id, size_t size, const struct timespec *ts, int pid)
{
	struct tm tm;
	char stamp[24];
	uint16_t r = 0;

	gmtime_r(&ts->tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint16_t)(ts->tv_nsec ^ (long)getpid() << 4);
	snprintf(id, size, "%s-%d-%04x", stamp, pid, r);
}

int pd_store_begin(struct pd_store *s, int pid, struct pd_store_new **out)
{
	struct pd_store_new *n;
	int lk, rc = -EEXIST;

	*out = NULL;
	if (pid < 0)
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->s = s;
	n->pid = pid;
	n->nfd = -1;
	if (pid > 0) {
		/* whose process the entry is about: the uid a scope judges (the
		 * owner of the directory, lib/scope.h) */
		char path[32];
		struct stat pst;

		snprintf(path, sizeof(path), "/proc/%d", pid);
		if (stat(path, &pst) == 0) {
			n->uid_known = true;
			n->uid = pst.st_uid;
		}
	}
	lk = lock_store(s);
	if (lk < 0) {
		free(n);
		return lk;
	}
	/* What a writer that died since the store was opened left (a
	 * crash handler killed at its timeout): swept now, not at the next
	 * start of the responder. */
	sweep(s);
	clock_gettime(CLOCK_REALTIME, &n->created);
	for (int attempt = 0; attempt < 32 && rc == -EEXIST; attempt++) {
		struct stat st;

		make_id(n->id, sizeof(n->id), &n->created, pid);
		snprintf(n->dname, sizeof(n->dname), NEW_PREFIX "%s", n->id);
		if (fstatat(s->dfd, n->id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue; /* rc stays -EEXIST */
		rc = mkdirat(s->dfd, n->dname, 0750) < 0 ? -errno : 0;
	}
	if (rc == 0) {
		n->nfd = openat(s->dfd, n->dname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (n->nfd < 0 || flock(n->nfd, LOCK_EX) < 0) {
			rc = -errno;
			if (n->nfd >= 0)
				close(n->nfd);
			unlinkat(s->dfd, n->dname, AT_REMOVEDIR);
		} else {
			own(s, n->nfd);
		}
	}
	unlock_store(lk);
	if (rc < 0) {
		free(n);
		return rc;
	}
	*out = n;
	return 0;
}

const char *pd_store_new_id(const struct pd_store_new *n)
{
	return n->id;
}

/* An unnamed file in the entry's directory; *tmpname set when the file
 * system has no O_TMPFILE and a named ".tmp-..." file was made instead
 * (never listed: the directory is not an entry yet). */
static int open_unnamed(struct pd_store_new *n, const char *tmpname, bool *named)
{
	int fd = openat(n->nfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0640);

	*named = false;
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		fd = openat(n->nfd, tmpname, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC,
			    0640);
		*named = fd >= 0;
	}
	if (fd < 0)
		return -errno;
	own(n->s, fd);
	return fd;
}

int pd_store_file(struct pd_store_new *n, const char *name, uint64_t estimate)
{
	struct store_file *f;
	char tmp[PD_STORE_NAME_MAX + 8];
	int fd, cfd;

	(void)estimate;
	if (!pd_store_name_valid(name))
		return -EINVAL;
	for (size_t i = 0; i < n->nfiles; i++)
		if (!strcmp(n->files[i].name, name))
			return -EEXIST;
	if (n->nfiles == FILES_MAX)
		return -EMFILE;
	snprintf(tmp, sizeof(tmp), ".tmp-%s", name);
	f = &n->files[n->nfiles];
	fd = open_unnamed(n, tmp, &f->named);
	if (fd < 0)
		return fd;
	cfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (cfd < 0) {
		int rc = -errno;

		if (f->named)
			unlinkat(n->nfd, tmp, 0);
		close(fd);
		return rc;
	}
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->fd = fd;
	n->nfiles++;
	return cfd;
}

int pd_store_scratch(struct pd_store_new *n)
{
	static _Atomic unsigned seq;
	char tmp[48];
	int fd;
	bool named;

	snprintf(tmp, sizeof(tmp), ".scratch-%u", seq++);
	fd = open_unnamed(n, tmp, &named);
	if (fd >= 0 && named)
		unlinkat(n->nfd, tmp, 0); /* unnamed at once */
	return fd;
}

static void free_new(struct pd_store_new *n)
{
	for (size_t i = 0; i < n->nfiles; i++)
		close(n->files[i].fd);
	if (n->nfd >= 0)
		close(n->nfd); /* the flock goes with it */
	free(n);
}

void pd_store_abort(struct pd_store_new *n)
{
	if (!n)
		return;
	/* Removed while still locked: a sweeper skips it meanwhile. */
	remove_tree(n->s->dfd, n->dname);
	free_new(n);
}

/* Links the unnamed fd into the entry's directory as name. */
static int link_in(struct pd_store_new *n, int fd, bool named, const char *name)
{
	char path[64];

	if (named) {
		char tmp[PD_STORE_NAME_MAX + 8];

		snprintf(tmp, sizeof(tmp), ".tmp-%s", name);
		return renameat(n->nfd, tmp, n->nfd, name) < 0 ? -errno : 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, path, n->nfd, name, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	if (linkat(fd, "", n->nfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	return -errno;
}

/* The files synced and linked, their figures into meta. */
static int finish_files(struct pd_store_new *n, json_t *meta, uint64_t *total)
{
	json_t *files = json_array();
	uint64_t sum = 0;

	if (!files)
		return -ENOMEM;
	for (size_t i = 0; i < n->nfiles; i++) {
		struct store_file *f = &n->files[i];
		struct stat st;
		int rc;

		if (fdatasync(f->fd) < 0 || fstat(f->fd, &st) < 0) {
			json_decref(files);
			return -errno;
		}
		rc = link_in(n, f->fd, f->named, f->name);
		if (rc < 0) {
			json_decref(files);
			return rc;
		}
		sum += (uint64_t)st.st_blocks * 512u;
		json_array_append_new(files, json_pack("{s:s,s:I,s:I}", "name", f->name, "size",
						       (json_int_t)st.st_size, "bytes",
						       (json_int_t)st.st_blocks * 512));
		if (i == 0) {
			json_object_set_new(meta, "file", json_string(f->name));
			json_object_set_new(meta, "size", json_integer((json_int_t)st.st_size));
		}
	}
	json_object_set_new(meta, "bytes", json_integer((json_int_t)sum));
	json_object_set_new(meta, "files", files);
	*total = sum;
	return 0;
}

static int write_meta(struct pd_store_new *n, json_t *meta)
{
	char *text = json_dumps(meta, JSON_INDENT(1) | JSON_ENSURE_ASCII);
	char *nl = text ? realloc(text, strlen(text) + 2) : NULL;
	int fd, rc;
	bool named;

	if (!nl) {
		free(text);
		return -ENOMEM;
	}
	text = strcat(nl, "\n");
	fd = open_unnamed(n, ".tmp-" META_NAME, &named);
	if (fd < 0) {
		free(text);
		return fd;
	}
	rc = pd_pwrite_all(fd, text, strlen(text), 0);
	free(text);
	if (!rc && fdatasync(fd) < 0)
		rc = -errno;
	if (!rc) {
		if (named)
			rc = renameat(n->nfd, ".tmp-" META_NAME, n->nfd, META_NAME) < 0 ? -errno : 0;
		else
			rc = link_in(n, fd, false, META_NAME);
	}
	close(fd);
	return rc;
}

/* Under the store lock: those past max_age out, then the oldest until one
 * more entry of `bytes` fits. */
static int make_room(const struct pd_store *s, uint64_t bytes)
{
	const struct pd_store_limits *l = &s->lim;
	struct pd_quota_item *v = NULL;
	size_t n = 0;
	int rc;

	if (!l->max_count && !l->max_bytes && !l->max_age_s)
		return 0;
	rc = scan(s, l->max_bytes != 0, &v, &n);
	if (rc < 0)
		return rc;
	pd_quota_mark(l, v, n, now_ns(), true, bytes);
	for (size_t i = 0; i < n; i++)
		if (v[i].evict)
			remove_entry(s, v[i].name);
	free(v);
	return 0;
}

int pd_store_commit(struct pd_store_new *n, json_t *meta, char id[PD_STORE_ID_MAX])
{
	struct pd_store *s = n->s;
	char created[32];
	struct tm tm;
	uint64_t bytes = 0;
	int lk, rc;

	if (id)
		id[0] = '\0';
	if (!meta)
		meta = json_object();
	if (!meta || !json_is_object(meta)) {
		rc = meta ? -EINVAL : -ENOMEM;
		goto fail;
	}
	if (!n->nfiles) {
		rc = -ENOENT;
		goto fail;
	}
	gmtime_r(&n->created.tv_sec, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(meta, "id", json_string(n->id));
	json_object_set_new(meta, "created", json_string(created));
	json_object_set_new(meta, "created_ns",
			    json_integer((json_int_t)((uint64_t)n->created.tv_sec * 1000000000ull +
						      (uint64_t)n->created.tv_nsec)));
	if (!json_object_get(meta, "pid"))
		json_object_set_new(meta, "pid", json_integer(n->pid));
	if (!json_object_get(meta, "uid") && n->uid_known)
		json_object_set_new(meta, "uid", json_integer((json_int_t)n->uid));
	rc = finish_files(n, meta, &bytes);
	if (rc < 0)
		goto fail;
	if (pd_quota_too_big(&s->lim, bytes)) {
		rc = -EDQUOT; /* would not fit an empty store: nothing evicted */
		goto fail;
	}
	rc = write_meta(n, meta);
	if (rc < 0)
		goto fail;
	lk = lock_store(s);
	if (lk < 0) {
		rc = lk;
		goto fail;
	}
	rc = make_room(s, bytes);
	if (!rc && renameat(s->dfd, n->dname, s->dfd, n->id) < 0)
		rc = -errno;
	if (!rc)
		fsync(s->dfd);
	unlock_store(lk);
	if (rc < 0)
		goto fail;
	if (id)
		snprintf(id, PD_STORE_ID_MAX, "%s", n->id);
	json_decref(meta);
	free_new(n);
	return 0;
fail:
	json_decref(meta);
	pd_store_abort(n);
	return rc;
}

static int cmp_newest(const void *a, const void *b)
{
	return -cmp_entry(a, b);
}

int pd_store_list(struct pd_store *s, json_t **entries)
{
	struct pd_quota_item *v = NULL;
	size_t n = 0;
	json_t *arr;
	int rc;

	*entries = NULL;
	if (s->lim.max_age_s) {
		int lk = lock_store(s);

		if (lk >= 0) {
			expire(s);
			unlock_store(lk);
		}
	}
	rc = scan(s, false, &v, &n);
	if (rc < 0)
		return rc;
	if (n)
		qsort(v, n, sizeof(*v), cmp_newest);
	arr = json_array();
	if (!arr) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		int edfd = openat(s->dfd, v[i].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		json_t *m;

		if (edfd < 0)
			continue; /* removed since the scan */
		m = read_meta(edfd);
		if (!m) {
			m = json_pack("{s:s,s:s,s:I}", "id", v[i].name, "error",
				      "meta.json cannot be read", "bytes",
				      (json_int_t)entry_bytes(edfd));
		}
		close(edfd);
		if (m)
			json_array_append_new(arr, m);
	}
	free(v);
	*entries = arr;
	return 0;
}

int pd_store_open_entry(struct pd_store *s, const char *id, const char *file, int *fd,
			json_t **meta)
{
	int edfd, f;
	json_t *m;
	struct stat st;

	if (!pd_store_id_valid(id) || (file && !pd_store_name_valid(file)))
		return -EINVAL;
	edfd = openat(s->dfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (edfd < 0)
		return errno == ENOTDIR ? -ENOENT : -errno;
	m = read_meta(edfd);
	if (!file) {
		json_t *main = m ? json_object_get(m, "file") : NULL;

		file = json_string_value(main);
		if (!pd_store_name_valid(file)) {
			close(edfd);
			json_decref(m);
			return -ENOENT;
		}
	}
	f = openat(edfd, file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (f < 0 || fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
		int rc = f < 0 && errno != ELOOP ? -errno : -ENOENT;

		if (f >= 0)
			close(f);
		close(edfd);
		json_decref(m);
		return rc;
	}
	close(edfd);
	*fd = f;
	if (meta)
		*meta = m;
	else
		json_decref(m);
	return 0;
}

int pd_store_remove(struct pd_store *s, const char *id)
{
	struct stat st;

	if (!pd_store_id_valid(id))
		return -EINVAL;
	if (fstatat(s->dfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOENT;
	return remove_entry(s, id);
}

const char *pd_store_dump_name(enum pd_dump_format format, int pid, char *buf, size_t size)
{
	snprintf(buf, size, "core.%d%s", pid,
		 format == PD_DUMP_FORMAT_ZIP	 ? ".zip"
		 : format == PD_DUMP_FORMAT_ZSTD ? ".zst"
						 : "");
	return buf;
}

int pd_store_dump_open_out(void *arg, enum pd_dumpjob_file which, uint64_t estimate,
			   uint64_t *limit)
{
	struct pd_store_dumpout *o = arg;
	enum pd_dumpjob_file final = o->format == PD_DUMP_FORMAT_ZIP	? PD_DUMPJOB_ZIP
				     : o->format == PD_DUMP_FORMAT_ZSTD ? PD_DUMPJOB_ZSTD
									: PD_DUMPJOB_CORE;
	char buf[PD_STORE_NAME_MAX];

	*limit = 0;
	if (which != final)
		return pd_store_scratch(o->n);
	return pd_store_file(o->n, o->name ? o->name : pd_store_dump_name(o->format, o->pid, buf, sizeof(buf)),
			     estimate);
}

struct dump_job_arg {
	struct pd_store_dumpout out; /* first: pd_store_dump_open_out reads it */
	int (*progress)(void *, enum pd_dump_phase, uint64_t, uint64_t);
	void *parg;
};

static int dump_job_progress(void *arg, enum pd_dump_phase phase, uint64_t done, uint64_t total)
{
	struct dump_job_arg *a = arg;

	return a->progress ? a->progress(a->parg, phase, done, total) : 0;
}

int pd_store_dump_job(struct pd_store *s, struct pd_dumpjob_opts *o,
		      int (*progress)(void *, enum pd_dump_phase, uint64_t, uint64_t), void *parg,
		      const char *process, const char *trigger, const char *rule,
		      json_t *(*meta_hook)(json_t *, void *), void *hook_arg,
		      struct pd_dumpjob_result *jr, char id[PD_STORE_ID_MAX], char *detail,
		      size_t detlen)
{
	struct dump_job_arg a = { .out = { .format = o->format, .pid = o->pid },
				  .progress = progress, .parg = parg };
	json_t *meta;
	int rc;

	memset(jr, 0, sizeof(*jr));
	jr->fd = -1;
	id[0] = 0;
	rc = pd_store_begin(s, o->pid, &a.out.n);
	if (rc < 0) {
		snprintf(detail, detlen, "dump: the store failed: %s", strerror(-rc));
		return rc;
	}
	o->open_out = pd_store_dump_open_out;
	o->progress = dump_job_progress;
	o->arg = &a;
	if (pd_dumpjob_run(o, jr) < 0) {
		pd_store_abort(a.out.n);
		snprintf(detail, detlen, "dump: %.200s (%s, phase %s)", jr->detail,
			 pd_dump_error_code(jr->error), pd_dump_phase_name(jr->phase));
		return jr->rc ? jr->rc : -EIO;
	}
	close(jr->fd);
	jr->fd = -1;
	meta = pd_store_dump_meta(jr, &o->type, o->format, o->pid, process, trigger, rule);
	if (meta && meta_hook)
		meta = meta_hook(meta, hook_arg);
	if (!meta) {
		pd_store_abort(a.out.n);
		snprintf(detail, detlen, "dump: out of memory");
		return -ENOMEM;
	}
	rc = pd_store_commit(a.out.n, meta, id);
	if (rc == -EDQUOT) {
		snprintf(detail, detlen,
			 "quota: the dump is larger than store_max_bytes; nothing was stored");
		return rc;
	}
	if (rc < 0) {
		snprintf(detail, detlen, "dump: the store failed: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

/* name, len bytes of buf, a new file of entry n. */
static int store_bytes(struct pd_store_new *n, const char *name, const char *buf, size_t len)
{
	int fd = pd_store_file(n, name, len), rc;

	if (fd < 0)
		return fd;
	rc = pd_pwrite_all(fd, buf, len, 0);
	close(fd);
	return rc;
}

int pd_store_stacks(struct pd_store *s, int pid, const json_t *doc, json_t *meta,
		    char id[PD_STORE_ID_MAX], char *detail, size_t detlen)
{
	struct strbuf text = STRBUF_INIT;
	struct pd_store_new *n = NULL;
	char *js = json_dumps(doc, JSON_INDENT(1));
	int rc;

	id[0] = 0;
	if (!js || !meta || pd_stacks_text(doc, NULL, &text) < 0 ||
	    json_object_set_new(meta, "kind", json_string("stacks")) < 0 ||
	    json_object_set_new(meta, "pid", json_integer(pid)) < 0 ||
	    json_object_set_new(meta, "threads",
				json_integer((json_int_t)json_array_size(
					json_object_get(doc, "threads")))) < 0) {
		rc = -ENOMEM;
		snprintf(detail, detlen, "stacks: out of memory");
		goto out;
	}
	rc = pd_store_begin(s, pid, &n);
	if (rc < 0) {
		snprintf(detail, detlen, "stacks: the store failed: %s", strerror(-rc));
		goto out;
	}
	rc = store_bytes(n, "stacks.json", js, strlen(js));
	if (rc == 0)
		rc = store_bytes(n, "stacks.txt", text.buf, text.len);
	if (rc < 0) {
		pd_store_abort(n);
		snprintf(detail, detlen, "stacks: writing to the store failed: %s", strerror(-rc));
		goto out;
	}
	rc = pd_store_commit(n, meta, id);
	meta = NULL;
	if (rc == -EDQUOT)
		snprintf(detail, detlen,
			 "quota: the stacks snapshot is larger than store_max_bytes; nothing was "
			 "stored");
	else if (rc < 0)
		snprintf(detail, detlen, "stacks: the store failed: %s", strerror(-rc));
out:
	json_decref(meta);
	free(js);
	strbuf_release(&text);
	return rc;
}

json_t *pd_store_dump_meta(const struct pd_dumpjob_result *res, const struct pd_dumptype *type,
			   enum pd_dump_format format, int pid, const char *process,
			   const char *trigger, const char *rule)
{
	char tname[16], bits[16];
	json_t *m;

	snprintf(bits, sizeof(bits), "0x%x", type ? type->bits : 0);
	m = json_pack("{s:s,s:i,s:s?,s:s,s:s?,s:s,s:s,s:s}", "kind", "dump", "pid", pid, "process",
		      process, "trigger", trigger ? trigger : "manual", "rule", rule, "dumpType",
		      type ? pd_dumpjob_type_name(type, tname, sizeof(tname)) : "Full",
		      "dumpTypeBits", bits, "format", pd_dump_format_name(format));
	if (!m || !res)
		return m;
	{
		const struct pd_dumprun_result *d = &res->dump;
		const struct pd_dump_figures *f = &d->fig;
		json_t *fig = json_pack(
			"{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "stopped_us",
			(json_int_t)d->stopped_us, "freezing_us", (json_int_t)f->freezing_us,
			"frozen_us", (json_int_t)f->frozen_us, "copy_us", (json_int_t)f->copy_us,
			"copied_bytes", (json_int_t)f->copied_bytes, "extra_memory",
			(json_int_t)f->extra_memory, "dumped_bytes", (json_int_t)d->dumped_bytes,
			"threads", (json_int_t)d->threads, "mappings", (json_int_t)d->mappings,
			"core_size", (json_int_t)d->size);

		if (!fig || json_object_set_new(m, "figures", fig) < 0 ||
		    json_object_set_new(m, "method", json_string(f->method[0] ? f->method : "stop")) <
			    0 ||
		    json_object_set_new(m, "method_reason", json_string(f->reason)) < 0 ||
		    json_object_set_new(m, "core_name", json_string(res->core_name)) < 0) {
			json_decref(m);
			return NULL;
		}
		if (format == PD_DUMP_FORMAT_ZIP &&
		    json_object_set_new(m, "bundle",
					json_pack("{s:i,s:i,s:i}", "modules", (int)res->bundle.modules,
						  "binaries", (int)res->bundle.binaries,
						  "debug_files", (int)res->bundle.debug_files)) < 0) {
			json_decref(m);
			return NULL;
		}
	}
	return m;
}
