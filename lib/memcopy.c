#include "config.h"

#include "lib/memcopy.h"

#include <errno.h>
#include <linux/falloc.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/testhooks.h"

#define PM_PRESENT PD_PM_PRESENT
#define PM_SWAPPED PD_PM_SWAPPED
#define PM_BATCH   8192u /* pagemap entries per pread (32 MiB of address space) */
#define PM_EXCL	   PD_PM_EXCLUSIVE
#define RV_IOV_MAX 1024u /* remote iovecs per process_vm_readv (UIO_MAXIOV) */
/* Bytes per process_vm_readv: large enough that the syscall cost vanishes,
 * small enough that a failing page costs little to locate. */
#define RV_MAX_BYTES (256u << 20)

/* ---- smaps ---------------------------------------------------------------- */

static bool is_header(const char *l, size_t n)
{
	size_t i = 0;

	while (i < n && ((l[i] >= '0' && l[i] <= '9') || (l[i] >= 'a' && l[i] <= 'f')))
		i++;
	return i > 0 && i < n && l[i] == '-';
}

/* "Key:   123 kB" -> bytes. */
static uint64_t kb_value(const char *l, size_t n, size_t klen)
{
	uint64_t v = 0;
	size_t i = klen;

	while (i < n && l[i] == ' ')
		i++;
	while (i < n && l[i] >= '0' && l[i] <= '9' && v < (UINT64_MAX / 10240))
		v = v * 10 + (uint64_t)(l[i++] - '0');
	return v * 1024;
}

static unsigned vmflags(const char *l, size_t n)
{
	static const struct {
		char name[3];
		unsigned bit;
	} names[] = {
		{"dd", PD_VM_DD}, {"io", PD_VM_IO}, {"ht", PD_VM_HT}, {"pf", PD_VM_PF},
		{"sh", PD_VM_SH}, {"dc", PD_VM_DC}, {"wf", PD_VM_WF},
	};
	unsigned f = 0;

	/* "VmFlags: rd wr mr mw me ac sd " : two-letter words. */
	for (size_t i = 8; i + 1 < n; i++) {
		if (l[i] == ' ')
			continue;
		if (i + 2 <= n && (i + 2 == n || l[i + 2] == ' '))
			for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
				if (l[i] == names[k].name[0] && l[i + 1] == names[k].name[1])
					f |= names[k].bit;
		while (i < n && l[i] != ' ')
			i++;
	}
	return f;
}

#define KEY(l, n, k) ((n) > sizeof(k) - 1 && !memcmp((l), (k), sizeof(k) - 1))

int pd_parse_smaps(const char *buf, size_t len, struct pd_vmas *out)
{
	struct strbuf hdr = STRBUF_INIT;
	struct pd_vmas v = PD_VMAS_INIT;
	size_t nhdr = 0, k = SIZE_MAX, alloc = 0;
	const char *p = buf, *end = buf + len;
	int rc = 0;

	*out = v;
	/* First pass: the header lines are maps lines; parse them with the
	 * maps parser the project already has. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (!nl) {
			rc = -EINVAL; /* cut short; hdr may hold lines already */
			goto out;
		}
		n = (size_t)(nl - p);
		if (is_header(p, n)) {
			if (strbuf_add(&hdr, p, n + 1) < 0) {
				rc = -ENOMEM;
				goto out;
			}
			nhdr++;
		}
		p = nl + 1;
	}
	rc = pd_parse_maps(hdr.buf, hdr.len, &v.maps);
	if (rc < 0)
		goto out;
	if (v.maps.n != nhdr) {
		rc = -EINVAL;
		goto out;
	}
	alloc = v.maps.n ? v.maps.n : 1;
	v.v = calloc(alloc, sizeof(*v.v));
	if (!v.v) {
		rc = -ENOMEM;
		goto out;
	}
	v.n = v.maps.n;
	for (size_t i = 0; i < v.n; i++)
		v.v[i].map = &v.maps.v[i];
	/* Second pass: the fields of each mapping. */
	for (p = buf; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);

		if (is_header(p, n)) {
			k = k == SIZE_MAX ? 0 : k + 1;
		} else if (k < v.n) {
			if (KEY(p, n, "Rss:"))
				v.v[k].rss = kb_value(p, n, 4);
			else if (KEY(p, n, "Swap:"))
				v.v[k].swap = kb_value(p, n, 5);
			else if (KEY(p, n, "Anonymous:"))
				v.v[k].anonymous = kb_value(p, n, 10);
			else if (KEY(p, n, "VmFlags:"))
				v.v[k].vmflags = vmflags(p, n);
		}
		p = nl + 1;
	}
	*out = v;
	v.v = NULL;
	v.maps = (struct pd_maps)PD_MAPS_INIT;
out:
	strbuf_release(&hdr);
	free(v.v);
	pd_maps_release(&v.maps);
	return rc;
}

void pd_vmas_release(struct pd_vmas *v)
{
	free(v->v);
	pd_maps_release(&v->maps);
	v->v = NULL;
	v->n = 0;
}

/* ---- planning --------------------------------------------------------------- */

void pd_runs_release(struct pd_runs *r)
{
	free(r->v);
	*r = (struct pd_runs)PD_RUNS_INIT;
}

static int add_run(struct pd_runs *r, uint64_t addr, uint64_t len, uint64_t off)
{
	if (!len)
		return 0;
	if (r->n) {
		struct pd_run *l = &r->v[r->n - 1];

		if (l->addr + l->len == addr && l->off + l->len == off) {
			l->len += len;
			r->bytes += len;
			return 0;
		}
	}
	if (r->n == r->alloc) {
		size_t na = r->alloc ? r->alloc * 2 : 256;
		struct pd_run *nv = realloc(r->v, na * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->alloc = na;
	}
	r->v[r->n++] = (struct pd_run){addr, len, off};
	r->bytes += len;
	return 0;
}

void pd_copy_init(struct pd_copy *c, struct pd_freeze *fz)
{
	memset(c, 0, sizeof(*c));
	c->fz = fz;
	c->pagemapfd = -1;
	c->srcmem = -1;
	c->page = (size_t)sysconf(_SC_PAGESIZE);
	c->zero_method = (enum pd_zero_method)pd_hook_zero_method(PD_ZERO_SCAN);
}

void pd_copy_release(struct pd_copy *c)
{
	if (c->pagemapfd >= 0)
		close(c->pagemapfd);
	c->pagemapfd = -1;
	free(c->pm);
	c->pm = NULL;
	free(c->zbuf);
	c->zbuf = NULL;
}

int pd_copy_open_pagemap(struct pd_copy *c)
{
	char path[48];

	if (c->pagemapfd >= 0)
		return 0;
	if (!c->pm) {
		c->pm = malloc(PM_BATCH * sizeof(*c->pm));
		if (!c->pm)
			return -ENOMEM;
	}
	c->pm_tid = c->fz->io_tid ? c->fz->io_tid : c->fz->pid;
	snprintf(path, sizeof(path), "task/%d/pagemap", (int)c->pm_tid);
	c->pagemapfd = openat(c->fz->procfd, path, O_RDONLY | O_CLOEXEC);
	return c->pagemapfd < 0 ? -errno : 0;
}

/* ---- zero pages ------------------------------------------------------------- */

/* PAGEMAP_SCAN's ABI (include/uapi/linux/fs.h, Linux 6.7), spelled here
 * so that older headers build it; the ioctl number encodes the size. */
struct pd_pm_region {
	uint64_t start, end, categories;
};
struct pd_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PD_PAGEMAP_SCAN	   _IOWR('f', 16, struct pd_pm_scan_arg)
#define PD_PAGE_IS_PFNZERO (1ull << 5)
#define ZSCAN_REGIONS	   512u

const char *pd_zero_method_name(enum pd_zero_method m)
{
	switch (m) {
	case PD_ZERO_SCAN: return "pagemap_scan";
	case PD_ZERO_MOVE_PAGES: return "move_pages";
	default: return "none";
	}
}

/* Whether pagemap entry e may map the zero page: present, and not known
 * to be this process's own page (the zero page is nobody's: never
 * PM_MMAP_EXCLUSIVE; the huge zero page may read as a file page). A page
 * shared with a fork child or merged by KSM is a candidate too: the
 * methods below tell it from the zero page. */
static bool zero_candidate(uint64_t e)
{
	return (e & PM_PRESENT) && (!(e & PM_EXCL) || (e & PD_PM_FILE));
}

/* Clears the entries of pm[] (pages from va) that PAGEMAP_SCAN reports as
 * PAGE_IS_PFNZERO within [lo, hi). 0 or -errno of the ioctl; what it
 * cleared before an error stays cleared (it was the zero page). */
static int zero_scan(struct pd_copy *c, uint64_t va, uint64_t lo, uint64_t hi, size_t n,
		     uint64_t *pm, size_t *cleared)
{
	struct pd_pm_region *reg = c->zbuf;
	struct pd_pm_scan_arg a;

	memset(&a, 0, sizeof(a));
	a.size = sizeof(a);
	a.start = lo;
	a.end = hi;
	a.vec = (uintptr_t)reg;
	a.vec_len = ZSCAN_REGIONS;
	a.category_mask = PD_PAGE_IS_PFNZERO;
	a.return_mask = PD_PAGE_IS_PFNZERO;
	while (a.start < hi) {
		int got = ioctl(c->pagemapfd, PD_PAGEMAP_SCAN, &a);

		if (got < 0)
			return -errno;
		for (int r = 0; r < got && (unsigned)r < ZSCAN_REGIONS; r++)
			for (uint64_t p = reg[r].start; p < reg[r].end && p < hi; p += c->page) {
				size_t j = (size_t)((p - va) / c->page);

				if (p >= va && j < n && zero_candidate(pm[j])) {
					pm[j] &= ~PM_PRESENT;
					(*cleared)++;
				}
			}
		if (a.walk_end <= a.start || a.walk_end > hi)
			break; /* no progress: the rest is read */
		a.start = a.walk_end;
	}
	return 0;
}

/* The same through move_pages(2) asked for nodes only (nodes NULL): its
 * status is -EFAULT for the zero page (FOLL_DUMP's "special page", or on
 * Linux >= 6.12 is_zero_folio) and for an anonymous page never touched,
 * a node number for every page with data (a fork-shared or KSM page
 * too), -ENOENT for one swapped out meanwhile. 0 or -errno. */
static int zero_move_pages(struct pd_copy *c, uint64_t va, size_t n, uint64_t *pm, size_t *cleared)
{
#ifdef SYS_move_pages
	void **pages = c->zbuf;
	int *status = (int *)(pages + PM_BATCH);
	size_t k = 0;

	for (size_t j = 0; j < n; j++)
		if (zero_candidate(pm[j]))
			pages[k++] = (void *)(uintptr_t)(va + j * c->page);
	memset(status, 0, k * sizeof(*status));
	if (syscall(SYS_move_pages, (int)c->pm_tid, (unsigned long)k, pages, NULL, status, 0) < 0)
		return -errno;
	for (size_t i = 0; i < k; i++) {
		size_t j = (size_t)(((uintptr_t)pages[i] - va) / c->page);

		if (status[i] == -EFAULT) {
			pm[j] &= ~PM_PRESENT;
			(*cleared)++;
		}
	}
	return 0;
#else
	(void)c, (void)va, (void)n, (void)pm, (void)cleared;
	return -ENOSYS;
#endif
}

size_t pd_copy_zero_pages(struct pd_copy *c, uint64_t va, size_t n, uint64_t *pm)
{
	size_t first = n, last = 0, cleared = 0;

	for (size_t j = 0; j < n; j++)
		if (zero_candidate(pm[j])) {
			if (first == n)
				first = j;
			last = j;
		}
	if (first == n || n > PM_BATCH || c->zero_method == PD_ZERO_NONE || c->pagemapfd < 0)
		return 0;
	if (!c->zbuf) {
		c->zbuf = malloc(PM_BATCH * (sizeof(void *) + sizeof(int)) +
				 ZSCAN_REGIONS * sizeof(struct pd_pm_region));
		if (!c->zbuf)
			return 0; /* read them */
	}
	/* A method that fails gives way to the next: an older kernel
	 * (ENOTTY), no NUMA (ENOSYS), a policy that refuses (EPERM). */
	if (c->zero_method == PD_ZERO_SCAN &&
	    zero_scan(c, va, va + first * c->page, va + (last + 1) * c->page, n, pm, &cleared) < 0)
		c->zero_method = PD_ZERO_MOVE_PAGES;
	if (c->zero_method == PD_ZERO_MOVE_PAGES && zero_move_pages(c, va, n, pm, &cleared) < 0)
		c->zero_method = PD_ZERO_NONE;
	c->zero_pages += cleared;
	return cleared;
}

int pd_copy_plan(struct pd_copy *c, uint64_t addr, uint64_t len, uint64_t off, bool pagemap,
		 struct pd_runs *runs)
{
	uint64_t page = c->page, npages = len / page;

	if (!pagemap || pd_copy_open_pagemap(c) < 0)
		return add_run(runs, addr, len, off); /* no pagemap: read it all */
	for (uint64_t i = 0; i < npages;) {
		size_t want = npages - i < PM_BATCH ? (size_t)(npages - i) : PM_BATCH;
		uint64_t va = addr + i * page;
		ssize_t got = pread(c->pagemapfd, c->pm, want * 8, (off_t)(va / page * 8));
		size_t have;

		if (got < 8) {
			/* Cannot tell: read the rest and let zero pages become
			 * holes afterwards. */
			return add_run(runs, va, len - i * page, off + i * page);
		}
		have = (size_t)got / 8;
		pd_copy_zero_pages(c, va, have, c->pm);
		for (size_t j = 0; j < have; j++) {
			if (!(c->pm[j] & (PM_PRESENT | PM_SWAPPED)))
				continue;
			if (add_run(runs, va + j * page, page, off + (i + j) * page) < 0)
				return -ENOMEM;
		}
		i += have;
	}
	return 0;
}

/* ---- reading ---------------------------------------------------------------- */

/* One read of the source: the target through lib/freeze.h, or the clone
 * (its mem file, as pd_freeze_read() does for the target). */
static ssize_t src_read(struct pd_copy *c, uint64_t addr, void *dst, size_t n)
{
	ssize_t got;

	if (!c->src)
		return pd_freeze_read(c->fz, addr, dst, n);
	do
		got = pread(c->srcmem, dst, n, (off_t)addr);
	while (got < 0 && errno == EINTR);
	return got;
}

/* Reads what process_vm_readv could not at [addr, addr+len): /proc/PID/mem
 * page by page, zeros for what fails. */
static void read_slow(struct pd_copy *c, uint64_t addr, size_t len, char *dst)
{
	while (len) {
		size_t n = c->page - (size_t)(addr % c->page);
		ssize_t got;

		if (n > len)
			n = len;
		got = src_read(c, addr, dst, n);
		if (got < 0)
			got = 0;
		if ((size_t)got < n) {
			memset(dst + got, 0, n - (size_t)got);
			c->unreadable++;
		}
		addr += n;
		dst += n;
		len -= n;
	}
}

/* Reads runs[0..n) into base: packed in order, or (at_off) each run at
 * base + its file offset. The local iovecs mirror the remote ones, so one
 * process_vm_readv fills both layouts alike. */
static int copy_read(struct pd_copy *c, const struct pd_run *runs, size_t n, char *base,
		     bool at_off)
{
	struct iovec remote[RV_IOV_MAX], local[RV_IOV_MAX];
	char *packed = base;
	size_t i = 0;
	uint64_t skip = 0; /* bytes of runs[i] already done */

	while (i < n) {
		size_t nr = 0, bytes = 0, k = 0, left;
		ssize_t got;

		/* One batch: up to RV_IOV_MAX runs (the last maybe in part). */
		for (size_t j = i; j < n && nr < RV_IOV_MAX && bytes < RV_MAX_BYTES; j++) {
			uint64_t s = j == i ? skip : 0, l = runs[j].len - s;

			if (l > RV_MAX_BYTES - bytes)
				l = RV_MAX_BYTES - bytes;
			remote[nr].iov_base = (void *)(uintptr_t)(runs[j].addr + s);
			remote[nr].iov_len = (size_t)l;
			local[nr].iov_base = at_off ? base + runs[j].off + s : packed + bytes;
			local[nr].iov_len = (size_t)l;
			nr++;
			bytes += (size_t)l;
		}
		got = process_vm_readv(c->src ? c->src : c->fz->io_tid, local, nr, remote, nr, 0);
		if (got < 0)
			got = 0;
		/* Walk past what was read; at a failure read that page the slow
		 * way and start the next batch after it. */
		for (left = (size_t)got; k < nr && left >= remote[k].iov_len; k++)
			left -= remote[k].iov_len;
		packed += got;
		for (uint64_t adv = (uint64_t)got; adv;) {
			uint64_t rem = runs[i].len - skip;

			if (adv >= rem) {
				adv -= rem;
				i++;
				skip = 0;
			} else {
				skip += adv;
				adv = 0;
			}
		}
		if (k < nr) {
			/* The byte at runs[i].addr + skip failed: one page (or up
			 * to the page end) the slow way. */
			uint64_t a = runs[i].addr + skip;
			size_t l = c->page - (size_t)(a % c->page);

			if (l > runs[i].len - skip)
				l = (size_t)(runs[i].len - skip);
			read_slow(c, a, l, at_off ? base + runs[i].off + skip : packed);
			packed += l;
			skip += l;
			if (skip == runs[i].len) {
				i++;
				skip = 0;
			}
		}
	}
	return 0;
}

/* From a clone: its mem file only. process_vm_readv pins the pages it
 * reads (FOLL_PIN), and a read-only pin of an anonymous page the clone
 * shares with the target makes the kernel unshare it (copy it into the
 * clone): the whole copy would cost as much memory again. The mem file
 * reads through get_user_pages without a pin, and nothing is copied. */
static int copy_read_mem(struct pd_copy *c, const struct pd_run *runs, size_t n, char *base,
			 bool at_off)
{
	char *packed = base;

	for (size_t i = 0; i < n; i++) {
		char *dst = at_off ? base + runs[i].off : packed;
		uint64_t done = 0;

		while (done < runs[i].len) {
			uint64_t want = runs[i].len - done;
			ssize_t got = src_read(c, runs[i].addr + done, dst + done,
					       (size_t)(want < RV_MAX_BYTES ? want : RV_MAX_BYTES));

			if (got <= 0) {
				/* A page that cannot be read: zeros, and on. */
				size_t l = c->page - (size_t)((runs[i].addr + done) % c->page);

				if (l > want)
					l = (size_t)want;
				read_slow(c, runs[i].addr + done, l, dst + done);
				got = (ssize_t)l;
			}
			done += (uint64_t)got;
		}
		packed += runs[i].len;
	}
	return 0;
}

int pd_copy_read(struct pd_copy *c, const struct pd_run *runs, size_t n, char *dst)
{
	return c->src ? copy_read_mem(c, runs, n, dst, false) : copy_read(c, runs, n, dst, false);
}

int pd_copy_read_at(struct pd_copy *c, const struct pd_run *runs, size_t n, char *base)
{
	return c->src ? copy_read_mem(c, runs, n, base, true) : copy_read(c, runs, n, base, true);
}

/* ---- writing ---------------------------------------------------------------- */

int pd_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static bool page_is_zero(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (size_t i = 0; i < len / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

static void progress(struct pd_progress *pr, uint64_t n)
{
	if (!pr)
		return;
	pr->done += n;
	if (pr->fn && (pr->done - pr->last >= (64u << 20) || pr->done == pr->total)) {
		pr->last = pr->done;
		pr->fn(pr->arg, pr->done, pr->total);
	}
}

int pd_copy_write(int fd, const struct pd_run *runs, size_t n, const char *src, uint64_t *written,
		  struct pd_progress *pr)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < n; i++) {
		const char *p = src;
		uint64_t len = runs[i].len, pos = 0, reported = 0;

		while (pos < len) {
			uint64_t s, e;
			int rc;

			if (pos - reported >= (16u << 20)) {
				progress(pr, pos - reported);
				reported = pos;
			}

			/* Skip zero pages, then gather the non-zero stretch. */
			while (pos < len && page_is_zero(p + pos, page))
				pos += page;
			s = pos;
			while (pos < len && pos - s < (16u << 20) && !page_is_zero(p + pos, page))
				pos += page;
			e = pos;
			if (e > s) {
				rc = pd_pwrite_all(fd, p + s, (size_t)(e - s), runs[i].off + s);
				if (rc < 0)
					return rc;
				*written += e - s;
			}
		}
		src += len;
		progress(pr, len - reported);
	}
	return 0;
}

int pd_punch(int fd, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return errno == EOPNOTSUPP || errno == ENOSYS ? 0 : -errno; /* zeros, then */
	return 0;
}

int pd_copy_holes(int fd, const struct pd_run *runs, size_t n, const char *base,
		  uint64_t min_hole, uint64_t *written, struct pd_progress *pr)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t zs = 0, ze = 0, total = 0; /* the zero stretch not punched yet */
	int rc;

	for (size_t i = 0; i < n; i++) {
		const char *p = base + runs[i].off;

		total += runs[i].len;
		for (uint64_t pos = 0; pos < runs[i].len; pos += page) {
			uint64_t off = runs[i].off + pos;

			if (!page_is_zero(p + pos, page))
				continue;
			if (ze != off) {
				if (ze - zs >= min_hole) {
					rc = pd_punch(fd, zs, ze - zs);
					if (rc < 0)
						return rc;
					total -= ze - zs;
				}
				zs = off;
			}
			ze = off + page;
		}
		progress(pr, runs[i].len);
	}
	if (ze - zs >= min_hole && ze > zs) {
		rc = pd_punch(fd, zs, ze - zs);
		if (rc < 0)
			return rc;
		total -= ze - zs;
	}
	*written += total;
	return 0;
}

int pd_copy_direct(struct pd_copy *c, const struct pd_runs *runs, int fd, size_t bufsize,
		   uint64_t *written, struct pd_progress *pr, bool *write_failed)
{
	struct pd_run *batch;
	size_t maxb = 1024;
	char *buf;
	size_t i = 0;
	uint64_t skip = 0;
	int rc = 0;

	*write_failed = false;
	bufsize -= bufsize % c->page;
	if (bufsize < c->page)
		bufsize = c->page;
	buf = malloc(bufsize);
	batch = malloc(maxb * sizeof(*batch));
	if (!buf || !batch) {
		rc = -ENOMEM;
		goto out;
	}
	while (i < runs->n) {
		size_t nb = 0, bytes = 0;

		while (i < runs->n && nb < maxb && bytes < bufsize) {
			uint64_t l = runs->v[i].len - skip;

			if (l > bufsize - bytes)
				l = bufsize - bytes;
			batch[nb++] =
				(struct pd_run){runs->v[i].addr + skip, l, runs->v[i].off + skip};
			bytes += (size_t)l;
			skip += l;
			if (skip == runs->v[i].len) {
				i++;
				skip = 0;
			}
		}
		rc = pd_copy_read(c, batch, nb, buf);
		if (rc < 0)
			goto out;
		rc = pd_copy_write(fd, batch, nb, buf, written, pr);
		if (rc < 0) {
			*write_failed = true;
			goto out;
		}
	}
out:
	free(buf);
	free(batch);
	return rc;
}
