#include "config.h"

#include "lib/bundle.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

#include "common/numparse.h"
#include "common/jsonstr.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "lib/coreread.h"
#include "lib/dumprun.h"
#include "lib/modules.h"
#include "lib/ownerfile.h"
#include "lib/proc.h"
#include "lib/pdeflate.h"
#include "lib/zipfd.h"

#define SYSROOT	      "sysroot"
#define DEBUG_DIR     "usr/lib/debug"
#define SCRIPT_NAME   "open-core.gdb"
#define MANIFEST_NAME "manifest.json"
#define README_NAME   "README.txt"

/* Deflate levels, measured on gcores of tests/targets (docs/DUMPS.md): a
 * core is mostly zeros, code and repeated structures, and level 1 gets it
 * within a few percent of level 6 at a fraction of the time. */
#define CORE_LEVEL 1
#define FILE_LEVEL 6

/* Binaries are held open from their check to the zip's end (so the entry
 * is the file that was checked); past this many, reopened by name. */
#define HELD_FDS_MAX 256
#define IMAGE_HEAD   (64u << 10) /* bytes of a module's first mapping read for its notes */
#define LINK_MAP_MAX 100000
#define NAME_MAX_LEN 4096

static const char *const dac_names[] = {"libmscordaccore.so", "libmscordbi.so"};

/* One file-backed ELF object of the target, from the core's NT_FILE. */
struct bmod {
	uint64_t base, end; /* span of its mappings */
	uint64_t first_end; /* end of the mapping at file offset 0 (map_files name) */
	char *path;	    /* absolute, " (deleted)" stripped */
	bool deleted, exec, main;
	char *lm_name;	/* link_map name when it differs from path */
	char *store[2]; /* entry names: path, link_map name (NULL: none) */
	unsigned char core_id[PD_BUILD_ID_MAX];
	size_t core_id_len;
	unsigned char file_id[PD_BUILD_ID_MAX];
	size_t file_id_len;
	bool binary, debug;
	char *debug_entry;
	char *reason, *debug_reason; /* why something is missing (owned) */
	json_t *dac;		     /* for libcoreclr.so: [{path, included}] */
};

/* How a lazily reopened file is opened again (lib/zipfd.h): relative to
 * the /proc/PID dirfd (map_files), or resolved inside a root as the
 * target's owner (owner non-NULL) or as the mapped inode (owner NULL). */
struct opener {
	int dirfd, rootfd;
	const struct pd_owner *owner;
};

struct ctx {
	const struct pd_bundle_opts *o;
	struct pd_proc proc;
	struct pd_owner owner; /* whose permissions the files must pass */
	int rootfd, hostfd;    /* the target's root and ours (O_PATH), or -1 */
	struct opener by_proc, mapped, as_owner, host_as_owner;
	struct pd_core core;
	struct pd_maps maps; /* live, for inode checks */
	int memfd;	     /* /proc/PID/mem, for what the core lacks; -1 */
	zip_t *za;
	struct pd_zfile *core_file; /* while add_core adds it */
	struct pd_zsink sink;
	time_t now;
	struct bmod *m;
	size_t nm;
	unsigned held_fds;
	char *thread_db; /* entry name of the bundled libthread_db.so.1, or NULL */
	struct pd_bundle_result *res;
	char *err;
	size_t errlen;
	bool cancelled; /* o->progress asked to stop */
	uint64_t read_total, read_done, read_next; /* the entries' files' bytes */
};

static int seterr(struct ctx *x, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int seterr(struct ctx *x, int rc, const char *fmt, ...)
{
	va_list ap;

	if (x->err && x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err, x->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/* ---- entry names ------------------------------------------------------------ */

/* "sysroot" + an absolute path, with empty components dropped; NULL when the
 * path is not absolute or has a "." or ".." component (an entry name must
 * never climb out of the folder it is extracted to). */
static char *entry_name(const char *abs)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = abs;

	if (!abs || abs[0] != '/')
		return NULL;
	if (strbuf_addstr(&sb, SYSROOT) < 0)
		return NULL;
	while (*p) {
		const char *e;
		size_t n;

		while (*p == '/')
			p++;
		e = strchrnul(p, '/');
		n = (size_t)(e - p);
		if (!n)
			break;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			strbuf_release(&sb);
			return NULL;
		}
		if (strbuf_addch(&sb, '/') < 0 || strbuf_add(&sb, p, n) < 0) {
			strbuf_release(&sb);
			return NULL;
		}
		p = e;
	}
	if (sb.len == strlen(SYSROOT)) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb, NULL);
}

/* The entry name for a link_map name, which is the path as the program
 * passed it to dlopen() and may hold "." and ".." (ld.so does not clean
 * it). gdb opens sysroot + that name, and the OS resolves "d/.." only when
 * d exists: the name is cleaned lexically and every directory a ".." steps
 * out of gets a directory entry, so the same lookup works in the extracted
 * folder. NULL when the name is not absolute (or without memory). */
static char *link_map_entry(zip_t *za, const char *abs)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = abs;
	size_t root = strlen(SYSROOT);

	if (!abs || abs[0] != '/' || strbuf_addstr(&sb, SYSROOT) < 0)
		return NULL;
	while (*p) {
		const char *e;
		size_t n;

		while (*p == '/')
			p++;
		e = strchrnul(p, '/');
		n = (size_t)(e - p);
		if (!n)
			break;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (sb.len > root) {
				/* "sysroot/.../d/": must exist for "d/.." to resolve */
				if (strbuf_addch(&sb, '/') < 0)
					goto fail;
				if (zip_name_locate(za, sb.buf, 0) < 0 &&
				    zip_dir_add(za, sb.buf, ZIP_FL_ENC_GUESS) < 0)
					goto fail;
				strbuf_setlen(&sb, sb.len - 1);
				strbuf_setlen(&sb, (size_t)(strrchr(sb.buf, '/') - sb.buf));
			}
		} else if (!(n == 1 && p[0] == '.')) {
			if (strbuf_addch(&sb, '/') < 0 || strbuf_add(&sb, p, n) < 0)
				goto fail;
		}
		p = e;
	}
	if (sb.len > root)
		return strbuf_detach(&sb, NULL);
fail:
	strbuf_release(&sb);
	return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* ---- zip entries ---------------------------------------------------------- */

static int on_read(void *arg, uint64_t n);

/* Adds file f under name (a reference is taken). An existing name is kept:
 * two mappings of one path are one entry. 1 added, 0 already there, <0. */
static int add_file(struct ctx *x, const char *name, struct pd_zfile *f, int level)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_int64_t idx;

	if (zip_name_locate(x->za, name, 0) >= 0)
		return 0;
	zip_error_init(&ze);
	/* A file of two chunks or more (the core always) is deflated here, on
	 * every core; libzip copies the stream. */
	if (level && (f == x->core_file || pd_zfile_size(f) >= 2 * PD_PDEFLATE_CHUNK))
		src = pd_zfile_deflated_source(f, level, f == x->core_file && x->o->consume_core,
					       &ze);
	else
		src = pd_zfile_source(f, &ze);
	zip_error_fini(&ze);
	if (!src)
		return -ENOMEM;
	if (x->o->progress)
		x->read_total += pd_zfile_watch(f, on_read, x);
	idx = zip_file_add(x->za, name, src, ZIP_FL_ENC_GUESS);
	if (idx < 0) {
		zip_source_free(src);
		return seterr(x, -ENOMEM, "zip: cannot add %s: %s", name, zip_strerror(x->za));
	}
	zip_set_file_compression(x->za, (zip_uint64_t)idx, level ? ZIP_CM_DEFLATE : ZIP_CM_STORE,
				 (zip_uint32_t)level);
	zip_file_set_mtime(x->za, (zip_uint64_t)idx, x->now, 0);
	return 1;
}

/* Adds len bytes of data (malloc'ed; owned by the zip from now on, freed on
 * failure too). */
static int add_buffer(struct ctx *x, const char *name, char *data, size_t len)
{
	zip_error_t ze;
	zip_source_t *src;
	zip_int64_t idx;

	zip_error_init(&ze);
	src = zip_source_buffer_create(data, len, 1, &ze);
	zip_error_fini(&ze);
	if (!src) {
		free(data);
		return -ENOMEM;
	}
	idx = zip_file_add(x->za, name, src, ZIP_FL_ENC_UTF_8);
	if (idx < 0) {
		zip_source_free(src);
		return seterr(x, -ENOMEM, "zip: cannot add %s: %s", name, zip_strerror(x->za));
	}
	zip_set_file_compression(x->za, (zip_uint64_t)idx, ZIP_CM_DEFLATE, FILE_LEVEL);
	zip_file_set_mtime(x->za, (zip_uint64_t)idx, x->now, 0);
	return 0;
}

/* ---- modules from the core -------------------------------------------------- */

static const struct pd_map *live_map_at(const struct pd_maps *maps, uint64_t start)
{
	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].start == start)
			return &maps->v[i];
	return NULL;
}

/* Is the mapping at start executable? The core's PT_LOAD says so (ours has
 * one per mapping); gdb's gcore leaves unwritten file mappings out
 * altogether, then the live maps tell, when the same mapping is still
 * there. */
static bool mapping_exec(struct ctx *x, uint64_t start, uint64_t end)
{
	const struct pd_core_load *l = pd_core_load_at(&x->core, start);
	const struct pd_map *m;

	if (l && l->vaddr == start)
		return l->flags & PF_X;
	m = live_map_at(&x->maps, start);
	return m && m->end == end && m->perms[2] == 'x';
}

/* An executable or shared object by its ELF header (in the core, else in
 * the mapped file): for mappings whose permissions nobody knows. */
static bool looks_like_object(struct ctx *x, const struct bmod *b)
{
	Elf64_Ehdr eh;
	char name[64];
	int fd;
	bool ok;

	if (pd_core_read(&x->core, b->base, &eh, sizeof(eh)) < 0) {
		snprintf(name, sizeof(name), "map_files/%" PRIx64 "-%" PRIx64, b->base,
			 b->first_end);
		fd = openat(x->proc.dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return false;
		ok = pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh);
		close(fd);
		if (!ok)
			return false;
	}
	return !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
	       (eh.e_type == ET_DYN || eh.e_type == ET_EXEC);
}

static struct bmod *find_module(struct ctx *x, const char *path)
{
	for (size_t i = x->nm; i-- > 0;)
		if (!strcmp(x->m[i].path, path))
			return &x->m[i];
	return NULL;
}

/* Groups the file mappings (NT_FILE, or the live maps when the core has no
 * NT_FILE) into objects: a mapping at file offset 0 starts one, the others
 * join the latest object of the same path. */
static int collect_modules(struct ctx *x)
{
	static const char del[] = " (deleted)";
	const struct pd_core *c = &x->core;
	size_t n = c->nfile ? c->nfile : x->maps.n;
	uint64_t phdr = 0;

	pd_core_auxv(c, AT_PHDR, &phdr);
	x->m = calloc(n ? n : 1, sizeof(*x->m));
	if (!x->m)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		uint64_t start, end, pgoff;
		const char *raw;
		bool exec, deleted = false;
		struct bmod *b;
		char *path;

		if (c->nfile) {
			start = c->file[i].start;
			end = c->file[i].end;
			pgoff = c->file[i].pgoff;
			raw = c->file[i].path;
			exec = mapping_exec(x, start, end);
		} else {
			const struct pd_map *mp = &x->maps.v[i];

			if (!mp->path || mp->path[0] != '/')
				continue;
			start = mp->start;
			end = mp->end;
			pgoff = mp->offset;
			raw = mp->path;
			exec = mp->perms[2] == 'x';
			deleted = mp->deleted;
		}
		if (raw[0] != '/')
			continue;
		path = strdup(raw);
		if (!path)
			return -ENOMEM;
		if (ends_with(path, del)) {
			path[strlen(path) - strlen(del)] = '\0';
			deleted = true;
		}
		b = pgoff ? find_module(x, path) : NULL;
		if (!b) {
			b = &x->m[x->nm++];
			b->path = path;
			b->base = start;
			b->first_end = end;
			b->end = end;
			b->deleted = deleted;
		} else {
			free(path);
			if (end > b->end)
				b->end = end;
		}
		b->exec |= exec;
		if (phdr >= start && phdr < end)
			b->main = true;
	}
	for (size_t i = 0; i < x->nm; i++) {
		struct bmod *b = &x->m[i];

		if (!b->exec && !b->main && looks_like_object(x, b))
			b->exec = true;
	}
	return 0;
}

/* ---- target memory: the core, else the live process --------------------------- */

static int mem_read(struct ctx *x, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	if (pd_core_read(&x->core, addr, buf, len) == 0)
		return 0;
	if (x->memfd < 0 || addr > INT64_MAX)
		return -EFAULT;
	n = pread(x->memfd, buf, len, (off_t)addr);
	return n == (ssize_t)len ? 0 : -EFAULT;
}

static char *mem_string(struct ctx *x, uint64_t addr)
{
	struct strbuf sb = STRBUF_INIT;
	char chunk[64];

	while (sb.len < NAME_MAX_LEN) {
		size_t want = sizeof(chunk) - (addr % sizeof(chunk)); /* stay within pages */
		char *nul;

		if (mem_read(x, addr, chunk, want) < 0)
			break;
		nul = memchr(chunk, '\0', want);
		if (strbuf_add(&sb, chunk, nul ? (size_t)(nul - chunk) : want) < 0)
			break;
		if (nul)
			return strbuf_detach(&sb, NULL);
		addr += want;
	}
	strbuf_release(&sb);
	return NULL;
}

/* The address of r_debug: AT_PHDR -> the executable's PT_DYNAMIC -> DT_DEBUG. */
static uint64_t find_r_debug(struct ctx *x)
{
	uint64_t phdr = 0, phnum = 0, bias = 0, dyn = 0, dynsz = 0;
	bool have_bias = false;
	Elf64_Phdr ph[64];

	if (pd_core_auxv(&x->core, AT_PHDR, &phdr) < 0 ||
	    pd_core_auxv(&x->core, AT_PHNUM, &phnum) < 0 || !phnum || phnum > 64 ||
	    mem_read(x, phdr, ph, phnum * sizeof(ph[0])) < 0)
		return 0;
	for (size_t i = 0; i < phnum; i++) {
		if (ph[i].p_type == PT_PHDR) {
			bias = phdr - ph[i].p_vaddr;
			have_bias = true;
		}
	}
	if (!have_bias) {
		for (size_t i = 0; i < x->nm; i++)
			if (x->m[i].main)
				bias = x->m[i].base; /* ET_DYN without PT_PHDR; ET_EXEC has it */
	}
	for (size_t i = 0; i < phnum; i++) {
		if (ph[i].p_type == PT_DYNAMIC) {
			dyn = bias + ph[i].p_vaddr;
			dynsz = ph[i].p_memsz;
		}
	}
	for (uint64_t off = 0; dyn && off + sizeof(Elf64_Dyn) <= dynsz && off < (64u << 10);
	     off += sizeof(Elf64_Dyn)) {
		Elf64_Dyn d;

		if (mem_read(x, dyn + off, &d, sizeof(d)) < 0 || d.d_tag == DT_NULL)
			break;
		if (d.d_tag == DT_DEBUG)
			return d.d_un.d_ptr;
	}
	return 0;
}

/* Walks r_debug's link_map list and gives each module whose dynamic section
 * holds an entry's l_ld the entry's name, when it differs from the mapped
 * path: gdb looks libraries up by that name under the sysroot. */
static void link_map_names(struct ctx *x)
{
	uint64_t rd = find_r_debug(x), lm, hdr[2];

	if (!rd || mem_read(x, rd, hdr, sizeof(hdr)) < 0)
		return;
	lm = hdr[1]; /* r_map (after int r_version, padded) */
	for (unsigned n = 0; lm && n < LINK_MAP_MAX; n++) {
		uint64_t e[5]; /* l_addr, l_name, l_ld, l_next, l_prev */
		char *name;

		if (mem_read(x, lm, e, sizeof(e)) < 0)
			break;
		name = e[1] ? mem_string(x, e[1]) : NULL;
		for (size_t i = 0; name && name[0] == '/' && i < x->nm; i++) {
			struct bmod *b = &x->m[i];

			if (e[2] < b->base || e[2] >= b->end || b->lm_name)
				continue;
			if (strcmp(name, b->path)) {
				b->lm_name = name;
				name = NULL;
			}
			break;
		}
		free(name);
		lm = e[3];
	}
}

/* ---- one module -------------------------------------------------------------- */

/* The build-id in the module's first page(s) as the core holds them. */
static void core_build_id(struct ctx *x, struct bmod *b)
{
	const struct pd_core_load *l = pd_core_load_at(&x->core, b->base);
	uint64_t avail;
	char *img;

	if (!l || b->base - l->vaddr >= l->filesz)
		return;
	avail = l->filesz - (b->base - l->vaddr);
	if (avail > IMAGE_HEAD)
		avail = IMAGE_HEAD;
	if (avail > b->first_end - b->base)
		avail = b->first_end - b->base;
	img = malloc(avail ? avail : 1);
	if (!img)
		return;
	if (pd_core_read(&x->core, b->base, img, avail) == 0 &&
	    pd_mem_build_id(img, avail, b->core_id, sizeof(b->core_id), &b->core_id_len) < 0)
		b->core_id_len = 0;
	free(img);
}

static int reopen(void *arg, const char *name)
{
	const struct opener *op = arg;
	int fd;

	if (op->rootfd >= 0)
		return pd_owner_open(op->owner, op->rootfd, name, NULL);
	fd = openat(op->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* Opens the mapped file: map_files (the mapped inode itself), else the path
 * in the target's root when the inode there is still the mapped one. name
 * gets the way that worked (relative to the /proc/PID dirfd). */
static int open_binary(struct ctx *x, struct bmod *b, struct strbuf *name, struct stat *st)
{
	const struct pd_map *live = live_map_at(&x->maps, b->base);
	int fd;

	strbuf_reset(name);
	if (strbuf_addf(name, "map_files/%" PRIx64 "-%" PRIx64, b->base, b->first_end) < 0)
		return -ENOMEM;
	fd = openat(x->proc.dirfd, name->buf, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0 && fstat(fd, st) == 0 && S_ISREG(st->st_mode))
		return fd;
	if (fd >= 0)
		close(fd);
	if (b->deleted || !live || live->inode == 0 || x->rootfd < 0)
		return -ENOENT;
	/* The path in the target's root, resolved there, when it is still the
	 * mapped inode: the process has that file mapped, so no permission
	 * check (an execute-only binary is bundled as map_files would). */
	strbuf_reset(name);
	if (strbuf_addstr(name, b->path) < 0)
		return -ENOMEM;
	fd = pd_owner_open(NULL, x->rootfd, name->buf, st);
	if (fd >= 0 && st->st_ino == live->inode &&
	    (major(st->st_dev) != live->dev_major || minor(st->st_dev) != live->dev_minor)) {
		/* Same inode number, another device: overlayfs reports its own
		 * device while maps shows the layer's. Not provably the mapped
		 * file, so only if the owner could read it. */
		close(fd);
		fd = pd_owner_open(&x->owner, x->rootfd, name->buf, st);
		if (fd >= 0 && st->st_ino == live->inode)
			return fd;
	} else if (fd >= 0 && st->st_ino == live->inode) {
		return fd;
	}
	if (fd >= 0)
		close(fd);
	return fd < 0 ? fd : -ESTALE;
}

static int add_under_names(struct ctx *x, struct bmod *b, struct pd_zfile *f, int *added)
{
	for (int k = 0; k < 2; k++) {
		int rc;

		if (!b->store[k])
			continue;
		rc = add_file(x, b->store[k], f, FILE_LEVEL);
		if (rc < 0)
			return rc;
		*added += rc;
	}
	return 0;
}

/* The .gnu_debuglink file name of the ELF file at fd, or NULL. */
static char *debuglink_of(int fd)
{
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	char *out = NULL;
	Elf *elf;

	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf)
		return NULL;
	if (elf_kind(elf) == ELF_K_ELF && elf_getshdrstrndx(elf, &shstrndx) == 0) {
		while ((scn = elf_nextscn(elf, scn))) {
			GElf_Shdr sh;
			const char *nm;
			Elf_Data *d;

			if (!gelf_getshdr(scn, &sh))
				break;
			nm = elf_strptr(elf, shstrndx, sh.sh_name);
			if (!nm || strcmp(nm, ".gnu_debuglink"))
				continue;
			d = elf_getdata(scn, NULL);
			if (d && d->d_buf && d->d_size && memchr(d->d_buf, '\0', d->d_size) &&
			    !strchr(d->d_buf, '/') && ((char *)d->d_buf)[0])
				out = strdup(d->d_buf);
			break;
		}
	}
	elf_end(elf);
	return out;
}

/* The file at abs as the target's owner could open it (lib/ownerfile.h),
 * inside the root of op: held open while fds last, else reopened the same
 * way when the zip is written. *st gets its fstat. NULL when the owner
 * could not open it (or without memory); *fdout (may be NULL) gets a dup
 * of the fd to read from now, which the caller closes. */
static struct pd_zfile *open_as_owner(struct ctx *x, struct opener *op, const char *abs,
				      struct stat *st, int *fdout)
{
	struct pd_zfile *f;
	int fd;

	if (op->rootfd < 0)
		return NULL;
	fd = pd_owner_open(op->owner, op->rootfd, abs, st);
	if (fd < 0)
		return NULL;
	if (fdout) {
		*fdout = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (*fdout < 0) {
			close(fd);
			return NULL;
		}
	}
	if (x->held_fds < HELD_FDS_MAX) {
		x->held_fds++;
		f = pd_zfile_from_fd(fd, (uint64_t)st->st_size, st->st_mtime);
	} else {
		close(fd);
		f = pd_zfile_lazy(reopen, op, abs, st->st_dev, st->st_ino, (uint64_t)st->st_size,
				  st->st_mtime);
	}
	if (!f && fdout) {
		close(*fdout);
		*fdout = -1;
	}
	return f;
}

/* Opens a candidate debug file (abs, inside the root of op) as the
 * target's owner could and checks it is the one for b: same build-id, or,
 * for a module without one, an ELF file other than the binary (gdb checks
 * the debuglink CRC itself). */
static struct pd_zfile *try_debug(struct ctx *x, struct bmod *b, struct opener *op, const char *abs,
				  const struct stat *bin)
{
	unsigned char id[PD_BUILD_ID_MAX];
	size_t idlen = 0;
	struct pd_zfile *f;
	struct stat st;
	int fd = -1, rc;

	f = open_as_owner(x, op, abs, &st, &fd);
	if (!f)
		return NULL;
	if (st.st_dev == bin->st_dev && st.st_ino == bin->st_ino) {
		close(fd);
		pd_zfile_unref(f);
		return NULL;
	}
	rc = pd_elf_build_id(fd, id, sizeof(id), &idlen);
	close(fd);
	if ((b->file_id_len &&
	     (rc < 0 || idlen != b->file_id_len || memcmp(id, b->file_id, idlen))) ||
	    (!b->file_id_len && rc == -EINVAL)) {
		pd_zfile_unref(f);
		return NULL;
	}
	return f;
}

/* Separate debug file: by build-id, then by .gnu_debuglink; first in the
 * target's root, then on this machine (a build-id match is as good). */
static int add_debug(struct ctx *x, struct bmod *b, int binfd, const struct stat *bin)
{
	struct strbuf rel = STRBUF_INIT;
	struct pd_zfile *f = NULL;
	char idhex[2 * PD_BUILD_ID_MAX + 1];
	char *link = NULL;
	int rc = 0;

	if (b->file_id_len >= 2) {
		hex_encode(b->file_id, b->file_id_len, idhex);
		if (strbuf_addf(&rel, "/" DEBUG_DIR "/.build-id/%.2s/%s.debug", idhex, idhex + 2) <
		    0) {
			rc = -ENOMEM;
			goto out;
		}
		f = try_debug(x, b, &x->as_owner, rel.buf, bin);
		if (!f)
			f = try_debug(x, b, &x->host_as_owner, rel.buf, bin);
		if (f) {
			b->debug_entry = entry_name(rel.buf);
			if (!b->debug_entry) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	if (!f && (link = debuglink_of(binfd))) {
		const char *slash = strrchr(b->path, '/');
		int dlen = (int)(slash - b->path);
		for (int i = 0; !f && i < 3; i++) {
			int r;

			strbuf_reset(&rel);
			/* gdb's order: beside the binary, its .debug/, the global dir */
			if (i == 0)
				r = strbuf_addf(&rel, "%.*s/%s", dlen, b->path, link);
			else if (i == 1)
				r = strbuf_addf(&rel, "%.*s/.debug/%s", dlen, b->path, link);
			else
				r = strbuf_addf(&rel, "/" DEBUG_DIR "%.*s/%s", dlen, b->path, link);
			if (r < 0) {
				rc = -ENOMEM;
				goto out;
			}
			f = try_debug(x, b, &x->as_owner, rel.buf, bin);
			if (!f)
				f = try_debug(x, b, &x->host_as_owner, rel.buf, bin);
		}
		if (f) {
			/* gdb tries <dir of the binary>/.debug/<link>, for whichever
			 * name it opened the binary by. */
			strbuf_reset(&rel);
			if (strbuf_addf(&rel, "%.*s/.debug/%s", dlen, b->path, link) < 0) {
				rc = -ENOMEM;
				goto out;
			}
			b->debug_entry = entry_name(rel.buf);
			if (b->debug_entry && b->lm_name && b->store[1]) {
				const char *s2 = strrchr(b->lm_name, '/');
				char *alias;

				strbuf_reset(&rel);
				if (strbuf_addf(&rel, "%.*s/.debug/%s", (int)(s2 - b->lm_name),
						b->lm_name, link) < 0) {
					rc = -ENOMEM;
					goto out;
				}
				alias = entry_name(rel.buf);
				if (alias)
					rc = add_file(x, alias, f, FILE_LEVEL);
				free(alias);
				if (rc < 0)
					goto out;
			}
		}
	}
	if (!f) {
		b->debug_reason =
			strdup(b->file_id_len ? "no separate debug file with this build-id"
					      : "no build-id and no .gnu_debuglink file found");
		goto out;
	}
	if (!b->debug_entry) {
		b->debug_reason = strdup("debug file path is not usable as a zip entry name");
		goto out;
	}
	rc = add_file(x, b->debug_entry, f, FILE_LEVEL);
	if (rc >= 0) {
		b->debug = true;
		x->res->debug_files++;
		rc = 0;
	}
out:
	pd_zfile_unref(f);
	free(link);
	strbuf_release(&rel);
	return rc;
}

/* The .NET data access libraries sit beside libcoreclr.so; dotnet-dump and
 * lldb's SOS need them matching the runtime exactly. */
static int add_one_dac(struct ctx *x, struct bmod *b, const char *lib, json_t *o)
{
	struct strbuf rel = STRBUF_INIT;
	struct pd_zfile *f = NULL;
	const char *dirs[2] = {b->path, b->lm_name};
	const char *why = NULL;
	struct stat st;
	int rc = 0;

	if (strbuf_addf(&rel, "%.*s/%s", (int)(strrchr(b->path, '/') - b->path), b->path, lib) <
	    0) {
		rc = -ENOMEM;
		goto out;
	}
	json_object_set_new(o, "path", pd_json_cstr(rel.buf));
	f = open_as_owner(x, &x->as_owner, rel.buf, &st, NULL);
	if (!f) {
		why = "not found beside libcoreclr.so (or not readable by the process's owner)";
		goto out;
	}
	/* beside each name the runtime is stored under */
	for (int k = 0; k < 2 && rc >= 0; k++) {
		char *entry;

		if (!dirs[k] || !b->store[k])
			continue;
		strbuf_reset(&rel);
		if (strbuf_addf(&rel, "%.*s/%s", (int)(strrchr(dirs[k], '/') - dirs[k]), dirs[k],
				lib) < 0) {
			rc = -ENOMEM;
			break;
		}
		entry = entry_name(rel.buf);
		if (!entry) {
			why = "path is not usable as a zip entry name";
			continue;
		}
		rc = add_file(x, entry, f, FILE_LEVEL);
		free(entry);
	}
out:
	if (rc >= 0) {
		json_object_set_new(o, "included", json_boolean(f && !why));
		if (why)
			json_object_set_new(o, "reason", json_string(why));
	}
	pd_zfile_unref(f);
	strbuf_release(&rel);
	return rc < 0 ? rc : 0;
}

static int add_dac(struct ctx *x, struct bmod *b)
{
	b->dac = json_array();
	if (!b->dac)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(dac_names) / sizeof(dac_names[0]); i++) {
		json_t *o = json_object();
		int rc;

		if (!o || json_array_append_new(b->dac, o) < 0)
			return -ENOMEM;
		rc = add_one_dac(x, b, dac_names[i], o);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* libthread_db.so.1 of the target's glibc, from the directory of its libc:
 * gdb loads it to map threads to pthread_t and TLS, and the host's one
 * refuses a libc of another version. */
static int add_thread_db(struct ctx *x, struct bmod *b)
{
	static const char lib[] = "libthread_db.so.1";
	struct strbuf rel = STRBUF_INIT;
	struct pd_zfile *f = NULL;
	struct stat st;
	char *entry = NULL;
	int rc = 0;

	if (x->thread_db)
		return 0;
	if (strbuf_addf(&rel, "%.*s/%s", (int)(strrchr(b->path, '/') - b->path), b->path, lib) <
	    0) {
		rc = -ENOMEM;
		goto out;
	}
	if (!(entry = entry_name(rel.buf)))
		goto out;
	f = open_as_owner(x, &x->as_owner, rel.buf, &st, NULL);
	if (!f)
		goto out;
	rc = add_file(x, entry, f, FILE_LEVEL);
	if (rc >= 0) {
		x->thread_db = entry;
		entry = NULL;
		rc = 0;
	}
out:
	pd_zfile_unref(f);
	free(entry);
	strbuf_release(&rel);
	return rc;
}

static int add_module(struct ctx *x, struct bmod *b)
{
	struct strbuf name = STRBUF_INIT;
	char fhex[2 * PD_BUILD_ID_MAX + 1], chex[2 * PD_BUILD_ID_MAX + 1];
	struct pd_zfile *f = NULL;
	struct stat st;
	int fd, rc = 0, added = 0;

	core_build_id(x, b);
	b->store[0] = entry_name(b->path);
	if (b->lm_name)
		b->store[1] = link_map_entry(x->za, b->lm_name);
	if (b->store[1] && b->store[0] && !strcmp(b->store[0], b->store[1])) {
		free(b->store[1]); /* "/a/b/../b/lib.so" names the mapped path */
		b->store[1] = NULL;
	}
	if (!b->store[0]) {
		b->reason = strdup("path is not usable as a zip entry name");
		goto out;
	}
	fd = open_binary(x, b, &name, &st);
	if (fd < 0) {
		b->reason = xasprintf("cannot open the mapped file: %s", strerror(-fd));
		goto out;
	}
	rc = pd_elf_build_id(fd, b->file_id, sizeof(b->file_id), &b->file_id_len);
	if (rc == -EINVAL) {
		close(fd);
		b->reason = strdup("not an ELF file");
		rc = 0;
		goto out;
	}
	rc = 0;
	if (b->core_id_len &&
	    (b->file_id_len != b->core_id_len || memcmp(b->file_id, b->core_id, b->core_id_len))) {
		hex_encode(b->file_id, b->file_id_len, fhex);
		hex_encode(b->core_id, b->core_id_len, chex);
		close(fd);
		b->reason = xasprintf("build-id of the file (%s) differs from the core's (%s)",
				      b->file_id_len ? fhex : "none", chex);
		goto out;
	}
	if (!b->core_id_len)
		b->reason = strdup(b->file_id_len ? "build-id not in the core: not verified"
						  : "no build-id: not verified");
	rc = add_debug(x, b, fd, &st);
	if (rc < 0) {
		close(fd);
		goto out;
	}
	if (x->held_fds < HELD_FDS_MAX) {
		f = pd_zfile_from_fd(fd, (uint64_t)st.st_size, st.st_mtime);
		x->held_fds++;
	} else {
		close(fd);
		f = pd_zfile_lazy(
			reopen, strncmp(name.buf, "map_files/", 10) ? &x->mapped : &x->by_proc,
			name.buf, st.st_dev, st.st_ino, (uint64_t)st.st_size, st.st_mtime);
	}
	if (!f) {
		rc = -ENOMEM;
		goto out;
	}
	rc = add_under_names(x, b, f, &added);
	if (rc < 0)
		goto out;
	b->binary = true;
	x->res->binaries++;
	if (!strcmp(base_name(b->path), "libcoreclr.so"))
		rc = add_dac(x, b);
	else if (!strncmp(base_name(b->path), "libc.so.", 8) ||
		 !strncmp(base_name(b->path), "libpthread.so.", 14))
		rc = add_thread_db(x, b);
out:
	pd_zfile_unref(f);
	strbuf_release(&name);
	return rc;
}

/* ---- manifest, script, readme ------------------------------------------------- */

static void utc(char *out, size_t len, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *module_json(const struct bmod *b)
{
	char idhex[2 * PD_BUILD_ID_MAX + 1];
	json_t *o = json_object(), *names = json_array();
	const unsigned char *id = b->core_id_len ? b->core_id : b->file_id;
	size_t idlen = b->core_id_len ? b->core_id_len : b->file_id_len;

	if (!o || !names) {
		json_decref(o);
		json_decref(names);
		return NULL;
	}
	hex_encode(id, idlen, idhex);
	json_object_set_new(o, "path", pd_json_cstr(b->path));
	if (b->lm_name)
		json_object_set_new(o, "link_map_name", pd_json_cstr(b->lm_name));
	json_object_set_new(o, "base", json_integer((json_int_t)b->base));
	json_object_set_new(o, "size", json_integer((json_int_t)(b->end - b->base)));
	if (b->main)
		json_object_set_new(o, "main_executable", json_true());
	if (b->deleted)
		json_object_set_new(o, "deleted", json_true());
	json_object_set_new(o, "build_id", idlen ? json_string(idhex) : json_null());
	json_object_set_new(o, "build_id_in_core", json_boolean(b->core_id_len != 0));
	json_object_set_new(o, "binary_included", json_boolean(b->binary));
	for (int k = 0; b->binary && k < 2; k++)
		if (b->store[k])
			json_array_append_new(names, pd_json_cstr(b->store[k]));
	json_object_set_new(o, "entries", names);
	json_object_set_new(o, "debug_included", json_boolean(b->debug));
	if (b->debug)
		json_object_set_new(o, "debug_entry", pd_json_cstr(b->debug_entry));
	if (b->reason)
		json_object_set_new(o, "reason", json_string(b->reason));
	if (!b->debug && b->debug_reason)
		json_object_set_new(o, "debug_reason", json_string(b->debug_reason));
	if (b->dac)
		json_object_set(o, "dac", b->dac);
	return o;
}

static int add_manifest(struct ctx *x)
{
	struct strbuf exe = STRBUF_INIT;
	struct pd_strv argv = PD_STRV_INIT;
	json_t *root = json_object(), *proc = json_object(), *dump = json_object();
	json_t *mods = json_array(), *cmd = json_array();
	char when[32];
	char *text;

	if (!root || !proc || !dump || !mods || !cmd) {
		json_decref(root);
		json_decref(proc);
		json_decref(dump);
		json_decref(mods);
		json_decref(cmd);
		return -ENOMEM;
	}
	utc(when, sizeof(when), x->now);
	json_object_set_new(root, "format", json_string("procdiag-bundle"));
	json_object_set_new(root, "version", json_integer(1));
	json_object_set_new(root, "created", json_string(when));
	json_object_set_new(proc, "pid", json_integer(x->o->pid));
	json_object_set_new(proc, "name", pd_json_bytes(x->proc.stat.comm, x->proc.stat.comm_len));
	if (pd_proc_exe(&x->proc, &exe) == 0)
		json_object_set_new(proc, "exe", pd_json_bytes(exe.buf, exe.len));
	if (pd_proc_cmdline(&x->proc, &argv) == 0)
		for (size_t i = 0; i < argv.n; i++)
			json_array_append_new(cmd, pd_json_bytes(argv.v[i], argv.len[i]));
	json_object_set_new(proc, "cmdline", cmd);
	json_object_set_new(root, "process", proc);
	json_object_set_new(dump, "type", pd_json_cstr(x->o->dump_type ? x->o->dump_type : "unknown"));
	json_object_set_new(dump, "stopped_us", json_integer((json_int_t)x->o->stopped_us));
	if (x->o->figures) {
		const struct pd_dump_figures *f = x->o->figures;

		json_object_set_new(dump, "method", json_string(f->method));
		json_object_set_new(dump, "method_reason", pd_json_cstr(f->reason));
		json_object_set_new(dump, "freezing_us", json_integer((json_int_t)f->freezing_us));
		json_object_set_new(dump, "frozen_us", json_integer((json_int_t)f->frozen_us));
		json_object_set_new(dump, "copy_us", json_integer((json_int_t)f->copy_us));
		json_object_set_new(dump, "copied_bytes", json_integer((json_int_t)f->copied_bytes));
		json_object_set_new(dump, "extra_memory", json_integer((json_int_t)f->extra_memory));
		json_object_set_new(dump, "zero_bytes", json_integer((json_int_t)f->zero_bytes));
		json_object_set_new(dump, "zero_method", pd_json_cstr(f->zero_method));
	}
	json_object_set_new(dump, "core", pd_json_cstr(x->o->core_name));
	json_object_set_new(dump, "core_size", json_integer((json_int_t)x->core.size));
	json_object_set_new(root, "dump", dump);
	json_object_set_new(root, "sysroot", json_string(SYSROOT));
	json_object_set_new(root, "debug_file_directory", json_string(SYSROOT "/" DEBUG_DIR));
	json_object_set_new(root, "gdb_script", json_string(SCRIPT_NAME));
	json_object_set_new(root, "libthread_db", pd_json_cstr(x->thread_db));
	for (size_t i = 0; i < x->nm; i++) {
		json_t *m;

		if (!x->m[i].exec && !x->m[i].main)
			continue;
		m = module_json(&x->m[i]);

		if (m)
			json_array_append_new(mods, m);
	}
	json_object_set_new(root, "modules", mods);
	text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	strbuf_release(&exe);
	pd_strv_release(&argv);
	if (!text)
		return -ENOMEM;
	return add_buffer(x, MANIFEST_NAME, text, strlen(text));
}

/* A Python bytes literal of raw bytes (paths are bytes, not text). */
static int py_bytes(struct strbuf *sb, const char *s)
{
	int rc = strbuf_addstr(sb, "b\"");

	for (; rc == 0 && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			rc = strbuf_addch(sb, (char)c);
		else
			rc = strbuf_addf(sb, "\\x%02x", c);
	}
	return rc ? rc : strbuf_addch(sb, '"');
}

/* The script finds its own folder (gdb -x's argument, else the current
 * directory), so it works from anywhere the zip was extracted to. */
static const char script_body[] =
	"import os\n"
	"\n"
	"def _pd_folder():\n"
	"    try:\n"
	"        with open('/proc/self/cmdline', 'rb') as f:\n"
	"            argv = f.read().split(b'\\0')\n"
	"    except OSError:\n"
	"        argv = []\n"
	"    opts = (b'-x', b'--x', b'-command', b'--command')\n"
	"    for i, a in enumerate(argv):\n"
	"        p = None\n"
	"        if a in opts and i + 1 < len(argv):\n"
	"            p = argv[i + 1]\n"
	"        elif a.split(b'=', 1)[0] in opts and b'=' in a:\n"
	"            p = a.split(b'=', 1)[1]\n"
	"        if p and os.path.basename(p) == b'" SCRIPT_NAME "':\n"
	"            d = os.path.dirname(os.path.abspath(p))\n"
	"            if os.path.isfile(os.path.join(d, b'" MANIFEST_NAME "')):\n"
	"                return d\n"
	"    return os.getcwd().encode()\n"
	"\n"
	"def _pd_arg(p):\n"
	"    # gdb's file command splits its argument like a shell\n"
	"    return ''.join('\\\\' + c if c in ' \\t\\'\"\\\\' else c for c in p)\n"
	"\n"
	"_d = _pd_folder()\n"
	"if not os.path.isfile(os.path.join(_d, _pd_core)):\n"
	"    raise gdb.GdbError('open-core.gdb: run gdb in the folder the bundle was '\n"
	"                       'extracted to (no %s here)' % os.fsdecode(_pd_core))\n"
	"try:\n"
	"    gdb.execute('set debuginfod enabled off')\n"
	"except gdb.error:\n"
	"    pass\n"
	"gdb.execute('set sysroot ' + os.fsdecode(os.path.join(_d, b'" SYSROOT "')))\n"
	"gdb.execute('set debug-file-directory ' +\n"
	"            os.fsdecode(os.path.join(_d, b'" SYSROOT "/" DEBUG_DIR "')))\n"
	"if _pd_thread_db and os.path.isfile(os.path.join(_d, _pd_thread_db)):\n"
	"    # the dumped glibc's own libthread_db (the host's may be another version);\n"
	"    # gdb runs it, so it must be declared safe: this one file only\n"
	"    _t = os.fsdecode(os.path.join(_d, _pd_thread_db))\n"
	"    gdb.execute('set libthread-db-search-path ' + os.path.dirname(_t))\n"
	"    gdb.execute('add-auto-load-safe-path ' + _t)\n"
	"if _pd_exe and os.path.isfile(os.path.join(_d, _pd_exe)):\n"
	"    gdb.execute('file ' + _pd_arg(os.fsdecode(os.path.join(_d, _pd_exe))))\n"
	"gdb.execute('core-file ' + os.fsdecode(os.path.join(_d, _pd_core)))\n";

static int add_script(struct ctx *x)
{
	struct strbuf sb = STRBUF_INIT;
	const char *exe = NULL;
	int rc;

	for (size_t i = 0; i < x->nm; i++)
		if (x->m[i].main && x->m[i].binary)
			exe = x->m[i].store[0];
	rc = strbuf_addf(&sb,
			 "# Written by procdiag for process %d. Opens %s with this folder's\n"
			 "# " SYSROOT "/ as gdb's sysroot and " SYSROOT "/" DEBUG_DIR
			 " as its debug-file-directory,\n"
			 "# so gdb reads the binaries and debug files of the dumped machine only.\n"
			 "#\n"
			 "#   gdb -x " SCRIPT_NAME
			 "          (in the extracted folder, or give its path)\n"
			 "#   gdb -batch -x " SCRIPT_NAME " -ex 'thread apply all bt'\n"
			 "python\n",
			 x->o->pid, x->o->core_name);
	if (rc == 0)
		rc = strbuf_addstr(&sb, "_pd_core = ");
	if (rc == 0)
		rc = py_bytes(&sb, x->o->core_name);
	if (rc == 0)
		rc = strbuf_addstr(&sb, "\n_pd_exe = ");
	if (rc == 0)
		rc = exe ? py_bytes(&sb, exe) : strbuf_addstr(&sb, "None");
	if (rc == 0)
		rc = strbuf_addstr(&sb, "\n_pd_thread_db = ");
	if (rc == 0)
		rc = x->thread_db ? py_bytes(&sb, x->thread_db) : strbuf_addstr(&sb, "None");
	if (rc == 0)
		rc = strbuf_addf(&sb, "\n%send\n", script_body);
	if (rc < 0) {
		strbuf_release(&sb);
		return -ENOMEM;
	}
	return add_buffer(x, SCRIPT_NAME, strbuf_detach(&sb, NULL), sb.len);
}

static int add_readme(struct ctx *x)
{
	struct strbuf sb = STRBUF_INIT;
	char when[32];

	utc(when, sizeof(when), x->now);
	if (strbuf_addf(
		    &sb,
		    "procdiag bundle of process %d (%.*s), dump type %s, made %s.\n"
		    "\n"
		    "  %s              the ELF core\n"
		    "  " SYSROOT
		    "/             the process's executable and shared objects, under\n"
		    "                       their mapped paths and their dynamic-linker names,\n"
		    "                       and the separate debug files this machine had\n"
		    "                       (" SYSROOT "/" DEBUG_DIR "/.build-id/...)\n"
		    "  " MANIFEST_NAME
		    "       every module: path, build-id, what was included and\n"
		    "                       why something is missing\n"
		    "  " SCRIPT_NAME
		    "       opens the core in gdb with this folder as the sysroot\n"
		    "\n"
		    "Open it (any Linux machine with gdb, same architecture):\n"
		    "\n"
		    "  unzip bundle.zip -d bundle && cd bundle\n"
		    "  gdb -x " SCRIPT_NAME "\n"
		    "  (gdb) thread apply all bt\n"
		    "\n"
		    "The core holds the memory of the process: every secret it held (keys,\n"
		    "tokens, passwords, customer data). Treat this file accordingly.\n",
		    x->o->pid, (int)x->proc.stat.comm_len, x->proc.stat.comm,
		    x->o->dump_type ? x->o->dump_type : "unknown", when, x->o->core_name) < 0) {
		strbuf_release(&sb);
		return -ENOMEM;
	}
	return add_buffer(x, README_NAME, strbuf_detach(&sb, NULL), sb.len);
}

/* ---- the whole bundle ------------------------------------------------------- */

static bool core_name_ok(const char *s)
{
	return s && s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256 &&
	       strcmp(s, MANIFEST_NAME) && strcmp(s, SCRIPT_NAME) && strcmp(s, README_NAME) &&
	       strcmp(s, SYSROOT);
}

static int add_core(struct ctx *x)
{
	struct pd_zfile *f;
	struct stat st;
	int fd, rc;

	fd = fcntl(x->o->core_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	f = pd_zfile_from_fd(fd, (uint64_t)st.st_size, x->now);
	if (!f)
		return -ENOMEM;
	x->core_file = f;
	rc = add_file(x, x->o->core_name, f, CORE_LEVEL);
	x->core_file = NULL;
	pd_zfile_unref(f);
	return rc < 0 ? rc : 0;
}

static void release_modules(struct ctx *x)
{
	for (size_t i = 0; i < x->nm; i++) {
		struct bmod *b = &x->m[i];

		free(b->path);
		free(b->lm_name);
		free(b->store[0]);
		free(b->store[1]);
		free(b->debug_entry);
		free(b->reason);
		free(b->debug_reason);
		json_decref(b->dac);
	}
	free(x->m);
	free(x->thread_db);
}

/* An upper bound of the zip's size: every entry at its full size plus
 * deflate's worst case (stored blocks: 5 bytes per 16 KiB, zlib's
 * deflateBound), its local and central headers with zip64 and time
 * extras, and the end records. */
static uint64_t zip_bound(zip_t *za)
{
	zip_int64_t n = zip_get_num_entries(za, 0);
	uint64_t total = 22 + 56 + 20; /* end of central directory, zip64 ones */

	for (zip_int64_t i = 0; i < n; i++) {
		zip_stat_t zs;
		uint64_t size = 0, name = 0;

		zip_stat_init(&zs);
		if (zip_stat_index(za, (zip_uint64_t)i, 0, &zs) == 0) {
			if (zs.valid & ZIP_STAT_SIZE)
				size = zs.size;
			if (zs.valid & ZIP_STAT_NAME)
				name = strlen(zs.name);
		}
		total += size + (size >> 12) + (size >> 14) + 64;
		total += 2 * (name + 46 + 128);
	}
	return total;
}

/* The spool, from open_out when there is one: only now is its size known. */
static int open_out(struct ctx *x, int out_fd, uint64_t *bound)
{
	uint64_t limit = 0;
	int fd;

	*bound = zip_bound(x->za);
	if (!x->o->open_out)
		return out_fd;
	fd = x->o->open_out(x->o->out_arg, *bound, &limit);
	if (fd < 0)
		return seterr(x, fd, "no spool for a zip of up to %" PRIu64 " bytes", *bound);
	x->sink.fd = fd;
	x->sink.limit = limit;
	return fd;
}

/* Every read of an entry's file while zip_close writes the zip: the
 * caller's progress as the fraction of all the files' bytes read, at most
 * once a thousandth; its nonzero answer stops the zip there. */
static int on_read(void *arg, uint64_t n)
{
	struct ctx *x = arg;

	x->read_done += n;
	if (!x->cancelled && x->read_done >= x->read_next) {
		x->read_next = x->read_done + x->read_total / 1000 + 1;
		if (x->o->progress(x->o->progress_arg,
				   x->read_total ? (double)x->read_done / (double)x->read_total : 1.0))
			x->cancelled = true;
	}
	return x->cancelled;
}

/* What went wrong in zip_close: our sink's errno first (ENOSPC), else
 * libzip's system error, else a generic I/O error. */
static int close_error(struct ctx *x)
{
	zip_error_t *ze = zip_get_error(x->za);
	int sys = zip_error_code_system(ze);

	if (x->sink.err)
		return -x->sink.err;
	if (x->cancelled || zip_error_code_zip(ze) == ZIP_ER_CANCELLED)
		return -ECANCELED;
	if (zip_error_code_zip(ze) == ZIP_ER_MEMORY)
		return -ENOMEM;
	if (zip_error_system_type(ze) == ZIP_ET_SYS && sys > 0)
		return -sys;
	return -EIO;
}

int pd_bundle_write(const struct pd_bundle_opts *o, int out_fd, struct pd_bundle_result *res,
		    char *err, size_t errlen)
{
	struct pd_bundle_result dummy;
	struct ctx x = {.o = o,
			.memfd = -1,
			.rootfd = -1,
			.hostfd = -1,
			.maps = PD_MAPS_INIT,
			.core = PD_CORE_INIT};
	zip_source_t *src = NULL;
	zip_error_t ze;
	int rc;

	x.res = res ? res : &dummy;
	memset(x.res, 0, sizeof(*x.res));
	x.err = err;
	x.errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
	x.now = time(NULL);
	zip_error_init(&ze);
	if (!core_name_ok(o->core_name))
		return seterr(&x, -EINVAL, "bad core name");
	rc = pd_proc_open(o->pid, &x.proc);
	if (rc == 0 && o->start_time && x.proc.stat.starttime != o->start_time) {
		/* The dumped process is gone and its pid reused: bundling the new
		 * one's files and manifest with the old core would be wrong. */
		pd_proc_close(&x.proc);
		rc = -ESRCH;
	}
	if (rc < 0)
		return seterr(&x, rc, "process %d: %s", o->pid, strerror(-rc));
	rc = pd_core_open(o->core_fd, &x.core);
	if (rc < 0) {
		seterr(&x, rc, "the core is not an ELF core of this machine");
		goto out;
	}
	/* The live maps only back up the core: a failure here is no failure. */
	if (pd_proc_maps(&x.proc, &x.maps) < 0)
		x.maps = (struct pd_maps)PD_MAPS_INIT;
	x.memfd = openat(x.proc.dirfd, "mem", O_RDONLY | O_CLOEXEC);
	rc = pd_owner_of(&x.proc, &x.owner);
	if (rc < 0) {
		seterr(&x, rc, "process %d: cannot read its owner: %s", o->pid, strerror(-rc));
		goto out;
	}
	/* Without a root (a process gone, a kernel that refuses), only
	 * map_files serves. */
	x.rootfd = openat(x.proc.dirfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	x.hostfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	x.by_proc = (struct opener){x.proc.dirfd, -1, NULL};
	x.mapped = (struct opener){-1, x.rootfd, NULL};
	x.as_owner = (struct opener){-1, x.rootfd, &x.owner};
	x.host_as_owner = (struct opener){-1, x.hostfd, &x.owner};
	rc = collect_modules(&x);
	if (rc < 0)
		goto out;
	link_map_names(&x);

	src = pd_zsink_source(&x.sink, out_fd, &ze);
	if (!src) {
		rc = -ENOMEM;
		goto out;
	}
	x.za = zip_open_from_source(src, ZIP_CREATE | ZIP_TRUNCATE, &ze);
	if (!x.za) {
		rc = seterr(&x, -EIO, "zip: %s", zip_error_strerror(&ze));
		zip_source_free(src);
		goto out;
	}
	rc = add_core(&x);
	for (size_t i = 0; rc == 0 && i < x.nm; i++) {
		if (!x.m[i].exec && !x.m[i].main)
			continue; /* a data file (locale archive, font, ...) */
		x.res->modules++;
		rc = add_module(&x, &x.m[i]);
	}
	if (rc == 0)
		rc = add_manifest(&x);
	if (rc == 0)
		rc = add_script(&x);
	if (rc == 0)
		rc = add_readme(&x);
	if (rc == 0) {
		rc = open_out(&x, out_fd, &x.res->bound);
		out_fd = rc;
		rc = rc < 0 ? rc : 0;
	}
	if (rc < 0) {
		if (!err || !err[0])
			seterr(&x, rc, "building the zip: %s", strerror(-rc));
		zip_discard(x.za);
		goto out;
	}
	if (o->progress && o->progress(o->progress_arg, 0.0))
		x.cancelled = true;
	if (x.cancelled || zip_close(x.za) < 0) {
		rc = close_error(&x);
		seterr(&x, rc, "writing the zip: %s", zip_strerror(x.za));
		zip_discard(x.za);
		goto out;
	}
	x.res->size = x.sink.len;
	if (o->progress)
		o->progress(o->progress_arg, 1.0); /* too late to stop: it is written */
	rc = 0;
out:
	if (rc < 0 && out_fd >= 0 && ftruncate(out_fd, 0) < 0) {
		/* nothing more to do: the caller drops the spool anyway */
	}
	zip_error_fini(&ze);
	if (x.memfd >= 0)
		close(x.memfd);
	release_modules(&x);
	if (x.rootfd >= 0)
		close(x.rootfd);
	if (x.hostfd >= 0)
		close(x.hostfd);
	pd_maps_release(&x.maps);
	pd_core_release(&x.core);
	pd_proc_close(&x.proc);
	return rc;
}
