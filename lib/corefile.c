#include "config.h"

#include "lib/corefile.h"

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <signal.h>
#include <sys/procfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/cowclone.h"
#include "lib/freeze.h"
#include "lib/memcopy.h"
#include "lib/proc.h"
#include "lib/procfs.h"
#include "lib/sysclock.h"
#include "lib/testhooks.h"

#define SMAPS_MAX      (256u << 20)
#define FILE_MAX       (4u << 20)
#define LINKMAP_MAX    4096 /* link_map entries we follow (a loop stops here) */
#define DEFAULT_FILTER 0x33u
#define DIRECT_BUF     (32u << 20)
#define MIN_HOLE_DISK  (1u << 20) /* see min_hole() */
#define READAHEAD_MIN  (2u << 20) /* see map_output() */
#define MAP_SLACK      (256u << 20) /* address space past the planned size */
#ifndef NT_X86_SHSTK
#define NT_X86_SHSTK 0x204
#endif
#ifndef NT_X86_XSAVE_LAYOUT
#define NT_X86_XSAVE_LAYOUT 0x205
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Filter bits of /proc/PID/coredump_filter (MMF_DUMP_*). */
#define F_ANON_PRIVATE	  0x1u
#define F_ANON_SHARED	  0x2u
#define F_MAPPED_PRIVATE  0x4u
#define F_MAPPED_SHARED	  0x8u
#define F_HUGETLB_PRIVATE 0x20u
#define F_HUGETLB_SHARED  0x40u

struct range {
	uint64_t a, b;
};
struct ranges {
	size_t n, alloc;
	struct range *v;
};

struct seg {
	uint64_t vaddr, memsz, filesz, off;
	uint32_t flags;
	size_t vma;
};

struct dump {
	const struct pd_core_opts *o;
	struct pd_core_result *res;
	char *err;
	size_t errlen;
	uint64_t page;
	struct pd_freeze fz;
	struct pd_copy copy;
	struct pd_stat stat;
	struct pd_status status;
	struct pd_tasks tasks; /* read before the freeze: CPU times */
	struct strbuf cmdline, auxv, notes;
	unsigned filter;
	struct pd_vmas vmas;
	struct pd_vmas pre; /* smaps read before the stop */
	struct ranges mini;
	struct seg *segs;
	size_t nsegs;
	struct pd_runs runs;
	uint64_t data_off, size;
	uint64_t t0, tlast;
	/* The output mapped before the stop (the "mapped" path): */
	uint64_t data_off_min; /* the layout's data starts here at the earliest */
	struct pd_runs prov;   /* the runs as planned before the stop */
	uint64_t prov_size;
	char *map;
	uint64_t map_len;
	/* The copy-on-write clone (lib/cowclone.h), and what is read from the
	 * target itself while frozen because a clone does not carry it: */
	struct pd_cow cow;
	struct pd_runs frz;
	char *frzbuf;
	bool runs_planned;
};

static int fail(struct dump *d, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct dump *d, int rc, const char *fmt, ...)
{
	va_list ap;

	if (d->err && d->errlen && !d->err[0]) {
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- ranges ----------------------------------------------------------------- */

static int range_add(struct ranges *r, uint64_t a, uint64_t b, uint64_t page)
{
	a -= a % page;
	if (b % page)
		b += page - b % page;
	if (b <= a)
		return 0;
	if (r->n == r->alloc) {
		size_t na = r->alloc ? r->alloc * 2 : 256;
		struct range *nv = realloc(r->v, na * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->alloc = na;
	}
	r->v[r->n++] = (struct range){a, b};
	return 0;
}

static int cmp_range(const void *x, const void *y)
{
	const struct range *a = x, *b = y;

	return a->a < b->a ? -1 : a->a > b->a;
}

static void range_merge(struct ranges *r)
{
	size_t k = 0;

	if (r->n > 1) /* (qsort of a NULL array is undefined, even empty) */
		qsort(r->v, r->n, sizeof(*r->v), cmp_range);
	for (size_t i = 0; i < r->n; i++) {
		if (k && r->v[i].a <= r->v[k - 1].b) {
			if (r->v[i].b > r->v[k - 1].b)
				r->v[k - 1].b = r->v[i].b;
		} else {
			r->v[k++] = r->v[i];
		}
	}
	r->n = k;
}

/* ---- mappings ---------------------------------------------------------------- */

static bool starts(const char *s, const char *p)
{
	return s && !strncmp(s, p, strlen(p));
}

/* No file behind it: anonymous memory, named or not. */
static bool vma_anon(const struct pd_map *m)
{
	return !m->path || !strcmp(m->path, "[heap]") || starts(m->path, "[stack") ||
	       starts(m->path, "[anon");
}

/* Special kernel mappings the kernel always dumps ([vdso], [vvar],
 * [vsyscall], [uprobes]...). */
static bool vma_special(const struct pd_map *m)
{
	return m->path && m->path[0] == '[' && !vma_anon(m);
}

static bool vma_shared(const struct pd_map *m)
{
	return m->perms[3] == 's';
}

/* Shared memory with no file behind it that anyone else can open: what the
 * kernel calls anonymous shared (an inode with no links). */
static bool vma_anon_shared(const struct pd_map *m)
{
	return vma_shared(m) && (vma_anon(m) || m->deleted || starts(m->path, "/dev/zero") ||
				 starts(m->path, "/SYSV") || starts(m->path, "/memfd:"));
}

static struct pd_vma *vma_at(struct dump *d, uint64_t addr)
{
	size_t lo = 0, hi = d->vmas.n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct pd_map *m = d->vmas.v[mid].map;

		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return &d->vmas.v[mid];
	}
	return NULL;
}

/* Whether the content mask and the filter want all of a mapping. */
static bool want_whole(struct dump *d, size_t i)
{
	const struct pd_vma *v = &d->vmas.v[i];
	const struct pd_map *m = v->map;
	unsigned c = d->o->content, f = (c & PD_DC_FULL) ? d->filter : 0;
	bool touched = v->rss + v->swap > 0;

	if (vma_special(m))
		return true;
	if (v->vmflags & PD_VM_DD)
		return false;
	if (v->vmflags & PD_VM_HT)
		return (f & (vma_shared(m) ? F_HUGETLB_SHARED : F_HUGETLB_PRIVATE)) != 0;
	if (v->vmflags & (PD_VM_IO | PD_VM_PF))
		return false;
	if (vma_shared(m)) {
		if (vma_anon_shared(m))
			return (c & PD_DC_SHARED) || (f & F_ANON_SHARED);
		return (f & F_MAPPED_SHARED) != 0;
	}
	if (vma_anon(m)) {
		/* Never touched: the kernel has no anon_vma for it and dumps
		 * nothing; neither do we (a guard page, a reserved arena). */
		if (!touched)
			return false;
		if ((c & PD_DC_ANON) || (f & F_ANON_PRIVATE))
			return true;
		/* The .bss tail of an ELF object: anonymous, right after its
		 * writable file mapping. */
		if ((c & PD_DC_FILE_DATA) && i > 0) {
			const struct pd_map *p = d->vmas.v[i - 1].map;

			if (p->end == m->start && p->path && !vma_anon(p) && !vma_special(p) &&
			    !vma_shared(p) && p->perms[1] == 'w')
				return true;
		}
		return false;
	}
	/* A private file mapping; "written" = it has anonymous (COW) pages. */
	if ((f & F_ANON_PRIVATE) && v->anonymous + v->swap > 0)
		return true;
	if (f & F_MAPPED_PRIVATE)
		return true;
	if ((c & PD_DC_FILE_DATA) && (m->perms[1] == 'w' || v->anonymous + v->swap > 0))
		return true;
	return false;
}

/* ---- the mini base ------------------------------------------------------------ */

static int mini_add(struct dump *d, uint64_t a, uint64_t b)
{
	return range_add(&d->mini, a, b, d->page);
}

/* Reads exactly len bytes of target memory, or -EFAULT. */
static int rd(struct dump *d, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = pd_freeze_read(&d->fz, addr, buf, len);

	return n == (ssize_t)len ? 0 : -EFAULT;
}

static uint64_t auxv_get(struct dump *d, uint64_t type)
{
	const uint64_t *a = (const uint64_t *)(const void *)d->auxv.buf;

	for (size_t i = 0; i + 1 < d->auxv.len / 8; i += 2) {
		if (a[i] == AT_NULL)
			break;
		if (a[i] == type)
			return a[i + 1];
	}
	return 0;
}

/* A NUL-terminated string in the target: adds its bytes. */
static int mini_add_string(struct dump *d, uint64_t addr)
{
	char buf[256];
	uint64_t len = 0;

	while (addr && len < 4096) {
		ssize_t n = pd_freeze_read(&d->fz, addr + len, buf, sizeof(buf));
		void *z;

		if (n <= 0)
			break;
		z = memchr(buf, 0, (size_t)n);
		if (z) {
			len += (uint64_t)((char *)z - buf) + 1;
			break;
		}
		len += (uint64_t)n;
	}
	return len ? mini_add(d, addr, addr + len) : 0;
}

/* The r_debug/link_map chains gdb and libdwfl walk to find the shared
 * libraries: struct r_debug (and r_debug_extended's r_next), each struct
 * link_map's public head, its name, its l_ld. */
static int mini_link_maps(struct dump *d, uint64_t r_debug)
{
	unsigned count = 0;

	while (r_debug && count < 16) {
		uint64_t rd_buf[6], lm, next_ns = 0;
		int32_t version;

		if (rd(d, r_debug, rd_buf, 40) < 0)
			return 0;
		memcpy(&version, rd_buf, 4);
		if (mini_add(d, r_debug, r_debug + (version >= 2 ? 48 : 40)) < 0)
			return -ENOMEM;
		if (version >= 2 && rd(d, r_debug + 40, &next_ns, 8) < 0)
			next_ns = 0;
		lm = rd_buf[1];
		for (unsigned n = 0; lm && n < LINKMAP_MAX; n++) {
			uint64_t l[5]; /* l_addr, l_name, l_ld, l_next, l_prev */

			if (rd(d, lm, l, sizeof(l)) < 0)
				break;
			if (mini_add(d, lm, lm + sizeof(l)) < 0 || mini_add_string(d, l[1]) < 0)
				return -ENOMEM;
			if (l[2] && mini_add(d, l[2], l[2] + 512) < 0)
				return -ENOMEM;
			lm = l[3];
		}
		r_debug = next_ns;
		count++;
	}
	return 0;
}

/* The executable's program headers and dynamic section (found through
 * auxv), and through its DT_DEBUG the link_map chain. */
static int mini_exe(struct dump *d)
{
	uint64_t phdr = auxv_get(d, AT_PHDR), phnum = auxv_get(d, AT_PHNUM), bias = 0;
	Elf64_Phdr ph[128];
	bool have_bias = false;

	if (!phdr || !phnum || phnum > 128)
		return 0;
	if (rd(d, phdr, ph, phnum * sizeof(*ph)) < 0)
		return 0;
	if (mini_add(d, phdr, phdr + phnum * sizeof(*ph)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < phnum; i++)
		if (ph[i].p_type == PT_PHDR) {
			bias = phdr - ph[i].p_vaddr;
			have_bias = true;
		}
	if (!have_bias) {
		/* No PT_PHDR: the headers sit at e_phoff in the first PT_LOAD. */
		for (size_t i = 0; i < phnum; i++)
			if (ph[i].p_type == PT_LOAD && ph[i].p_offset == 0) {
				Elf64_Ehdr eh;
				const struct pd_vma *v = vma_at(d, phdr);

				if (!v || rd(d, v->map->start, &eh, sizeof(eh)) < 0)
					return 0;
				bias = phdr - eh.e_phoff - ph[i].p_vaddr;
				have_bias = true;
				break;
			}
	}
	if (!have_bias)
		return 0;
	for (size_t i = 0; i < phnum; i++) {
		uint64_t dyn = bias + ph[i].p_vaddr, r_debug = 0;
		Elf64_Dyn dv[64];
		size_t nd;

		if (ph[i].p_type != PT_DYNAMIC)
			continue;
		if (mini_add(d, dyn, dyn + ph[i].p_memsz) < 0)
			return -ENOMEM;
		nd = ph[i].p_memsz / sizeof(Elf64_Dyn);
		for (size_t k = 0; k < nd; k += 64) {
			size_t m = nd - k < 64 ? nd - k : 64;

			if (rd(d, dyn + k * sizeof(Elf64_Dyn), dv, m * sizeof(Elf64_Dyn)) < 0)
				break;
			for (size_t j = 0; j < m; j++)
				if (dv[j].d_tag == DT_DEBUG)
					r_debug = dv[j].d_un.d_ptr;
		}
		if (r_debug)
			return mini_link_maps(d, r_debug);
	}
	return 0;
}

static int mini_base(struct dump *d)
{
	uint64_t pg = d->page;

	for (size_t i = 0; i < d->fz.n; i++) {
		const struct user_regs_struct *r = &d->fz.threads[i].regs;
		uint64_t sp = r->rsp >= 128 ? r->rsp - 128 : 0;
		const struct pd_vma *v = vma_at(d, sp);

		if (!v)
			v = vma_at(d, r->rsp);
		if (v && mini_add(d, sp > v->map->start ? sp : v->map->start, v->map->end) < 0)
			return -ENOMEM;
		if (mini_add(d, r->rip - pg, r->rip + 2 * pg) < 0)
			return -ENOMEM;
		if (r->fs_base && mini_add(d, r->fs_base - pg, r->fs_base + 2 * pg) < 0)
			return -ENOMEM;
	}
	/* The first page of every ELF mapping: its headers and build-id note. */
	for (size_t i = 0; i < d->vmas.n; i++) {
		const struct pd_map *m = d->vmas.v[i].map;
		char magic[4];

		if (m->offset || m->perms[0] != 'r' || vma_anon(m) || vma_special(m) ||
		    vma_shared(m))
			continue;
		if (rd(d, m->start, magic, 4) == 0 && !memcmp(magic, ELFMAG, SELFMAG) &&
		    mini_add(d, m->start, m->start + pg) < 0)
			return -ENOMEM;
	}
	/* The written data of the dynamic linker and of libc (_rtld_global
	 * with the thread stack lists, libc's nptl state): libthread_db
	 * enumerates the threads through them; without them gdb falls back
	 * to bare LWPs. A few pages each. */
	{
		const struct pd_vma *ld = vma_at(d, auxv_get(d, AT_BASE));

		for (size_t i = 0; i < d->vmas.n; i++) {
			const struct pd_vma *v = &d->vmas.v[i];
			const struct pd_map *m = v->map;
			const char *base = m->path ? strrchr(m->path, '/') : NULL;
			bool rt = base &&
				  (starts(base, "/libc.so") || starts(base, "/libpthread.so") ||
				   (ld && ld->map->path && m->inode == ld->map->inode &&
				    !strcmp(m->path, ld->map->path)));

			if (rt && !vma_shared(m) && (m->perms[1] == 'w' || v->anonymous > 0) &&
			    mini_add(d, m->start, m->end) < 0)
				return -ENOMEM;
		}
	}
	if (mini_exe(d) < 0)
		return -ENOMEM;
	range_merge(&d->mini);
	return 0;
}

/* ---- segments ------------------------------------------------------------------ */

static int add_seg(struct dump *d, size_t *alloc, uint64_t a, uint64_t b, uint64_t filesz,
		   size_t vma)
{
	const struct pd_map *m = d->vmas.v[vma].map;

	if (d->nsegs == *alloc) {
		size_t na = *alloc ? *alloc * 2 : 256;
		struct seg *nv = realloc(d->segs, na * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		d->segs = nv;
		*alloc = na;
	}
	d->segs[d->nsegs++] = (struct seg){
		.vaddr = a,
		.memsz = b - a,
		.filesz = filesz,
		.flags = (m->perms[0] == 'r' ? PF_R : 0) | (m->perms[1] == 'w' ? PF_W : 0) |
			 (m->perms[2] == 'x' ? PF_X : 0),
		.vma = vma,
	};
	return 0;
}

/* One mapping's PT_LOADs: each dumped piece starts a segment that runs to
 * the next piece (p_filesz < p_memsz covers the gap); a leading gap is a
 * segment of its own with p_filesz 0. */
static int build_segs(struct dump *d)
{
	size_t alloc = 0, j = 0;

	for (size_t i = 0; i < d->vmas.n; i++) {
		const struct pd_vma *v = &d->vmas.v[i];
		const struct pd_map *m = v->map;
		struct range piece[64];
		size_t np = 0;
		bool excluded = !vma_special(m) &&
				((v->vmflags & (PD_VM_DD | PD_VM_IO | PD_VM_PF)) ||
				 (vma_anon(m) && !vma_shared(m) && v->rss + v->swap == 0));

		while (j < d->mini.n && d->mini.v[j].b <= m->start)
			j++;
		if (want_whole(d, i)) {
			piece[np++] = (struct range){m->start, m->end};
		} else if (!excluded) {
			for (size_t k = j; k < d->mini.n && d->mini.v[k].a < m->end; k++) {
				uint64_t a = d->mini.v[k].a > m->start ? d->mini.v[k].a : m->start;
				uint64_t b = d->mini.v[k].b < m->end ? d->mini.v[k].b : m->end;

				if (np == sizeof(piece) / sizeof(piece[0])) {
					/* Too fragmented: the rest of it whole. */
					piece[np - 1].b = m->end;
					break;
				}
				piece[np++] = (struct range){a, b};
			}
		}
		if (!np || piece[0].a > m->start)
			if (add_seg(d, &alloc, m->start, np ? piece[0].a : m->end, 0, i) < 0)
				return -ENOMEM;
		for (size_t k = 0; k < np; k++)
			if (add_seg(d, &alloc, piece[k].a, k + 1 < np ? piece[k + 1].a : m->end,
				    piece[k].b - piece[k].a, i) < 0)
				return -ENOMEM;
	}
	return 0;
}

/* ---- notes ------------------------------------------------------------------------ */

static int note(struct strbuf *sb, const char *name, uint32_t type, const void *desc, size_t len)
{
	static const char zero[4];
	Elf64_Nhdr h = {(uint32_t)strlen(name) + 1, (uint32_t)len, type};
	size_t npad = (4 - h.n_namesz % 4) % 4, dpad = (4 - len % 4) % 4;

	if (strbuf_add(sb, &h, sizeof(h)) < 0 || strbuf_add(sb, name, h.n_namesz) < 0 ||
	    strbuf_add(sb, zero, npad) < 0 || strbuf_add(sb, desc, len) < 0 ||
	    strbuf_add(sb, zero, dpad) < 0)
		return -ENOMEM;
	return 0;
}

static struct timeval ticks_tv(uint64_t ticks)
{
	int64_t ns = pd_ticks_to_ns(ticks);

	return (struct timeval){.tv_sec = ns / 1000000000, .tv_usec = (ns % 1000000000) / 1000};
}

static int note_prstatus(struct dump *d, const struct pd_thread *t)
{
	struct elf_prstatus ps;

	memset(&ps, 0, sizeof(ps));
	ps.pr_info.si_signo = t->pending_sig;
	ps.pr_cursig = (short)t->pending_sig;
	ps.pr_pid = t->tid;
	ps.pr_ppid = d->stat.ppid;
	ps.pr_pgrp = d->stat.pgrp;
	ps.pr_sid = d->stat.session;
	for (size_t i = 0; i < d->tasks.n; i++)
		if (d->tasks.v[i].pid == t->tid) {
			ps.pr_utime = ticks_tv(d->tasks.v[i].utime);
			ps.pr_stime = ticks_tv(d->tasks.v[i].stime);
		}
	memcpy(&ps.pr_reg, &t->regs,
	       sizeof(ps.pr_reg) < sizeof(t->regs) ? sizeof(ps.pr_reg) : sizeof(t->regs));
	ps.pr_fpvalid = t->have_fpregs;
	return note(&d->notes, "CORE", NT_PRSTATUS, &ps, sizeof(ps));
}

static int note_prpsinfo(struct dump *d)
{
	static const char states[] = "RSDTZW";
	struct elf_prpsinfo ps;
	const char *s;
	size_t n;

	memset(&ps, 0, sizeof(ps));
	s = strchr(states, d->stat.state);
	ps.pr_state = s && d->stat.state ? (char)(s - states) : 0;
	ps.pr_sname = d->stat.state ? d->stat.state : '.';
	ps.pr_zomb = ps.pr_sname == 'Z';
	ps.pr_nice = (char)d->stat.nice;
	ps.pr_flag = d->stat.flags;
	ps.pr_uid = d->status.uid[0] >= 0 ? (unsigned)d->status.uid[0] : 0;
	ps.pr_gid = d->status.gid[0] >= 0 ? (unsigned)d->status.gid[0] : 0;
	ps.pr_pid = d->fz.pid;
	ps.pr_ppid = d->stat.ppid;
	ps.pr_pgrp = d->stat.pgrp;
	ps.pr_sid = d->stat.session;
	n = d->stat.comm_len < sizeof(ps.pr_fname) - 1 ? d->stat.comm_len : sizeof(ps.pr_fname) - 1;
	memcpy(ps.pr_fname, d->stat.comm, n);
	n = d->cmdline.len < sizeof(ps.pr_psargs) - 1 ? d->cmdline.len : sizeof(ps.pr_psargs) - 1;
	memcpy(ps.pr_psargs, d->cmdline.buf, n);
	for (size_t i = 0; i < n; i++)
		if (!ps.pr_psargs[i])
			ps.pr_psargs[i] = ' ';
	while (n && ps.pr_psargs[n - 1] == ' ')
		ps.pr_psargs[--n] = 0;
	return note(&d->notes, "CORE", NT_PRPSINFO, &ps, sizeof(ps));
}

static int note_siginfo(struct dump *d)
{
	const struct pd_thread *t = &d->fz.threads[0];
	siginfo_t si;

	/* No signal made this dump; a held signal of the first thread is the
	 * nearest thing to what the kernel records. */
	memset(&si, 0, sizeof(si));
	if (t->pending_sig && t->have_siginfo)
		si = t->siginfo;
	return note(&d->notes, "CORE", NT_SIGINFO, &si, sizeof(si));
}

/* NT_FILE: count, page size, (start, end, offset in pages) each, names. */
static int note_file(struct dump *d)
{
	struct strbuf desc = STRBUF_INIT, names = STRBUF_INIT;
	uint64_t hdr[2] = {0, d->page};
	int rc = -ENOMEM;

	if (strbuf_add(&desc, hdr, sizeof(hdr)) < 0)
		goto out;
	for (size_t i = 0; i < d->vmas.n; i++) {
		const struct pd_map *m = d->vmas.v[i].map;
		uint64_t e[3] = {m->start, m->end, m->offset / d->page};

		if (!m->path || m->path[0] != '/')
			continue;
		if (strbuf_add(&desc, e, sizeof(e)) < 0 || strbuf_addstr(&names, m->path) < 0 ||
		    (m->deleted && strbuf_addstr(&names, " (deleted)") < 0) ||
		    strbuf_add(&names, "", 1) < 0)
			goto out;
		hdr[0]++;
	}
	memcpy(desc.buf, hdr, sizeof(hdr));
	if (strbuf_add(&desc, names.buf, names.len) < 0)
		goto out;
	rc = note(&d->notes, "CORE", NT_FILE, desc.buf, desc.len);
out:
	strbuf_release(&desc);
	strbuf_release(&names);
	return rc;
}

/* A thread's regsets after NT_PRSTATUS, in the order of the kernel's
 * x86_64 regset table (arch/x86/kernel/ptrace.c): FP, IOPERM, XSTATE, SSP. */
static int note_regsets(struct dump *d, const struct pd_thread *t)
{
	if (t->have_fpregs &&
	    note(&d->notes, "CORE", NT_FPREGSET, &t->fpregs, sizeof(t->fpregs)) < 0)
		return -ENOMEM;
	if (t->ioperm && note(&d->notes, "LINUX", NT_386_IOPERM, t->ioperm, t->ioperm_size) < 0)
		return -ENOMEM;
	if (t->xstate && note(&d->notes, "LINUX", NT_X86_XSTATE, t->xstate, t->xstate_size) < 0)
		return -ENOMEM;
	if (t->have_ssp && note(&d->notes, "LINUX", NT_X86_SHSTK, &t->ssp, sizeof(t->ssp)) < 0)
		return -ENOMEM;
	return 0;
}

/* Linux 6.12 and later end the notes with NT_X86_XSAVE_LAYOUT (commit
 * ba386777a30b; arch/x86/kernel/fpu/xstate.c, elf_coredump_extra_notes_write). */
static bool kernel_writes_xsave_layout(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 12);
}

/* NT_X86_XSAVE_LAYOUT as the kernel writes it: for each extended user
 * xfeature it enabled (fpu_user_cfg.max_features, which it also puts in
 * every NT_X86_XSTATE at byte 464, the word gdb reads as XCR0), {type,
 * size, offset, flags 0}, size and offset from CPUID leaf 0xD as the
 * kernel reads them. Where the CPU has no XSAVE there is no NT_X86_XSTATE
 * and no layout from us. */
static int note_xsave_layout(struct dump *d)
{
	const struct pd_thread *t = &d->fz.threads[0];
	struct strbuf desc = STRBUF_INIT;
	uint64_t mask;
	int rc = 0;

	if (!t->xstate || t->xstate_size < 472 || !kernel_writes_xsave_layout())
		return 0;
	memcpy(&mask, (const char *)t->xstate + 464, sizeof(mask));
	for (unsigned i = 2; i < 64 && rc == 0; i++) {
		unsigned a, b, c, dd;
		uint32_t rec[4];

		if (!(mask & (1ull << i)))
			continue;
		if (!__get_cpuid_count(0xd, i, &a, &b, &c, &dd))
			a = b = 0;
		rec[0] = i;
		rec[1] = a;
		rec[2] = b;
		rec[3] = 0;
		rc = strbuf_add(&desc, rec, sizeof(rec));
	}
	if (rc == 0)
		rc = note(&d->notes, "LINUX", NT_X86_XSAVE_LAYOUT, desc.buf ? desc.buf : "",
			  desc.len);
	strbuf_release(&desc);
	return rc < 0 ? -ENOMEM : 0;
}

static int build_notes(struct dump *d)
{
	if (note_prstatus(d, &d->fz.threads[0]) < 0 || note_prpsinfo(d) < 0 ||
	    note_siginfo(d) < 0 || note(&d->notes, "CORE", NT_AUXV, d->auxv.buf, d->auxv.len) < 0 ||
	    note_file(d) < 0 || note_regsets(d, &d->fz.threads[0]) < 0)
		return -ENOMEM;
	for (size_t i = 1; i < d->fz.n; i++)
		if (note_prstatus(d, &d->fz.threads[i]) < 0 ||
		    note_regsets(d, &d->fz.threads[i]) < 0)
			return -ENOMEM;
	return note_xsave_layout(d);
}

/* ---- layout -------------------------------------------------------------------------- */

static bool xnum(const struct dump *d)
{
	return d->nsegs + 1 >= PN_XNUM;
}

static void layout(struct dump *d)
{
	uint64_t off = sizeof(Elf64_Ehdr) + (d->nsegs + 1) * sizeof(Elf64_Phdr) + d->notes.len;

	d->data_off = (off + d->page - 1) / d->page * d->page;
	if (d->data_off < d->data_off_min)
		d->data_off = d->data_off_min;
	off = d->data_off;
	for (size_t i = 0; i < d->nsegs; i++) {
		d->segs[i].off = off;
		off += d->segs[i].filesz;
	}
	d->size = off + (xnum(d) ? sizeof(Elf64_Shdr) : 0);
}

/* ELF header, program headers, notes (and the PN_XNUM section header). */
static int write_headers(struct dump *d)
{
	struct strbuf sb = STRBUF_INIT;
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint64_t nph = d->nsegs + 1;
	int rc = -ENOMEM;

	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = xnum(d) ? PN_XNUM : (Elf64_Half)nph;
	if (xnum(d)) {
		eh.e_shoff = d->size - sizeof(Elf64_Shdr);
		eh.e_shentsize = sizeof(Elf64_Shdr);
		eh.e_shnum = 1;
	}
	if (strbuf_add(&sb, &eh, sizeof(eh)) < 0)
		goto out;
	memset(&ph, 0, sizeof(ph));
	ph.p_type = PT_NOTE;
	ph.p_offset = sizeof(eh) + nph * sizeof(Elf64_Phdr);
	ph.p_filesz = d->notes.len;
	ph.p_align = 4;
	if (strbuf_add(&sb, &ph, sizeof(ph)) < 0)
		goto out;
	for (size_t i = 0; i < d->nsegs; i++) {
		memset(&ph, 0, sizeof(ph));
		ph.p_type = PT_LOAD;
		ph.p_offset = d->segs[i].off;
		ph.p_vaddr = d->segs[i].vaddr;
		ph.p_filesz = d->segs[i].filesz;
		ph.p_memsz = d->segs[i].memsz;
		ph.p_flags = d->segs[i].flags;
		ph.p_align = d->page;
		if (strbuf_add(&sb, &ph, sizeof(ph)) < 0)
			goto out;
	}
	if (strbuf_add(&sb, d->notes.buf, d->notes.len) < 0)
		goto out;
	rc = pd_pwrite_all(d->o->out_fd, sb.buf, sb.len, 0);
	if (rc == 0 && xnum(d)) {
		Elf64_Shdr sh;

		memset(&sh, 0, sizeof(sh));
		sh.sh_info = (Elf64_Word)nph;
		rc = pd_pwrite_all(d->o->out_fd, &sh, sizeof(sh), d->size - sizeof(sh));
	}
	if (rc < 0)
		d->res->write_failed = true;
out:
	strbuf_release(&sb);
	return rc;
}

/* ---- the dump -------------------------------------------------------------------------- */

static uint64_t mem_available(void)
{
	struct strbuf sb = STRBUF_INIT;
	uint64_t v = 0;
	const char *p;

	if (pd_read_file_at(AT_FDCWD, "/proc/meminfo", &sb, 1 << 16) == 0 &&
	    (p = strstr(sb.buf, "MemAvailable:")))
		v = strtoull(p + 13, NULL, 10) * 1024;
	strbuf_release(&sb);
	return v;
}

static int read_smaps(struct dump *d, struct pd_vmas *out);

/* The start of the command line, for NT_PRPSINFO's pr_psargs: one read of
 * that many bytes, however long the command line is (a Java or .NET one
 * can run to many KiB). */
static void read_psargs(struct dump *d)
{
	char buf[sizeof(((struct elf_prpsinfo *)0)->pr_psargs)];
	int fd = openat(d->fz.procfd, "cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf));
	if (n > 0)
		strbuf_add(&d->cmdline, buf, (size_t)n);
	close(fd);
}

/* What can be read before the stop: it makes the stop no longer. */
static int read_before(struct dump *d)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_proc p = {.pid = d->fz.pid, .dirfd = d->fz.procfd};
	int rc;

	rc = pd_read_stat_at(d->fz.procfd, "stat", &d->stat);
	if (rc < 0)
		goto out;
	memset(&d->status, 0xff, sizeof(d->status));
	if (pd_read_file_at(d->fz.procfd, "status", &sb, 1 << 16) == 0)
		pd_parse_status(sb.buf, sb.len, &d->status);
	strbuf_reset(&sb);
	read_psargs(d);
	d->filter = DEFAULT_FILTER;
	if (pd_read_file_at(d->fz.procfd, "coredump_filter", &sb, 64) == 0)
		d->filter = (unsigned)strtoul(sb.buf, NULL, 16);
	pd_proc_tasks(&p, &d->tasks); /* times only: failure leaves them 0 */
	/* smaps costs tens of ms per GiB mapped: read now, checked while
	 * stopped. A process whose smaps cannot be read now is tried again
	 * then. */
	if (read_smaps(d, &d->pre) < 0)
		pd_vmas_release(&d->pre);
	rc = 0;
out:
	strbuf_release(&sb);
	return rc == -ENOENT ? -ESRCH : rc;
}

/* Phase timings for whoever profiles the engine (dump-helper --trace). */
static void trace(struct dump *d, const char *what)
{
	uint64_t now = pd_mono_ns();

	if (d->o->trace) {
		fprintf(stderr, "dump-trace %-14s %8.3f ms (+%.3f)\n", what,
			(double)(now - d->t0) / 1e6, (double)(now - d->tlast) / 1e6);
		d->tlast = now;
	}
}

static int read_smaps(struct dump *d, struct pd_vmas *out)
{
	struct strbuf sb = STRBUF_INIT;
	char path[48];
	int rc;

	snprintf(path, sizeof(path), "task/%d/smaps", (int)(d->fz.io_tid ? d->fz.io_tid : d->fz.pid));
	rc = pd_read_file_at(d->fz.procfd, path, &sb, SMAPS_MAX);
	if (rc == 0)
		rc = pd_parse_smaps(sb.buf, sb.len, out);
	strbuf_release(&sb);
	if (rc == 0 && !out->n)
		rc = -ESRCH; /* an exited process has no mappings */
	return rc == -ENOENT ? -ESRCH : rc;
}

static bool same_map(const struct pd_map *a, const struct pd_map *b)
{
	return a->start == b->start && a->end == b->end && a->offset == b->offset &&
	       !memcmp(a->perms, b->perms, 4) && a->dev_major == b->dev_major &&
	       a->dev_minor == b->dev_minor && a->inode == b->inode &&
	       a->deleted == b->deleted &&
	       (a->path == b->path || (a->path && b->path && !strcmp(a->path, b->path)));
}

/* Whether any page of [a, b) is present or swapped; with anon_only, only
 * pages that are the process's own (not the file's: COWed or anonymous).
 * The zero page is not one: a mapping a debugger only read stays
 * untouched. */
static bool any_page(struct dump *d, uint64_t a, uint64_t b, bool anon_only)
{
	uint64_t pm[512];

	if (pd_copy_open_pagemap(&d->copy) < 0)
		return true; /* cannot tell: assume so */
	while (a < b) {
		size_t want = (b - a) / d->page < 512 ? (size_t)((b - a) / d->page) : 512;
		ssize_t got = pread(d->copy.pagemapfd, pm, want * 8, (off_t)(a / d->page * 8));

		if (got < 8)
			return true;
		pd_copy_zero_pages(&d->copy, a, (size_t)got / 8, pm);
		for (size_t i = 0; i < (size_t)got / 8; i++)
			if ((pm[i] & (PD_PM_PRESENT | PD_PM_SWAPPED)) &&
			    !(anon_only && (pm[i] & PD_PM_FILE) && !(pm[i] & PD_PM_SWAPPED)))
				return true;
		a += (uint64_t)got / 8 * d->page;
	}
	return false;
}

/* The mappings while stopped. smaps walks every page table entry (tens
 * of ms per GiB), so it was read before the stop; here only maps is read,
 * and when it is the same, smaps' fields are taken as they were. What a
 * running process can change without changing maps is checked with
 * pagemap: a mapping untouched before may have been touched since, a
 * writable file mapping may have COWed pages now. When maps changed,
 * smaps is read again. */
static int stopped_vmas(struct dump *d)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_maps maps = PD_MAPS_INIT;
	char path[48];
	bool same;
	int rc;

	snprintf(path, sizeof(path), "task/%d/maps", (int)d->fz.io_tid);
	rc = pd_read_file_at(d->fz.procfd, path, &sb, SMAPS_MAX);
	if (rc == 0)
		rc = pd_parse_maps(sb.buf, sb.len, &maps);
	strbuf_release(&sb);
	same = rc == 0 && d->pre.n && maps.n == d->pre.n;
	for (size_t i = 0; same && i < maps.n; i++)
		same = same_map(&maps.v[i], d->pre.v[i].map);
	pd_maps_release(&maps);
	if (!same) {
		trace(d, "maps changed");
		return read_smaps(d, &d->vmas);
	}
	d->vmas = d->pre;
	d->pre = (struct pd_vmas)PD_VMAS_INIT;
	if (!d->o->content)
		return 0; /* the mini base does not look at these */
	for (size_t i = 0; i < d->vmas.n; i++) {
		struct pd_vma *v = &d->vmas.v[i];
		const struct pd_map *m = v->map;

		if (vma_special(m) || vma_shared(m) ||
		    (v->vmflags & (PD_VM_DD | PD_VM_IO | PD_VM_PF | PD_VM_HT)))
			continue;
		if (vma_anon(m) && v->rss + v->swap == 0 && any_page(d, m->start, m->end, false))
			v->rss = d->page;
		else if (!vma_anon(m) && m->perms[1] == 'w' && v->anonymous + v->swap == 0 &&
			 any_page(d, m->start, m->end, true))
			v->anonymous = d->page;
	}
	return 0;
}

/* The copy runs of the planned segments, in file order. plan() and
 * provisional() must agree on them (the mapped output is laid out from the
 * provisional ones), so both call this. */
static int plan_runs(struct dump *d, struct pd_runs *out)
{
	for (size_t i = 0; i < d->nsegs; i++) {
		const struct seg *s = &d->segs[i];
		const struct pd_vma *v = &d->vmas.v[s->vma];
		const struct pd_map *m = v->map;
		bool anon = vma_anon(m) && !vma_shared(m) && !(v->vmflags & PD_VM_HT);
		int rc;

		/* [vvar] and other device memory: dumped as holes, never read
		 * (they cannot be, and reading device memory has effects). */
		if (!s->filesz || (v->vmflags & (PD_VM_IO | PD_VM_PF)))
			continue;
		/* pagemap tells the untouched pages of anonymous memory; a
		 * mapping that is resident all through has none. */
		rc = pd_copy_plan(&d->copy, s->vaddr, s->filesz, s->off,
				  anon && v->rss + v->swap < m->end - m->start, out);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* With every thread stopped: the maps, auxv, what to dump, the layout,
 * which pages to read. */
/* Does any mapping hold what a clone does not carry (copy_unforkable())? */
static bool unforkable(const struct dump *d)
{
	for (size_t i = 0; i < d->vmas.n; i++)
		if (d->vmas.v[i].vmflags & (PD_VM_DC | PD_VM_WF))
			return true;
	return false;
}

/* With defer (a clone is to be made), the pages to read are left to be
 * planned from the clone's pagemap once the target runs again (its pages
 * at the instant), unless some must be read from the target while frozen.
 * d->runs_planned says which. */
static int plan(struct dump *d, bool defer)
{
	char path[48];
	int rc;

	rc = stopped_vmas(d);
	trace(d, "maps");
	if (rc < 0)
		return fail(d, rc, "reading the mappings: %s", strerror(-rc));
	/* auxv never changes: read before the stop when the output was
	 * planned then, else now (through a live thread: the leader may be a
	 * zombie whose auxv reads empty). */
	if (!d->auxv.len) {
		snprintf(path, sizeof(path), "task/%d/auxv", (int)d->fz.io_tid);
		pd_read_file_at(d->fz.procfd, path, &d->auxv, 1 << 16);
	}
	if (mini_base(d) < 0 || build_segs(d) < 0 || build_notes(d) < 0)
		return fail(d, -ENOMEM, "out of memory planning the core");
	layout(d);
	trace(d, "layout");
	d->copy.zero_pages = 0;
	if (defer && !unforkable(d))
		return 0;
	rc = plan_runs(d, &d->runs);
	if (rc < 0)
		return fail(d, rc, "planning the copy: %s", strerror(-rc));
	d->runs_planned = true;
	return 0;
}

/* ---- the output mapped before the stop --------------------------------------- */

/* The size of a thread's NT_X86_XSTATE: what this CPU's xsave area may
 * take (CPUID 0xD: ECX, all features it supports). */
static uint64_t xstate_guess(void)
{
	unsigned a, b, c, dd;

	if (__get_cpuid_count(0xd, 0, &a, &b, &c, &dd) && c >= 512 && c <= (1u << 20))
		return c;
	return 16384;
}

/* The plan as far as it can be made before the stop, from smaps and
 * without registers: where the runs will land in the file. The headers
 * and notes are given room for as many threads, pieces and xsave bytes as
 * they may need (what is left over is padding before the data), so that
 * the data offsets come out the same once stopped unless the mappings
 * changed. */
static int provisional(struct dump *d)
{
	uint64_t nthr = d->tasks.n ? d->tasks.n : 1, notes, off;
	int rc = -ENOMEM;

	d->vmas = d->pre; /* borrowed: d->pre keeps owning it */
	pd_read_file_at(d->fz.procfd, "auxv", &d->auxv, 1 << 16);
	if (mini_base(d) < 0 || build_segs(d) < 0 || note_file(d) < 0)
		goto out;
	notes = d->notes.len + d->auxv.len + 2048 + 1024 /* NT_X86_XSAVE_LAYOUT */ +
		nthr * (sizeof(struct elf_prstatus) + sizeof(struct user_fpregs_struct) +
			xstate_guess() + 64 + 32 /* NT_X86_SHSTK */);
	off = sizeof(Elf64_Ehdr) + (d->nsegs + 17 + 4 * nthr) * sizeof(Elf64_Phdr) + notes;
	d->data_off_min = (off + d->page - 1) / d->page * d->page;
	layout(d);
	d->prov_size = d->size;
	rc = plan_runs(d, &d->prov);
out:
	d->vmas = (struct pd_vmas)PD_VMAS_INIT;
	free(d->mini.v);
	d->mini = (struct ranges){0, 0, NULL};
	free(d->segs);
	d->segs = NULL;
	d->nsegs = 0;
	strbuf_reset(&d->notes); /* auxv stays: plan() uses it */
	if (d->copy.pagemapfd >= 0)
		close(d->copy.pagemapfd); /* it named the leader; io_tid comes later */
	d->copy.pagemapfd = -1;
	return rc;
}

static int allocate(int fd, uint64_t off, uint64_t len)
{
	if (len && fallocate(fd, 0, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

/* Calls fn(fd, off, len) for each stretch of the file that a's runs cover
 * and b's do not (both in file order), adjacent runs taken together. */
static int uncovered(const struct pd_runs *a, const struct pd_runs *b, int fd,
		     int (*fn)(int fd, uint64_t off, uint64_t len))
{
	uint64_t ps = 0, pe = 0; /* pending stretch */
	size_t j = 0;
	int rc;

	for (size_t i = 0; i < a->n; i++) {
		uint64_t s = a->v[i].off, e = s + a->v[i].len;

		while (s < e) {
			uint64_t ce;

			while (j < b->n && b->v[j].off + b->v[j].len <= s)
				j++;
			if (j < b->n && b->v[j].off <= s) {
				s = b->v[j].off + b->v[j].len; /* covered up to there */
				continue;
			}
			ce = j < b->n && b->v[j].off < e ? b->v[j].off : e;
			if (pe != s) {
				rc = fn(fd, ps, pe - ps);
				if (rc < 0)
					return rc;
				ps = s;
			}
			pe = ce;
			s = ce;
		}
	}
	return fn(fd, ps, pe - ps);
}

/* Before the stop: the output sized as planned, the planned runs'
 * blocks allocated (ENOSPC shows now, with the target still running, and
 * a shared mapping's page faults cannot fail for lack of room), mapped
 * and faulted in. While stopped the copy is then a memory copy into the
 * page cache: it is also the write. -EOPNOTSUPP: the output cannot be used
 * that way (no fallocate, no mmap); the RAM path is taken. */
static int map_output(struct dump *d)
{
	static const struct pd_runs none = PD_RUNS_INIT;
	int fd = d->o->out_fd, rc;

	if (ftruncate(fd, (off_t)d->prov_size) < 0)
		return -errno;
	rc = uncovered(&d->prov, &none, fd, allocate);
	if (rc == -EOPNOTSUPP || rc == -ENOSYS)
		return -EOPNOTSUPP;
	if (rc < 0)
		return rc;
	trace(d, "fallocated");
	d->map_len = d->prov_size + d->prov_size / 4 + MAP_SLACK;
	d->map_len -= d->map_len % d->page;
	d->map = mmap(NULL, d->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (d->map == MAP_FAILED) {
		d->map = NULL;
		return -EOPNOTSUPP;
	}
	/* Faulting in a page of a file reads ahead around it: a blessing for
	 * a long run (its neighbours come with it), a curse for the many
	 * short ones (a thread's few stack pages: ms each, for pages never
	 * used). So no read-ahead, except over long runs. */
	madvise(d->map, d->map_len, MADV_RANDOM);
	for (size_t i = 0; i < d->prov.n; i++) {
		const struct pd_run *r = &d->prov.v[i];
		size_t len = (size_t)r->len;

		/* Runs adjacent in the file in one call. */
		while (i + 1 < d->prov.n && d->prov.v[i + 1].off == r->off + len)
			len += (size_t)d->prov.v[++i].len;
		if (len >= READAHEAD_MIN)
			madvise(d->map + r->off, len, MADV_NORMAL);
		if (madvise(d->map + r->off, len, MADV_POPULATE_WRITE) < 0 && errno == EINVAL)
			break; /* before Linux 5.14: the copy faults them in */
	}
	return 0;
}

/* Stopped, with the real plan: the file at its size, the mapping large
 * enough, the blocks of runs that were not foreseen allocated. */
static int remap_output(struct dump *d)
{
	int fd = d->o->out_fd;

	if (d->size != d->prov_size && ftruncate(fd, (off_t)d->size) < 0)
		return -errno;
	if (d->size > d->map_len) {
		munmap(d->map, d->map_len);
		d->map_len = d->size;
		d->map = mmap(NULL, d->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (d->map == MAP_FAILED) {
			d->map = NULL;
			return -errno;
		}
	}
	return uncovered(&d->runs, &d->prov, fd, allocate);
}

/* Zero pages copied into the mapped output are dirty page cache; on a
 * disk file system punching a hole there writes that range back first
 * (measured here: 0.2-2 ms a hole), so only long stretches of zeros become
 * holes. In memory (tmpfs, memfd) every zero page does. */
static uint64_t min_hole(int fd, uint64_t page)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC))
		return page;
	return MIN_HOLE_DISK;
}

/* The parts of the runs in mappings a fork does not carry as they are
 * (VmFlags dc: MADV_DONTFORK, gone from the clone; wf: MADV_WIPEONFORK,
 * zeros in it): read from the target while it is still frozen, into
 * d->frzbuf, written over the core once the rest is. */
static int copy_unforkable(struct dump *d)
{
	for (size_t i = 0; i < d->vmas.n; i++) {
		const struct pd_vma *v = &d->vmas.v[i];
		uint64_t s = v->map->start, e = v->map->end;

		if (!(v->vmflags & (PD_VM_DC | PD_VM_WF)))
			continue;
		for (size_t j = 0; j < d->runs.n; j++) {
			const struct pd_run *r = &d->runs.v[j];
			uint64_t a = r->addr > s ? r->addr : s;
			uint64_t b = r->addr + r->len < e ? r->addr + r->len : e;
			struct pd_run *nv;

			if (a >= b)
				continue;
			if (d->frz.n == d->frz.alloc) {
				size_t na = d->frz.alloc ? d->frz.alloc * 2 : 16;

				nv = realloc(d->frz.v, na * sizeof(*nv));
				if (!nv)
					return -ENOMEM;
				d->frz.v = nv;
				d->frz.alloc = na;
			}
			d->frz.v[d->frz.n++] = (struct pd_run){a, b - a, r->off + (a - r->addr)};
			d->frz.bytes += b - a;
		}
	}
	if (!d->frz.bytes)
		return 0;
	d->frzbuf = malloc(d->frz.bytes);
	if (!d->frzbuf)
		return -ENOMEM;
	return pd_copy_read(&d->copy, d->frz.v, d->frz.n, d->frzbuf);
}

/* After the rest of the core is written: the frozen copies over it. */
static int write_unforkable(struct dump *d)
{
	uint64_t at = 0;

	for (size_t i = 0; i < d->frz.n; i++) {
		int rc = pd_pwrite_all(d->o->out_fd, d->frzbuf + at, d->frz.v[i].len,
				       d->frz.v[i].off);

		if (rc < 0)
			return rc;
		at += d->frz.v[i].len;
	}
	return 0;
}

/* Frozen, planned: copies what the clone will not carry, then clones. On
 * any failure the dump goes on stopped, with the reason in res. */
static void try_clone(struct dump *d)
{
	sigset_t all, old;
	int rc = copy_unforkable(d);

	if (rc < 0) {
		snprintf(d->res->reason, sizeof(d->res->reason),
			 "copying the mappings a clone does not carry: %s", strerror(-rc));
		return;
	}
	/* No signal handler of ours runs between the clone's birth and the
	 * caller's knowing its pid (the helper's handler reaps it). */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	rc = pd_cow_clone(&d->fz, &d->cow, d->res->reason, sizeof(d->res->reason));
	if (d->cow.pid && d->o->cloned)
		d->o->cloned(d->o->progress_arg, d->cow.pid);
	sigprocmask(SIG_SETMASK, &old, NULL);
	trace(d, "cloned");
	if (rc < 0)
		return;
	d->res->cloned = true;
	d->res->reason[0] = 0;
	d->res->frozen_bytes = d->frz.bytes;
	d->copy.src = d->cow.pid;
	d->copy.srcmem = d->cow.memfd;
	/* The clone holds the instant: the target runs on. */
	pd_freeze_thaw(&d->fz);
	trace(d, "thawed");
	pd_hook_cloned(d->o->cancel);
}

/* Did the clone die under us (killed: an OOM kill prefers it)? */
static bool clone_died(struct dump *d)
{
	int st;

	return waitpid(d->cow.pid, &st, __WALL | WNOHANG) == d->cow.pid &&
	       (WIFEXITED(st) || WIFSIGNALED(st));
}

static const char *errtext(int rc)
{
	switch (rc) {
	case -ESRCH: return "no such process";
	case -EOWNERDEAD: return "the process is a zombie";
	case -EOPNOTSUPP: return "a kernel thread has no memory to dump";
	case -EPERM: return "ptrace refused";
	case -ETIMEDOUT: return "a thread did not stop before the deadline";
	default: return strerror(-rc);
	}
}

int pd_core_dump(const struct pd_core_opts *o, struct pd_core_result *res, char *err, size_t errlen)
{
	struct dump d;
	struct pd_progress pr = {o->progress, o->progress_arg, 0, 0, 0};
	char *ram = MAP_FAILED;
	uint64_t budget, ram_size = 0;
	struct stat st;
	uint64_t t_copy = 0;
	bool want_clone;
	int rc;

	memset(&d, 0, sizeof(d));
	d.cow = (struct pd_cow)PD_COW_INIT;
	memset(res, 0, sizeof(*res));
	if (err && errlen)
		err[0] = 0;
	d.o = o;
	d.res = res;
	d.err = err;
	d.errlen = errlen;
	d.page = (uint64_t)sysconf(_SC_PAGESIZE);
	d.t0 = d.tlast = pd_mono_ns();
	strbuf_init(&d.cmdline);
	strbuf_init(&d.auxv);
	strbuf_init(&d.notes);

	/* Emptied only when it is not empty: ext4 takes a truncation to 0
	 * for a file being replaced and starts writing all of it back when
	 * it is closed (auto_da_alloc), 0.5 s for a GiB in the closing
	 * process. */
	if ((fstat(o->out_fd, &st) < 0 || st.st_size != 0) && ftruncate(o->out_fd, 0) < 0) {
		res->write_failed = true;
		return fail(&d, -errno, "the output is not a writable file: %s", strerror(errno));
	}
	rc = pd_freeze_open(&d.fz, o->pid, o->start_time, o->scope);
	if (rc < 0)
		return fail(&d, rc, "process %d: %s", (int)o->pid, errtext(rc));
	pd_copy_init(&d.copy, &d.fz);
	rc = read_before(&d);
	if (rc < 0) {
		fail(&d, rc, "process %d: %s", (int)o->pid, errtext(rc));
		goto out;
	}

	/* A clone for every dump that copies memory, unless it cannot be
	 * had (lib/cowclone.h): then the target stays stopped for the copy. */
	want_clone = false;
	if (o->content) {
		want_clone = pd_cow_precheck(
				     &d.fz, d.status.rss_anon > 0 ? (uint64_t)d.status.rss_anon : 0,
				     res->reason, sizeof(res->reason)) == 0;
		trace(&d, "prechecked");
	}

	/* The RAM copy's buffer is allocated and faulted in before the stop:
	 * zeroing hundreds of MiB is as slow as copying them. Sized from the
	 * resident set; if the plan needs more, the rest is found while
	 * stopped. */
	budget = o->mem_budget ? o->mem_budget : mem_available() / 2;
	/* Content beyond the mini base goes straight into the output, mapped
	 * and faulted in before the stop (when smaps could be read and the
	 * page cache has room for it); else into RAM as below. */
	if (o->content && d.pre.n && !want_clone) {
		rc = provisional(&d);
		trace(&d, "provisional");
		if (rc == 0 && d.prov.bytes <= budget) {
			rc = map_output(&d);
			if (rc == -EOPNOTSUPP) {
				if (d.map)
					munmap(d.map, d.map_len);
				d.map = NULL;
				rc = 0;
			}
		}
		if (rc < 0) {
			res->write_failed = rc != -ENOMEM;
			fail(&d, rc, "preparing the core: %s", strerror(-rc));
			goto out;
		}
		trace(&d, "mapped");
	}
	if (o->content && !d.map && !want_clone) {
		struct pd_proc p = {.pid = d.fz.pid, .dirfd = d.fz.procfd};
		struct pd_rollup ru;

		if (pd_proc_rollup(&p, &ru) == 0 && ru.rss > 0) {
			uint64_t want = (uint64_t)ru.rss + (ru.swap > 0 ? (uint64_t)ru.swap : 0);

			want += want / 8 + (4u << 20);
			want -= want % d.page;
			if (want <= budget) {
				ram = mmap(NULL, want, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
				if (ram != MAP_FAILED)
					ram_size = want;
			}
		}
	}

	trace(&d, "prepared");
	rc = pd_freeze_stop(&d.fz, o->deadline_ms);
	trace(&d, "frozen");
	if (rc < 0) {
		fail(&d, rc, "freezing process %d: %s", (int)o->pid, errtext(rc));
		goto out;
	}
	pd_hook_frozen(PD_HOOK_DUMP);
	rc = plan(&d, want_clone);
	if (rc < 0)
		goto out;
	trace(&d, "planned");
	res->threads = (unsigned)d.fz.n;
	res->mappings = (unsigned)d.vmas.n;
	res->segments = (unsigned)d.nsegs;
	res->size = d.size;
	if (want_clone)
		try_clone(&d);
	else if (!res->reason[0])
		snprintf(res->reason, sizeof(res->reason), "%s",
			 !o->content ? "a mini dump copies little" : "the clone was not tried");
	if (!d.runs_planned) {
		/* From the clone's pagemap, the target running; or from the
		 * target's, still frozen, when the clone failed. */
		if (res->cloned) {
			if (d.copy.pagemapfd >= 0)
				close(d.copy.pagemapfd);
			d.copy.pagemapfd = openat(d.cow.procfd, "pagemap", O_RDONLY | O_CLOEXEC);
			/* Zero pages are asked of the clone too (move_pages). */
			d.copy.pm_tid = d.cow.pid;
		}
		rc = plan_runs(&d, &d.runs);
		if (rc < 0) {
			fail(&d, rc, "planning the copy: %s", strerror(-rc));
			goto out;
		}
		d.runs_planned = true;
		trace(&d, "pages planned");
	}
	res->copied_bytes = d.runs.bytes;
	res->zero_bytes = d.copy.zero_pages * d.page;
	res->zero_method = pd_zero_method_name(d.copy.zero_method);
	pr.total = d.runs.bytes;

	if (d.map) {
		/* Into the mapped output (while stopped, or from the clone). */
		rc = remap_output(&d);
		if (rc < 0) {
			res->write_failed = true;
			fail(&d, rc, "writing the core: %s", strerror(-rc));
			goto out;
		}
		t_copy = pd_mono_ns();
		rc = d.runs.bytes ? pd_copy_read_at(&d.copy, d.runs.v, d.runs.n, d.map) : 0;
		if (rc < 0) {
			fail(&d, rc, "copying memory: %s", strerror(-rc));
			goto out;
		}
	} else if (!res->cloned && d.runs.bytes <= budget) {
		/* Into RAM while stopped, to the file after the thaw. */
		t_copy = pd_mono_ns();
		if (d.runs.bytes > ram_size) {
			if (ram != MAP_FAILED)
				munmap(ram, ram_size);
			ram_size = 0;
			ram = mmap(NULL, d.runs.bytes, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
			if (ram != MAP_FAILED)
				ram_size = d.runs.bytes;
		}
		if (d.runs.bytes <= ram_size) {
			res->in_ram = true;
			rc = d.runs.bytes ? pd_copy_read(&d.copy, d.runs.v, d.runs.n, ram) : 0;
			if (rc < 0) {
				fail(&d, rc, "copying memory: %s", strerror(-rc));
				goto out;
			}
		}
	}
	if (!res->in_ram && !d.map) {
		bool wf;

		trace(&d, "direct");
		if (!t_copy)
			t_copy = pd_mono_ns();
		rc = pd_copy_direct(&d.copy, &d.runs, o->out_fd, DIRECT_BUF, &res->dumped_bytes,
				    &pr, &wf);
		if (rc < 0) {
			res->write_failed = wf;
			fail(&d, rc, "%s: %s", wf ? "writing the core" : "copying memory",
			     strerror(-rc));
			goto out;
		}
	}
	if (res->cloned ? clone_died(&d) : pd_freeze_gone(&d.fz)) {
		rc = fail(&d, -ESRCH,
			  res->cloned ? "the clone of process %d was killed during the dump"
				      : "process %d exited during the dump",
			  (int)o->pid);
		goto out;
	}
	if (o->cancel && *o->cancel) {
		rc = fail(&d, -ECANCELED, "cancelled: the helper's caller went away");
		goto out;
	}
	if (res->cloned)
		res->extra_memory = pd_cow_extra(&d.cow);
	trace(&d, "copied");
	pd_freeze_thaw(&d.fz);
	trace(&d, "thawed");

	if (d.map) {
		/* What was planned but not copied, and the zero pages: holes. */
		rc = uncovered(&d.prov, &d.runs, o->out_fd, pd_punch);
		if (rc == 0)
			rc = pd_copy_holes(o->out_fd, d.runs.v, d.runs.n, d.map,
					   min_hole(o->out_fd, d.page), &res->dumped_bytes, &pr);
		munmap(d.map, d.map_len);
		d.map = NULL;
		if (rc < 0) {
			res->write_failed = true;
			fail(&d, rc, "writing the core: %s", strerror(-rc));
			goto out;
		}
	}
	if (res->in_ram && d.runs.bytes) {
		rc = pd_copy_write(o->out_fd, d.runs.v, d.runs.n, ram, &res->dumped_bytes, &pr);
		if (rc < 0) {
			res->write_failed = true;
			fail(&d, rc, "writing the core: %s", strerror(-rc));
			goto out;
		}
	}
	rc = write_unforkable(&d);
	if (rc == 0)
		rc = write_headers(&d);
	if (rc < 0) {
		res->write_failed = rc != -ENOMEM;
		fail(&d, rc, "writing the core: %s", strerror(-rc));
		goto out;
	}
	if (ftruncate(o->out_fd, (off_t)d.size) < 0) {
		rc = -errno;
		res->write_failed = true;
		fail(&d, rc, "sizing the core: %s", strerror(-rc));
		goto out;
	}
	if (pr.fn && pr.total && pr.last != pr.done)
		pr.fn(pr.arg, pr.done, pr.total);
	if (t_copy)
		res->copy_us = (pd_mono_ns() - t_copy) / 1000u;
	trace(&d, "written");
out:
	pd_freeze_thaw(&d.fz);
	res->stopped_us = pd_freeze_stopped_us(&d.fz);
	res->freezing_us = pd_freeze_freezing_us(&d.fz);
	if (d.cow.pid || d.cow.procfd >= 0) {
		sigset_t all, old;

		/* Its pid is no longer the caller's to kill; no handler of the
		 * caller's runs while a thread of the target reaps it. */
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, &old);
		if (o->cloned)
			o->cloned(o->progress_arg, 0);
		pd_cow_release(&d.cow, &d.fz);
		sigprocmask(SIG_SETMASK, &old, NULL);
		trace(&d, "clone reaped");
	}
	free(d.frzbuf);
	pd_runs_release(&d.frz);
	if (ram != MAP_FAILED)
		munmap(ram, ram_size);
	if (d.map)
		munmap(d.map, d.map_len);
	pd_runs_release(&d.prov);
	pd_copy_release(&d.copy);
	pd_freeze_close(&d.fz);
	pd_runs_release(&d.runs);
	pd_vmas_release(&d.vmas);
	pd_vmas_release(&d.pre);
	pd_tasks_release(&d.tasks);
	free(d.mini.v);
	free(d.segs);
	strbuf_release(&d.cmdline);
	strbuf_release(&d.auxv);
	strbuf_release(&d.notes);
	trace(&d, "released");
	return rc;
}
