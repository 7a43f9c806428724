/* Unnamed spool files and the estimate that decides whether one fits. */
#include "config.h"

#include "lib/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/dumptype.h"
#include "lib/memcopy.h"
#include "lib/procfs.h"

#define PAGE 4096u
/* ELF and program headers, the notes other than per-thread ones, the
 * r_debug chain. */
#define BASE_FIXED (1024u * 1024u)
/* Per thread: registers and the used part of its stack. Thread stacks
 * are rarely deeper than this; the main stack is counted by VmStk. */
#define PER_THREAD (256u * 1024u)
/* Per mapping: its first page (build-ids) and some slack for the pages
 * around PCs, TCBs and the dynamic section. */
#define PER_MAPPING (2u * PAGE)

/* A failed punch is passed over: it only costs room. */
static void punch_to(struct pd_spool_behind *b, uint64_t to)
{
	pd_punch(b->fd, b->punched, to - b->punched);
	b->punched = to;
}

static void *behind_thread(void *arg)
{
	struct pd_spool_behind *b = arg;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		uint64_t to;

		while (!b->end && b->want <= b->punched)
			pthread_cond_wait(&b->cv, &b->mu);
		if (b->want <= b->punched)
			break;
		to = b->want;
		pthread_mutex_unlock(&b->mu);
		punch_to(b, to);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

void pd_spool_behind_start(struct pd_spool_behind *b, int fd, uint64_t step)
{
	*b = (struct pd_spool_behind){.fd = fd, .step = step};
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->threaded = fd >= 0 && pthread_create(&b->th, NULL, behind_thread, b) == 0;
	if (!b->threaded) {
		pthread_mutex_destroy(&b->mu);
		pthread_cond_destroy(&b->cv);
	}
}

void pd_spool_behind(struct pd_spool_behind *b, uint64_t upto, bool all)
{
	/* all: the whole file is read, its last partial page too */
	uint64_t to = all ? (upto + PAGE - 1) & ~(uint64_t)(PAGE - 1) : upto & ~(uint64_t)(PAGE - 1);
	uint64_t step = b->step ? b->step : 1;

	if (b->fd < 0)
		return;
	if (!b->threaded) {
		if (to > b->punched && (all || to - b->punched >= step))
			punch_to(b, to);
		return;
	}
	pthread_mutex_lock(&b->mu);
	if (to > b->want && (all || to - b->want >= step)) {
		b->want = to;
		pthread_cond_signal(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
}

void pd_spool_behind_end(struct pd_spool_behind *b)
{
	if (!b->threaded)
		return;
	pthread_mutex_lock(&b->mu);
	b->end = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->th, NULL);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	b->threaded = false;
}

bool pd_spool_in_memory(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC; /* a memfd's too */
}

int pd_spool_room(int fd, uint64_t *avail)
{
	struct statvfs sv;

	if (fstatvfs(fd, &sv) < 0)
		return -errno;
	*avail = (uint64_t)sv.f_bavail * (sv.f_frsize ? sv.f_frsize : sv.f_bsize);
	return 0;
}

int pd_spool_open(const char *dir, uint64_t mem_max, uint64_t estimate, bool *in_memory)
{
	uint64_t avail = 0;
	int fd, rc;

	if (estimate <= mem_max) {
		fd = memfd_create("procdiag-spool", MFD_CLOEXEC);
		if (fd >= 0) {
			if (in_memory)
				*in_memory = true;
			return fd;
		}
		/* No memfd (seccomp, old kernel): the directory will do. */
	}
	if (!dir || !*dir)
		return -EINVAL;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		/* Older kernels and file systems without it say so oddly. */
		if (rc == -EISDIR)
			rc = -EOPNOTSUPP;
		return rc;
	}
	rc = pd_spool_room(fd, &avail);
	if (rc == 0 && avail < estimate)
		rc = -ENOSPC;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	if (in_memory)
		*in_memory = false;
	return fd;
}

static uint64_t known(int64_t v)
{
	return v > 0 ? (uint64_t)v : 0;
}

int pd_dump_estimate(struct pd_proc *p, unsigned content, uint64_t *bytes)
{
	struct pd_status st;
	struct pd_maps maps = PD_MAPS_INIT;
	uint64_t total, file_data = 0, threads;
	int rc;

	rc = pd_proc_status(p, &st);
	if (rc < 0)
		return rc;
	rc = pd_proc_maps(p, &maps);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < maps.n; i++) {
		const struct pd_map *m = &maps.v[i];

		if (m->path && m->path[0] == '/' && m->perms[1] == 'w' && m->perms[3] == 'p')
			file_data += m->end - m->start;
	}
	threads = st.threads > 0 ? (uint64_t)st.threads : 1;
	total = BASE_FIXED + maps.n * PER_MAPPING + threads * PER_THREAD + known(st.vm_stk);
	if (content & (PD_DC_FILE_DATA | PD_DC_FULL))
		total += file_data;
	if (content & (PD_DC_ANON | PD_DC_FULL))
		total += known(st.rss_anon) + known(st.vm_swap);
	if (content & (PD_DC_SHARED | PD_DC_FULL))
		total += known(st.rss_shmem);
	pd_maps_release(&maps);
	*bytes = total;
	return 0;
}
