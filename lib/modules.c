#include "config.h"

#include "lib/modules.h"

#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ---- build-id of an ELF image -------------------------------------------- */

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;

static void elf_init(void)
{
	elf_version(EV_CURRENT);
}

/* A build-id longer than idmax is not one any toolchain writes: -EINVAL. */
static int elf_build_id(Elf *elf, unsigned char *id, size_t idmax, size_t *idlen)
{
	const void *bits;
	ssize_t n;

	if (elf_kind(elf) != ELF_K_ELF)
		return -EINVAL;
	/* Looks in PT_NOTE segments first, then SHT_NOTE sections. */
	n = dwelf_elf_gnu_build_id(elf, &bits);
	if (n < 0)
		return -EINVAL;
	if (n == 0)
		return -ENOENT;
	if ((size_t)n > idmax)
		return -EINVAL;
	memcpy(id, bits, (size_t)n);
	*idlen = (size_t)n;
	return 0;
}

int pd_elf_build_id(int fd, unsigned char *id, size_t idmax, size_t *idlen)
{
	Elf *elf;
	int rc;

	pthread_once(&elf_once, elf_init);
	*idlen = 0;
	/* ELF_C_READ, not ELF_C_READ_MMAP: libelf then reads with pread, so a
	 * file truncated under us gives an error rather than SIGBUS. It reads
	 * only the headers and the notes it is asked for. */
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf)
		return -EINVAL;
	rc = elf_build_id(elf, id, idmax, idlen);
	elf_end(elf);
	return rc;
}

/* ---- cache: one answer per file version ----------------------------------
 * Keyed by what identifies the file's content without reading it: device,
 * inode, mtime and size. Negative answers (no note, not ELF) are cached
 * too, so a list of modules costs one stat per module once warm. */

#define CACHE_BUCKETS 256
#define CACHE_MAX     4096 /* beyond that, start over: simple and bounded */

struct cache_ent {
	struct cache_ent *next;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	off_t size;
	int rc;
	size_t len;
	unsigned char id[PD_BUILD_ID_MAX];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_ent *cache[CACHE_BUCKETS];
static size_t cache_n;

static size_t bucket_of(const struct stat *st)
{
	uint64_t h = (uint64_t)st->st_ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)st->st_dev;

	return (size_t)(h >> 32) % CACHE_BUCKETS;
}

static bool same_file(const struct cache_ent *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* true on a hit; *rc and the id are the cached answer. */
static bool cache_get(const struct stat *st, int *rc, unsigned char *id, size_t *len)
{
	bool hit = false;

	pthread_mutex_lock(&cache_lock);
	for (struct cache_ent *e = cache[bucket_of(st)]; e; e = e->next) {
		if (!same_file(e, st))
			continue;
		*rc = e->rc;
		*len = e->len;
		memcpy(id, e->id, e->len);
		hit = true;
		break;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void cache_flush_locked(void)
{
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		while (cache[b]) {
			struct cache_ent *e = cache[b];

			cache[b] = e->next;
			free(e);
		}
	}
	cache_n = 0;
}

/* Best effort: without memory the answer is just not remembered. */
static void cache_put(const struct stat *st, int rc, const unsigned char *id, size_t len)
{
	struct cache_ent *e = calloc(1, sizeof(*e));
	size_t b = bucket_of(st);

	if (!e)
		return;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->mtime = st->st_mtim;
	e->size = st->st_size;
	e->rc = rc;
	e->len = len;
	memcpy(e->id, id, len);
	pthread_mutex_lock(&cache_lock);
	for (struct cache_ent *o = cache[b]; o; o = o->next) {
		if (same_file(o, st)) { /* another thread was first */
			pthread_mutex_unlock(&cache_lock);
			free(e);
			return;
		}
	}
	if (cache_n >= CACHE_MAX)
		cache_flush_locked();
	b = bucket_of(st);
	e->next = cache[b];
	cache[b] = e;
	cache_n++;
	pthread_mutex_unlock(&cache_lock);
}

/* ---- build-id of a mapped file --------------------------------------------- */

/* Tries one way to the file: name relative to dirfd. want_ino (0: any) must
 * match when the name is a path that may since have been replaced. Returns
 * 0 when an answer (positive or not) is in *rc, or -errno when this way
 * does not lead to the mapped file. */
static int try_source(int dirfd, const char *name, uint64_t want_ino, int *rc, unsigned char *id,
		      size_t idmax, size_t *idlen)
{
	struct stat st;
	int fd;

	if (fstatat(dirfd, name, &st, 0) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (want_ino && st.st_ino != want_ino))
		return -ESTALE;
	if (cache_get(&st, rc, id, idlen))
		return 0;
	/* O_NONBLOCK: should the name have become a FIFO since the stat, the
	 * open must not hang; the fstat below then rejects it. */
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (want_ino && st.st_ino != want_ino)) {
		close(fd);
		return -ESTALE;
	}
	*idlen = 0;
	*rc = pd_elf_build_id(fd, id, idmax, idlen);
	close(fd);
	cache_put(&st, *rc, id, *idlen);
	return 0;
}

/* map_files/START-END is the mapped inode itself, even when the path was
 * replaced or deleted, but opening it needs CAP_SYS_ADMIN (or
 * CAP_CHECKPOINT_RESTORE). Without it, the path is tried under the
 * process's root (its mount namespace), then as is, accepted only when the
 * inode number is the mapped one. Only the inode is compared: on overlayfs
 * the device in maps and the one stat reports can differ. */
static int file_build_id(struct pd_proc *p, const struct pd_map *m, unsigned char *id, size_t idmax,
			 size_t *idlen)
{
	struct strbuf path = STRBUF_INIT;
	char name[64];
	int rc = -ENOENT;

	snprintf(name, sizeof(name), "map_files/%" PRIx64 "-%" PRIx64, m->start, m->end);
	if (try_source(p->dirfd, name, 0, &rc, id, idmax, idlen) == 0)
		return rc;
	if (m->deleted || m->path[0] != '/')
		return -ENOENT; /* the path names another file, or none */
	if (strbuf_addstr(&path, "root") < 0 || strbuf_addstr(&path, m->path) < 0) {
		strbuf_release(&path);
		return -ENOMEM;
	}
	if (try_source(p->dirfd, path.buf, m->inode, &rc, id, idmax, idlen) == 0 ||
	    try_source(AT_FDCWD, m->path, m->inode, &rc, id, idmax, idlen) == 0) {
		strbuf_release(&path);
		return rc;
	}
	strbuf_release(&path);
	return -ENOENT;
}

int pd_mem_build_id(const void *buf, size_t len, unsigned char *id, size_t idmax, size_t *idlen)
{
	Elf *elf;
	int rc;

	pthread_once(&elf_once, elf_init);
	*idlen = 0;
	/* elf_memory() wants a writable image but does not write to it unless
	 * asked to (ELF_C_READ_MMAP semantics). */
	elf = elf_memory((char *)buf, len);
	if (!elf)
		return -EINVAL;
	rc = elf_build_id(elf, id, idmax, idlen);
	elf_end(elf);
	return rc;
}

/* The vDSO is no file: its image is read from the process's memory (which
 * needs the same ptrace access as maps). It is a page or two. */
static int vdso_build_id(struct pd_proc *p, uint64_t start, uint64_t end, unsigned char *id,
			 size_t idmax, size_t *idlen)
{
	size_t len = end - start;
	char *img;
	ssize_t n;
	int fd, rc;

	if (end <= start || len > (1u << 20) || start > INT64_MAX)
		return -EINVAL;
	fd = openat(p->dirfd, "mem", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	img = malloc(len);
	if (!img) {
		close(fd);
		return -ENOMEM;
	}
	n = pread(fd, img, len, (off_t)start);
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc == 0 && (size_t)n != len)
		rc = -EIO;
	if (rc == 0)
		rc = pd_mem_build_id(img, len, id, idmax, idlen);
	free(img);
	return rc;
}

/* ---- modules from maps ----------------------------------------------------- */

/* One candidate module while the maps are grouped. */
struct group {
	const struct pd_map *first; /* lowest mapping; names the map_files entry */
	uint64_t dev, inode, end;
	bool has_offset0, exec, vdso;
};

static bool is_exec(const struct pd_map *m)
{
	return m->perms[2] == 'x';
}

/* The group a file mapping belongs to: the latest one of the same file,
 * unless both start at file offset 0, which means the object was loaded a
 * second time (dlmopen) and is a module of its own. */
static struct group *find_group(struct group *g, size_t n, uint64_t dev, const struct pd_map *m)
{
	for (size_t i = n; i-- > 0;) {
		if (g[i].vdso || g[i].dev != dev || g[i].inode != m->inode)
			continue;
		if (m->offset == 0 && g[i].has_offset0)
			return NULL;
		return &g[i];
	}
	return NULL;
}

static size_t group_maps(const struct pd_maps *maps, struct group *g)
{
	size_t n = 0;

	for (size_t i = 0; i < maps->n; i++) {
		const struct pd_map *m = &maps->v[i];
		uint64_t dev = makedev(m->dev_major, m->dev_minor);
		struct group *cur;

		if (!m->path)
			continue;
		if (m->path[0] == '[') {
			if (strcmp(m->path, "[vdso]"))
				continue; /* [heap], [stack], [anon:..], [vsyscall] */
			g[n++] = (struct group){
				.first = m, .end = m->end, .exec = true, .vdso = true};
			continue;
		}
		cur = find_group(g, n, dev, m);
		if (!cur) {
			cur = &g[n++];
			*cur = (struct group){.first = m, .dev = dev, .inode = m->inode};
		}
		if (m->end > cur->end)
			cur->end = m->end;
		cur->has_offset0 |= m->offset == 0;
		cur->exec |= is_exec(m);
	}
	return n;
}

/* The main executable counts even without an executable mapping (a binary
 * loaded by an explicit ld.so run maps the same way as any DSO, but one
 * never knows); compare paths with /proc/PID/exe. */
static bool is_main_exe(struct pd_proc *p, struct strbuf *exe, bool *loaded, const char *path)
{
	static const char del[] = " (deleted)";

	if (!*loaded) {
		*loaded = true;
		if (pd_proc_exe(p, exe) < 0)
			strbuf_reset(exe);
		if (exe->len > strlen(del) && !strcmp(exe->buf + exe->len - strlen(del), del))
			strbuf_setlen(exe, exe->len - strlen(del));
	}
	return exe->len && !strcmp(exe->buf, path);
}

static int cmp_module(const void *a, const void *b)
{
	const struct pd_module *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return (x->base > y->base) - (x->base < y->base);
}

static int fill_module(struct pd_module *mod, const struct group *g)
{
	const char *slash;

	memset(mod, 0, sizeof(*mod));
	mod->path = strdup(g->first->path);
	if (!mod->path)
		return -ENOMEM;
	slash = strrchr(mod->path, '/');
	mod->name = slash && !g->vdso ? slash + 1 : mod->path;
	mod->base = g->first->start;
	mod->size = g->end - g->first->start;
	mod->dev = g->dev;
	mod->inode = g->inode;
	mod->deleted = g->first->deleted;
	return 0;
}

static void module_build_id(struct pd_proc *p, const struct group *g, struct pd_module *mod)
{
	int rc;

	if (g->vdso) {
		rc = vdso_build_id(p, g->first->start, g->end, mod->build_id, sizeof(mod->build_id),
				   &mod->build_id_len);
	} else {
		rc = file_build_id(p, g->first, mod->build_id, sizeof(mod->build_id),
				   &mod->build_id_len);
	}
	if (rc < 0)
		mod->build_id_len = 0; /* unknown; the module is still listed */
}

int pd_proc_modules(struct pd_proc *p, const struct pd_maps *maps, bool with_build_ids,
		    struct pd_modules *out)
{
	struct pd_maps own = PD_MAPS_INIT;
	struct strbuf exe = STRBUF_INIT;
	struct group *g = NULL;
	bool exe_loaded = false;
	size_t ng;
	int rc;

	out->n = 0;
	out->v = NULL;
	if (!maps) {
		rc = pd_proc_maps(p, &own);
		if (rc < 0)
			return rc;
		maps = &own;
	}
	rc = -ENOMEM;
	g = malloc((maps->n ? maps->n : 1) * sizeof(*g));
	if (!g)
		goto out;
	ng = group_maps(maps, g);
	out->v = calloc(ng ? ng : 1, sizeof(*out->v));
	if (!out->v)
		goto out;
	for (size_t i = 0; i < ng; i++) {
		if (!g[i].exec && !is_main_exe(p, &exe, &exe_loaded, g[i].first->path))
			continue;
		if (fill_module(&out->v[out->n], &g[i]) < 0)
			goto out;
		if (with_build_ids)
			module_build_id(p, &g[i], &out->v[out->n]);
		out->n++;
	}
	if (out->n > 1) /* (a kernel thread has none: v is NULL) */
		qsort(out->v, out->n, sizeof(*out->v), cmp_module);
	rc = 0;
out:
	if (rc < 0)
		pd_modules_release(out);
	free(g);
	strbuf_release(&exe);
	pd_maps_release(&own);
	return rc;
}

void pd_modules_release(struct pd_modules *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->n = 0;
	m->v = NULL;
}
