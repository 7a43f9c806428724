#include "config.h"

#include "lib/stacks.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/numparse.h"
#include "common/errbuf.h"
#include "common/jsonstr.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "lib/freeze.h"
#include "lib/proc.h"
#include "lib/procfs.h"
#include "lib/sysclock.h"
#include "lib/testhooks.h"

#define MAX_PROCS      8   /* Dwfls kept (one per process instance) */
#define MAX_ELFS       512 /* Elf handles kept across processes */
#define DEFAULT_FRAMES 256
#define PAGE_SLOTS     64
#define PAGE_SZ        4096u
#define MAPS_MAX       (64u << 20)
#define NREGS_X86_64   17

/* ---- caches ---------------------------------------------------------------- */

struct elf_entry {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	Elf *elf; /* our reference; Dwfls hold their own (elf_begin on it) */
	uint64_t used;
};

struct page_slot {
	uint64_t addr; /* page address; valid when len > 0 */
	size_t len;
	unsigned char buf[PAGE_SZ];
};

/* What a pc resolves to, kept with the Dwfl whose memory the strings live
 * in: libdwfl 0.188 finds a symbol by a linear scan of the symbol table (for
 * libc's, some ten thousand entries per frame), so each distinct pc is
 * looked up once per Dwfl. */
struct pc_info {
	uint64_t pc_adj; /* key; 0: empty slot */
	Dwfl_Module *mod;
	const char *sym;
	GElf_Off off;
	bool have_src;
	const char *file;
	int line;
};

struct proc_entry {
	pid_t pid;
	uint64_t start_time;
	uint64_t maps_hash;
	Dwfl *dwfl;
	unsigned nmodules;
	uint64_t used;
	struct pc_info *memo;
	size_t memo_n, memo_alloc; /* alloc: a power of two */
	/* Per request: */
	struct pd_freeze *fz;
	const struct pd_stack_copy *sample; /* a live session's current one */
	struct pd_maps *maps;
	struct page_slot *pages;
	unsigned elf_hits, elf_misses;
};

struct pd_stacks_cache {
	uint64_t clock;
	struct elf_entry elfs[MAX_ELFS];
	size_t nelfs;
	struct proc_entry *procs[MAX_PROCS];
};

/* The callbacks of libdwfl carry no argument of ours (find_elf), so the
 * process being worked on is here. One request at a time per thread. */
static __thread struct pd_stacks_cache *cur_cache;
static __thread struct proc_entry *cur_proc;

struct pd_stacks_cache *pd_stacks_cache_new(void)
{
	/* The standard debuginfo lookup would ask debuginfod servers if the
	 * environment names some: a stack request never goes to the network. */
	unsetenv("DEBUGINFOD_URLS");
	elf_version(EV_CURRENT);
	return calloc(1, sizeof(struct pd_stacks_cache));
}

static void proc_free(struct proc_entry *e)
{
	if (!e)
		return;
	if (e->dwfl)
		dwfl_end(e->dwfl);
	free(e->memo);
	free(e);
}

void pd_stacks_cache_free(struct pd_stacks_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < MAX_PROCS; i++)
		proc_free(c->procs[i]);
	for (size_t i = 0; i < c->nelfs; i++)
		elf_end(c->elfs[i].elf);
	free(c);
}

static struct elf_entry *elf_lookup(struct pd_stacks_cache *c, const struct stat *st)
{
	for (size_t i = 0; i < c->nelfs; i++) {
		struct elf_entry *e = &c->elfs[i];

		if (e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
		    e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec)
			return e;
	}
	return NULL;
}

static void elf_insert(struct pd_stacks_cache *c, const struct stat *st, Elf *elf)
{
	struct elf_entry *e;

	if (c->nelfs < MAX_ELFS) {
		e = &c->elfs[c->nelfs++];
	} else {
		/* Evict the least recently used: Dwfls still holding it keep
		 * it alive through their own reference. */
		e = &c->elfs[0];
		for (size_t i = 1; i < c->nelfs; i++)
			if (c->elfs[i].used < e->used)
				e = &c->elfs[i];
		elf_end(e->elf);
	}
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->elf = elf;
	e->used = ++c->clock;
}

/* The mapping of the current process that starts at base. */
static const struct pd_map *map_at(uint64_t base)
{
	const struct pd_maps *m = cur_proc ? cur_proc->maps : NULL;

	for (size_t i = 0; m && i < m->n; i++)
		if (m->v[i].start == base)
			return &m->v[i];
	return NULL;
}

/* The file is the mapped one. Only the inode is compared, as
 * lib/modules.c does: on overlayfs (containers) the device in maps and the
 * one stat reports differ, and the Elf cache would be bypassed. */
static bool same_inode(const struct stat *st, const struct pd_map *m)
{
	return m && st->st_ino == m->inode;
}

/* Dwfl_Callbacks.find_elf: the ELF of a file-backed module, through the
 * target's root (its mount namespace) and checked against the inode the
 * target has mapped (else the mapped inode itself, /proc/PID/map_files);
 * Elf handles are shared through the cache. Others ([vdso: PID]) as
 * elfutils does. */
static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	struct pd_stacks_cache *c = cur_cache;
	struct proc_entry *pe = cur_proc;
	const struct pd_map *m = map_at(base);
	struct elf_entry *e;
	struct strbuf path = STRBUF_INIT;
	struct stat st;
	int fd = -1;
	Elf *elf;

	if (!c || !pe || name[0] != '/' || !m || m->deleted)
		return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
	if (strbuf_addf(&path, "/proc/%d/root%s", (int)pe->pid, name) < 0)
		return -1;
	if (stat(path.buf, &st) < 0 || !same_inode(&st, m)) {
		/* Replaced since it was mapped: the mapped inode. */
		strbuf_reset(&path);
		if (strbuf_addf(&path, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pe->pid,
				m->start, m->end) < 0)
			goto fallback;
		fd = open(path.buf, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 || !same_inode(&st, m))
			goto fallback;
	}
	e = elf_lookup(c, &st);
	if (e) {
		pe->elf_hits++;
		e->used = ++c->clock;
	} else {
		if (fd < 0)
			fd = open(path.buf, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			goto fallback;
		elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
		if (!elf || elf_kind(elf) != ELF_K_ELF) {
			/* A data file (locale archive, font...): no module. */
			if (elf)
				elf_end(elf);
			close(fd);
			strbuf_release(&path);
			return -1;
		}
		/* All of it is mapped: the descriptor is not needed again. */
		elf_cntl(elf, ELF_C_FDDONE);
		pe->elf_misses++;
		elf_insert(c, &st, elf);
		e = elf_lookup(c, &st);
	}
	if (fd >= 0)
		close(fd);
	/* Another reference on the same handle, owned by the Dwfl. */
	*elfp = elf_begin(-1, ELF_C_READ_MMAP, e->elf);
	*file_name = strbuf_detach(&path, NULL);
	return -1;
fallback:
	if (fd >= 0)
		close(fd);
	strbuf_release(&path);
	return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);
}

static char *debuginfo_path;
static const Dwfl_Callbacks dwfl_cbs = {
	.find_elf = find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* ---- thread callbacks over the freeze ---------------------------------------- */

static pid_t cb_next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	struct proc_entry *pe = arg;
	struct pd_freeze *fz = pe->fz;
	size_t i = *thread_argp ? (size_t)((struct pd_thread *)*thread_argp - fz->threads) + 1 : 0;

	(void)dwfl;
	if (pe->sample) {
		if (*thread_argp)
			return 0;
		*thread_argp = (void *)pe->sample;
		return pe->sample->tid;
	}
	if (!fz || i >= fz->n)
		return 0;
	*thread_argp = &fz->threads[i];
	return fz->threads[i].tid;
}

static bool cb_get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	struct proc_entry *pe = arg;

	(void)dwfl;
	if (pe->sample) {
		*thread_argp = (void *)pe->sample;
		return pe->sample->tid == tid;
	}
	for (size_t i = 0; pe->fz && i < pe->fz->n; i++) {
		if (pe->fz->threads[i].tid == tid) {
			*thread_argp = &pe->fz->threads[i];
			return true;
		}
	}
	return false;
}

static bool read_word(struct proc_entry *pe, uint64_t addr, uint64_t *out)
{
	uint64_t page = addr & ~(uint64_t)(PAGE_SZ - 1);
	size_t off = (size_t)(addr - page);
	struct page_slot *s;
	ssize_t n;

	if (pe->pages && off + sizeof(*out) <= PAGE_SZ) {
		s = &pe->pages[(page / PAGE_SZ) % PAGE_SLOTS];
		if (!s->len || s->addr != page) {
			n = pd_freeze_read(pe->fz, page, s->buf, PAGE_SZ);
			s->len = n > 0 ? (size_t)n : 0;
			s->addr = page;
		}
		if (s->len >= off + sizeof(*out)) {
			memcpy(out, s->buf + off, sizeof(*out));
			return true;
		}
	}
	return pd_freeze_read(pe->fz, addr, out, sizeof(*out)) == (ssize_t)sizeof(*out);
}

/* A word of a live process: from the stack the kernel copied with the
 * sample, else from the process itself (it runs on: what is read there
 * may have changed since the sample; only stack slots above the copy and
 * the odd pointer outside the stack come from it). */
static bool sample_read(struct proc_entry *pe, uint64_t addr, Dwarf_Word *result)
{
	const struct pd_stack_copy *s = pe->sample;
	uint64_t v;
	struct iovec local = { &v, sizeof(v) }, remote = { (void *)(uintptr_t)addr, sizeof(v) };

	if (addr >= s->sp && addr - s->sp + sizeof(v) <= s->stack_len) {
		memcpy(&v, (const char *)s->stack + (addr - s->sp), sizeof(v));
		*result = v;
		return true;
	}
	if (process_vm_readv(pe->pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof(v))
		return false;
	*result = v;
	return true;
}

static bool cb_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct proc_entry *pe = arg;
	uint64_t v;

	(void)dwfl;
	if (pe->sample)
		return sample_read(pe, addr, result);
	if (!pe->fz || !read_word(pe, addr, &v))
		return false;
	*result = v;
	return true;
}

/* The registers of the freeze, in the x86_64 DWARF numbering: rax rdx rcx
 * rbx rsi rdi rbp rsp r8..r15, then the return address column (rip). */
static bool cb_set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
#if defined(__x86_64__)
	const struct pd_thread *t = thread_arg;

	if (cur_proc && cur_proc->sample) {
		const struct pd_stack_copy *sc = thread_arg;

		return dwfl_thread_state_registers(thread, 0, NREGS_X86_64, sc->regs);
	}
	const struct user_regs_struct *r = &t->regs;
	Dwarf_Word regs[NREGS_X86_64] = {
		r->rax, r->rdx, r->rcx, r->rbx, r->rsi, r->rdi, r->rbp, r->rsp, r->r8,
		r->r9,	r->r10, r->r11, r->r12, r->r13, r->r14, r->r15, r->rip,
	};

	return dwfl_thread_state_registers(thread, 0, NREGS_X86_64, regs);
#else
	(void)thread;
	(void)thread_arg;
	return false;
#endif
}

static const Dwfl_Thread_Callbacks thread_cbs = {
	.next_thread = cb_next_thread,
	.get_thread = cb_get_thread,
	.memory_read = cb_memory_read,
	.set_initial_registers = cb_set_initial_registers,
};

/* ---- one request --------------------------------------------------------------- */

struct raw_frame {
	uint64_t pc;
	bool activation;
};

struct raw_thread {
	pid_t tid;
	struct raw_frame *frames;
	size_t n, alloc;
	unsigned max;
	char *error; /* malloc'd */
	struct pd_stat st;
	bool have_st;
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct raw_thread *t = arg;
	Dwarf_Addr pc;
	bool act;

	if (!dwfl_frame_pc(state, &pc, &act))
		return -1;
	if (t->n == t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 32;
		struct raw_frame *nv = realloc(t->frames, na * sizeof(*nv));

		if (!nv)
			return DWARF_CB_ABORT;
		t->frames = nv;
		t->alloc = na;
	}
	t->frames[t->n].pc = pc;
	t->frames[t->n].activation = act;
	t->n++;
	return t->n >= t->max ? DWARF_CB_ABORT : DWARF_CB_OK;
}

/* FNV-1a over the file-backed mappings: the modules a Dwfl reports. */
static uint64_t maps_hash(const struct pd_maps *m)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < m->n; i++) {
		const struct pd_map *x = &m->v[i];
		uint64_t f[6] = { x->start, x->end, x->offset, x->dev_major, x->dev_minor, x->inode };
		const unsigned char *b = (const unsigned char *)f;

		if (!x->path || (x->path[0] != '/' && strcmp(x->path, "[vdso]")))
			continue;
		for (size_t k = 0; k < sizeof(f); k++)
			h = (h ^ b[k]) * 1099511628211ull;
		for (const char *p = x->path; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
	}
	return h;
}

static struct proc_entry **proc_slot(struct pd_stacks_cache *c, pid_t pid, uint64_t start_time)
{
	struct proc_entry **lru = NULL;

	for (size_t i = 0; i < MAX_PROCS; i++) {
		struct proc_entry *e = c->procs[i];

		if (e && e->pid == pid && e->start_time == start_time)
			return &c->procs[i];
	}
	/* A free slot, or one of a process that is gone, or the LRU one. */
	for (size_t i = 0; i < MAX_PROCS; i++) {
		struct proc_entry *e = c->procs[i];
		char path[64];
		struct pd_stat st;

		if (!e)
			return &c->procs[i];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)e->pid);
		if (pd_read_stat_at(AT_FDCWD, path, &st) < 0 || st.starttime != e->start_time) {
			proc_free(e);
			c->procs[i] = NULL;
			return &c->procs[i];
		}
		if (!lru || e->used < (*lru)->used)
			lru = &c->procs[i];
	}
	proc_free(*lru);
	*lru = NULL;
	return lru;
}

/* Does the current process map [start, end) executable anywhere? */
static bool has_code(Dwarf_Addr start, Dwarf_Addr end)
{
	const struct pd_maps *m = cur_proc->maps;

	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].start >= start && m->v[i].end <= end && m->v[i].perms[2] == 'x')
			return true;
	return false;
}

/* Loads the ELF and .eh_frame index of every module with code (data files
 * mapped from disk are modules to libdwfl too), so that the freeze does not
 * wait for files. */
static int prewarm_cb(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
		      void *arg)
{
	Dwarf_Addr bias, end;
	unsigned *n = arg;

	(void)userdata;
	(void)name;
	if (!dwfl_module_info(mod, NULL, NULL, &end, NULL, NULL, NULL, NULL) ||
	    !has_code(start, end))
		return DWARF_CB_OK;
	if (dwfl_module_getelf(mod, &bias))
		dwfl_module_eh_cfi(mod, &bias);
	(*n)++;
	return DWARF_CB_OK;
}

/* Whether any mapping is of a file. None: the process is between an
 * exec's new (empty) memory map and the mapping of its program, a moment
 * an exec stalled under load can make long (nothing to unwind yet: a
 * change while read, not a failure). */
static bool maps_have_file(const struct pd_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++)
		if (maps->v[i].path && maps->v[i].path[0] == '/')
			return true;
	return false;
}

/* A Dwfl reporting the current maps, every ELF and .eh_frame loaded. */
static int new_dwfl(struct proc_entry *pe, const struct strbuf *maps_text, char *err, size_t errlen)
{
	FILE *f;
	int rc;

	pe->dwfl = dwfl_begin(&dwfl_cbs);
	if (!pe->dwfl)
		return -ENOMEM;
	dwfl_report_begin(pe->dwfl);
	f = fmemopen(maps_text->buf, maps_text->len, "r");
	if (!f)
		return -errno;
	rc = dwfl_linux_proc_maps_report(pe->dwfl, f);
	fclose(f);
	if (rc != 0) {
		pd_seterr(err, errlen, "reporting the modules: %s",
		       rc > 0 ? strerror(rc) : dwfl_errmsg(-1));
		return -EIO;
	}
	/* The maps report leaves out the vDSO (it takes AT_SYSINFO_EHDR to
	 * recognize it); unwinding through it needs its CFI. */
	for (size_t i = 0; i < pe->maps->n; i++) {
		const struct pd_map *m = &pe->maps->v[i];
		char name[48];

		if (m->path && !strcmp(m->path, "[vdso]")) {
			snprintf(name, sizeof(name), "[vdso: %d]", (int)pe->pid);
			dwfl_report_module(pe->dwfl, name, m->start, m->end);
		}
	}
	if (dwfl_report_end(pe->dwfl, NULL, NULL) != 0) {
		pd_seterr(err, errlen, "reporting the modules: %s", dwfl_errmsg(-1));
		return -EIO;
	}
	pe->nmodules = 0;
	dwfl_getmodules(pe->dwfl, prewarm_cb, &pe->nmodules, 0);
	if (!dwfl_attach_state(pe->dwfl, NULL, pe->pid, &thread_cbs, pe)) {
		pd_seterr(err, errlen, "no unwinder for this process: %s", dwfl_errmsg(-1));
		return -EIO;
	}
	return 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

static bool jset(json_t *o, const char *k, json_t *v)
{
	return v && json_object_set_new(o, k, v) == 0;
}

static size_t memo_slot(const struct pc_info *v, size_t alloc, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & (alloc - 1);

	while (v[i].pc_adj && v[i].pc_adj != key)
		i = (i + 1) & (alloc - 1);
	return i;
}

/* The pc_info of adj, looked up and remembered the first time. NULL only
 * when out of memory. */
static struct pc_info *resolve(struct proc_entry *pe, uint64_t adj, bool want_source)
{
	struct pc_info *pi;
	GElf_Sym s;

	if (!adj)
		adj = 1; /* 0 marks empty slots; no code lives there anyway */
	if ((pe->memo_n + 1) * 2 > pe->memo_alloc) {
		size_t na = pe->memo_alloc ? pe->memo_alloc * 2 : 256;
		struct pc_info *nv = calloc(na, sizeof(*nv));

		if (!nv)
			return NULL;
		for (size_t i = 0; i < pe->memo_alloc; i++)
			if (pe->memo[i].pc_adj)
				nv[memo_slot(nv, na, pe->memo[i].pc_adj)] = pe->memo[i];
		free(pe->memo);
		pe->memo = nv;
		pe->memo_alloc = na;
	}
	pi = &pe->memo[memo_slot(pe->memo, pe->memo_alloc, adj)];
	if (!pi->pc_adj) {
		pi->pc_adj = adj;
		pi->mod = dwfl_addrmodule(pe->dwfl, adj);
		if (pi->mod)
			pi->sym = dwfl_module_addrinfo(pi->mod, adj, &pi->off, &s, NULL, NULL, NULL);
		pe->memo_n++;
	}
	if (want_source && !pi->have_src) {
		Dwfl_Line *l = pi->mod ? dwfl_module_getsrc(pi->mod, adj) : NULL;

		pi->file = l ? dwfl_lineinfo(l, NULL, &pi->line, NULL, NULL, NULL) : NULL;
		pi->have_src = true;
	}
	return pi;
}

static json_t *frame_json(struct proc_entry *pe, const struct raw_frame *fr, bool want_source)
{
	Dwarf_Addr adj = fr->pc - (fr->activation ? 0 : 1);
	struct pc_info *pi = resolve(pe, adj, want_source);
	json_t *o = json_object();
	const char *modname = NULL, *sym, *file;
	char pc[24], hex[2 * 64 + 1];
	const unsigned char *id;
	GElf_Addr id_vaddr;
	int line, idlen = 0;
	bool ok = o != NULL;

	if (!o || !pi) {
		json_decref(o);
		return NULL;
	}
	sym = pi->sym;
	file = want_source ? pi->file : NULL;
	line = pi->line;
	snprintf(pc, sizeof(pc), "0x%" PRIx64, fr->pc);
	if (pi->mod) {
		modname = dwfl_module_info(pi->mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		if (modname && !strncmp(modname, "[vdso", 5))
			modname = "[vdso]";
		idlen = dwfl_module_build_id(pi->mod, &id, &id_vaddr);
	}
	if (idlen > 0 && idlen <= 64)
		hex_encode(id, (size_t)idlen, hex);
	ok = ok && jset(o, "pc", json_string(pc));
	ok = ok && jset(o, "module", pd_json_cstr(modname));
	ok = ok && jset(o, "build_id", idlen > 0 && idlen <= 64 ? json_string(hex) : json_null());
	ok = ok && jset(o, "symbol", pd_json_cstr(sym));
	/* From the symbol to the pc itself (not pc-1): symbol+offset is pc. */
	ok = ok && jset(o, "offset",
			sym ? json_integer((json_int_t)(pi->off + (fr->pc - adj))) : json_null());
	ok = ok && jset(o, "file", pd_json_cstr(file));
	ok = ok && jset(o, "line", file && line > 0 ? json_integer(line) : json_null());
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *thread_json(struct proc_entry *pe, const struct raw_thread *t, bool want_source)
{
	json_t *o = json_object(), *frames = json_array();
	char st[2] = { t->have_st ? t->st.state : '?', 0 };
	bool ok = o && frames;

	ok = ok && jset(o, "id", json_integer(t->tid));
	ok = ok && jset(o, "name", t->have_st ? pd_json_bytes(t->st.comm, t->st.comm_len) : json_null());
	ok = ok && jset(o, "state", json_string(st));
	for (size_t i = 0; ok && i < t->n; i++)
		ok = json_array_append_new(frames, frame_json(pe, &t->frames[i], want_source)) == 0;
	ok = ok && jset(o, "frames", frames);
	frames = NULL;
	if (ok && t->error)
		ok = jset(o, "error", pd_json_cstr(t->error));
	json_decref(frames);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- collect ------------------------------------------------------------------- */

/* Do the maps differ from text, read before? (The process exec'd, or is
 * in the middle of an exec, whose new memory has no ELF mapped yet.) */
static bool maps_changed(struct pd_proc *p, const struct strbuf *text)
{
	struct strbuf now = STRBUF_INIT;
	bool changed;

	changed = pd_read_file_at(p->dirfd, "maps", &now, MAPS_MAX) < 0 || now.len != text->len ||
		  memcmp(now.buf, text->buf, now.len) != 0;
	strbuf_release(&now);
	return changed;
}

static int freeze_error(int rc, pid_t pid, unsigned deadline_ms, char *err, size_t errlen)
{
	switch (rc) {
	case -ESRCH: pd_seterr(err, errlen, "process %d is not running", (int)pid); break;
	case -EOWNERDEAD: pd_seterr(err, errlen, "process %d is a zombie", (int)pid); break;
	case -EOPNOTSUPP: pd_seterr(err, errlen, "process %d is a kernel thread", (int)pid); break;
	case -EPERM:
	case -EACCES: pd_seterr(err, errlen, "ptrace of process %d refused", (int)pid); break;
	case -EBUSY:
		pd_seterr(err, errlen, "process %d is traced by another process", (int)pid);
		break;
	case -EAGAIN:
		pd_seterr(err, errlen,
			  "process %d changed its image (an exec) while it was being read",
			  (int)pid);
		break;
	case -ETIMEDOUT:
		pd_seterr(err, errlen, "a thread of process %d did not stop within %u ms", (int)pid,
		       deadline_ms ? deadline_ms : 2000);
		break;
	default: pd_seterr(err, errlen, "freezing process %d: %s", (int)pid, strerror(-rc)); break;
	}
	return rc == -EACCES ? -EPERM : rc;
}

int pd_stacks_collect(struct pd_stacks_cache *c, pid_t pid, uint64_t start_time,
		      const struct pd_stacks_opts *opts, json_t **out, char *err, size_t errlen)
{
	struct pd_stacks_opts o = { 0 };
	struct proc_entry **slot, *pe = NULL;
	struct strbuf maps_text = STRBUF_INIT;
	struct pd_maps maps = PD_MAPS_INIT;
	struct pd_tasks tasks = PD_TASKS_INIT;
	struct raw_thread *th = NULL;
	struct pd_freeze fz;
	struct pd_proc p;
	bool fz_open = false, reused = false;
	uint64_t t0 = pd_mono_ns(), h;
	size_t nth = 0;
	json_t *doc = NULL, *arr;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (opts)
		o = *opts;
	if (!o.max_frames)
		o.max_frames = DEFAULT_FRAMES;

	rc = pd_proc_open(pid, &p);
	if (rc < 0)
		return freeze_error(rc, pid, 0, err, errlen);
	if (start_time && p.stat.starttime != start_time) {
		pd_proc_close(&p);
		return freeze_error(-ESRCH, pid, 0, err, errlen);
	}
	start_time = p.stat.starttime;
	/* Pins the process (pidfd) and refuses zombies and kernel threads. */
	rc = pd_freeze_open(&fz, pid, start_time, o.scope);
	if (rc < 0) {
		rc = freeze_error(rc, pid, 0, err, errlen);
		goto out;
	}
	fz_open = true;
	rc = pd_read_file_at(p.dirfd, "maps", &maps_text, MAPS_MAX);
	if (rc == 0)
		rc = pd_parse_maps(maps_text.buf, maps_text.len, &maps);
	if (rc < 0) {
		rc = freeze_error(rc == -ENOENT ? -ESRCH : rc, pid, 0, err, errlen);
		goto out;
	}
	/* Names and states as they were before we stop anything. */
	pd_proc_tasks(&p, &tasks);

	/* The Dwfl: reused while the file mappings are the same. */
	h = maps_hash(&maps);
	slot = proc_slot(c, pid, start_time);
	pe = *slot;
	if (pe && pe->maps_hash != h) {
		proc_free(pe);
		*slot = pe = NULL;
	}
	cur_cache = c;
	if (pe) {
		reused = true;
		pe->maps = &maps;
		cur_proc = pe;
	} else {
		pe = calloc(1, sizeof(*pe));
		if (!pe) {
			rc = -ENOMEM;
			goto out;
		}
		pe->pid = pid;
		pe->start_time = start_time;
		pe->maps_hash = h;
		pe->maps = &maps;
		cur_proc = pe;
		rc = new_dwfl(pe, &maps_text, err, errlen);
		if (rc < 0) {
			proc_free(pe);
			pe = NULL;
			/* Its modules could not be loaded because it is no longer
			 * the process that was asked for (an exec since the
			 * scope was checked, and maybe its exit since): answered
			 * as the freeze would. */
			int may = o.scope ? pd_scope_may_act(o.scope, p.dirfd, "status") : 0;

			if (may < 0)
				rc = freeze_error(may == -EPERM ? -EPERM : -ESRCH, pid, 0, err, errlen);
			else if (maps_changed(&p, &maps_text) || !maps_have_file(&maps))
				rc = freeze_error(-EAGAIN, pid, 0, err, errlen);
			goto out;
		}
		*slot = pe;
	}
	pe->used = ++c->clock;
	pe->pages = calloc(PAGE_SLOTS, sizeof(*pe->pages));

	/* The freeze: only the unwinding itself happens while stopped. */
	rc = pd_freeze_stop(&fz, o.deadline_ms);
	if (rc < 0) {
		rc = freeze_error(rc, pid, o.deadline_ms, err, errlen);
		goto out;
	}
	th = calloc(fz.n, sizeof(*th));
	if (!th) {
		rc = -ENOMEM;
		goto out;
	}
	nth = fz.n;
	pe->fz = &fz;
	for (size_t i = 0; i < fz.n; i++) {
		struct raw_thread *t = &th[i];
		int r;

		t->tid = fz.threads[i].tid;
		t->max = o.max_frames;
		r = dwfl_getthread_frames(pe->dwfl, t->tid, frame_cb, t);
		if (r == -1) {
			const char *m = dwfl_errmsg(-1);

			t->error = strdup(m ? m : "unwinding failed");
		} else if (r == DWARF_CB_ABORT && t->n >= t->max) {
			if (asprintf(&t->error, "stopped after %u frames", t->max) < 0)
				t->error = NULL;
		}
	}
	pd_hook_frozen(PD_HOOK_STACKS);
	if (pd_freeze_gone(&fz)) {
		pd_freeze_thaw(&fz);
		rc = freeze_error(-ESRCH, pid, 0, err, errlen);
		goto out;
	}
	pd_freeze_thaw(&fz);
	pe->fz = NULL;

	/* Symbolize with the target running again. */
	for (size_t i = 0; i < nth; i++) {
		for (size_t k = 0; k < tasks.n; k++) {
			if (tasks.v[k].pid == th[i].tid) {
				th[i].st = tasks.v[k];
				th[i].have_st = true;
				break;
			}
		}
		if (!th[i].have_st)
			th[i].have_st = pd_proc_task(&p, th[i].tid, &th[i].st) == 0;
	}
	doc = json_object();
	arr = json_array();
	if (!doc || !arr) {
		json_decref(arr);
		rc = -ENOMEM;
		goto out;
	}
	bool ok = jset(doc, "id", json_integer(pid));
	ok = ok && jset(doc, "name", pd_json_bytes(p.stat.comm, p.stat.comm_len));
	ok = ok && jset(doc, "stopped_us", json_integer((json_int_t)pd_freeze_stopped_us(&fz)));
	ok = ok && jset(doc, "modules", json_integer(pe->nmodules));
	ok = ok && jset(doc, "cached_modules",
			json_integer(reused ? pe->nmodules : pe->elf_hits));
	ok = ok && jset(doc, "process_cached", json_boolean(reused));
	for (size_t i = 0; ok && i < nth; i++)
		ok = json_array_append_new(arr, thread_json(pe, &th[i], !o.no_source)) == 0;
	ok = ok && jset(doc, "threads", arr);
	arr = NULL;
	ok = ok && jset(doc, "elapsed_us", json_integer((json_int_t)((pd_mono_ns() - t0) / 1000)));
	if (!ok) {
		rc = -ENOMEM;
		goto out;
	}
	*out = doc;
	doc = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && err && !err[0])
		pd_seterr(err, errlen, "out of memory");
	json_decref(doc);
	if (fz_open)
		pd_freeze_close(&fz);
	if (pe) {
		pe->fz = NULL;
		pe->maps = NULL;
		free(pe->pages);
		pe->pages = NULL;
		pe->elf_hits = pe->elf_misses = 0;
	}
	for (size_t i = 0; i < nth; i++) {
		free(th[i].frames);
		free(th[i].error);
	}
	free(th);
	cur_proc = NULL;
	cur_cache = NULL;
	pd_tasks_release(&tasks);
	pd_maps_release(&maps);
	strbuf_release(&maps_text);
	pd_proc_close(&p);
	return rc;
}

/* ---- live sessions ------------------------------------------------------------ */

struct pd_stacks_live {
	struct pd_stacks_cache *c;
	struct proc_entry *pe;
	struct pd_maps maps;
	struct strbuf maps_text;
};

int pd_stacks_live_open(struct pd_stacks_cache *c, pid_t pid, uint64_t start_time,
			struct pd_stacks_live **out, char *err, size_t errlen)
{
	struct pd_stacks_live *l = calloc(1, sizeof(*l));
	struct pd_proc p;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!l)
		return -ENOMEM;
	l->c = c;
	l->maps = (struct pd_maps)PD_MAPS_INIT;
	strbuf_init(&l->maps_text);
	rc = pd_proc_open(pid, &p);
	if (rc < 0) {
		free(l);
		return freeze_error(rc, pid, 0, err, errlen);
	}
	if (start_time && p.stat.starttime != start_time)
		rc = -ESRCH;
	else
		rc = pd_read_file_at(p.dirfd, "maps", &l->maps_text, MAPS_MAX);
	if (rc == 0)
		rc = pd_parse_maps(l->maps_text.buf, l->maps_text.len, &l->maps);
	if (rc == 0 && !maps_have_file(&l->maps))
		rc = -EAGAIN;
	if (rc == 0) {
		l->pe = calloc(1, sizeof(*l->pe));
		if (!l->pe)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		l->pe->pid = pid;
		l->pe->start_time = p.stat.starttime;
		l->pe->maps = &l->maps;
		cur_cache = c;
		cur_proc = l->pe;
		rc = new_dwfl(l->pe, &l->maps_text, err, errlen);
		cur_cache = NULL;
		cur_proc = NULL;
	} else if (rc != -ENOMEM) {
		rc = freeze_error(rc == -ENOENT ? -ESRCH : rc, pid, 0, err, errlen);
	}
	pd_proc_close(&p);
	if (rc < 0) {
		pd_stacks_live_close(l);
		return rc;
	}
	*out = l;
	return 0;
}

void pd_stacks_live_close(struct pd_stacks_live *l)
{
	if (!l)
		return;
	proc_free(l->pe);
	pd_maps_release(&l->maps);
	strbuf_release(&l->maps_text);
	free(l);
}

size_t pd_stacks_live_unwind(struct pd_stacks_live *l, const struct pd_stack_copy *s,
			     uint64_t *pcs, bool *exact, size_t max)
{
	struct raw_thread t = { .tid = s->tid, .max = (unsigned)max };
	size_t n;

	if (!max)
		return 0;
	cur_cache = l->c;
	cur_proc = l->pe;
	l->pe->sample = s;
	dwfl_getthread_frames(l->pe->dwfl, s->tid, frame_cb, &t);
	l->pe->sample = NULL;
	cur_cache = NULL;
	cur_proc = NULL;
	n = t.n < max ? t.n : max;
	for (size_t i = 0; i < n; i++) {
		pcs[i] = t.frames[i].pc;
		exact[i] = t.frames[i].activation;
	}
	free(t.frames);
	return n;
}

void pd_stacks_live_symbol(struct pd_stacks_live *l, uint64_t pc, bool exact, const char **sym,
			   const char **module)
{
	struct pc_info *pi;

	cur_cache = l->c;
	cur_proc = l->pe;
	pi = resolve(l->pe, pc - (exact ? 0 : 1), false);
	cur_cache = NULL;
	cur_proc = NULL;
	*sym = pi ? pi->sym : NULL;
	*module = pi && pi->mod ? dwfl_module_info(pi->mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
				: NULL;
	if (*module && !strncmp(*module, "[vdso", 5))
		*module = "[vdso]";
}

/* ---- text ---------------------------------------------------------------------- */

static const char *jget_str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int pd_stacks_text(const json_t *doc, const char *(*state_name)(char), struct strbuf *out)
{
	const json_t *threads = json_object_get(doc, "threads"), *t;
	size_t i;
	int rc = 0;

	rc |= strbuf_addf(out, "PID %" JSON_INTEGER_FORMAT " - process (%s)\n",
			  json_integer_value(json_object_get(doc, "id")),
			  jget_str(doc, "name") ? jget_str(doc, "name") : "?");
	json_array_foreach(threads, i, t) {
		const json_t *frames = json_object_get(t, "frames"), *f;
		const char *st = jget_str(t, "state");
		const char *name = jget_str(t, "name");
		size_t k;

		if (st && st[0] && state_name)
			st = state_name(st[0]);
		rc |= strbuf_addf(out, "TID %" JSON_INTEGER_FORMAT ": %s (%s)\n",
				  json_integer_value(json_object_get(t, "id")), name ? name : "?",
				  st ? st : "?");
		json_array_foreach(frames, k, f) {
			const char *pc = jget_str(f, "pc"), *sym = jget_str(f, "symbol");
			const char *mod = jget_str(f, "module"), *file = jget_str(f, "file");
			unsigned long long v = pc ? strtoull(pc, NULL, 16) : 0;

			rc |= strbuf_addf(out, "#%-2zu 0x%016llx", k, v);
			if (sym)
				rc |= strbuf_addf(out, " %s+0x%llx", sym,
						  (unsigned long long)json_integer_value(
							  json_object_get(f, "offset")));
			else
				rc |= strbuf_addstr(out, " ??");
			if (mod)
				rc |= strbuf_addf(out, " - %s", mod);
			rc |= strbuf_addch(out, '\n');
			if (file) {
				rc |= strbuf_addf(out, "    %s", file);
				if (json_integer_value(json_object_get(f, "line")) > 0)
					rc |= strbuf_addf(out, ":%" JSON_INTEGER_FORMAT,
							  json_integer_value(json_object_get(f, "line")));
				rc |= strbuf_addch(out, '\n');
			}
		}
		if (jget_str(t, "error"))
			rc |= strbuf_addf(out, "    (unwinding stopped: %s)\n", jget_str(t, "error"));
	}
	return rc ? -ENOMEM : 0;
}
