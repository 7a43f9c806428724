#include "config.h"

#include "lib/cowclone.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "lib/proc.h"
#include "lib/procfs.h"
#include "lib/sysclock.h"

#if defined(__x86_64__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#define PD_COW_ARCH 1
#endif

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif
#define SCAN_MAX      (1u << 20) /* bytes of one mapping searched for 0f 05 */
#define CGROUP_MAX    4096
#define BPF_MAX_INSNS 4096 /* BPF_MAXINSNS */

static int why_set(char *why, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int why_set(char *why, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- cgroup headroom --------------------------------------------------------- */

static bool read_u64_file(const char *path, uint64_t *v)
{
	struct strbuf sb = STRBUF_INIT;
	bool ok = false;

	if (pd_read_file_at(AT_FDCWD, path, &sb, 64) == 0 && sb.len) {
		if (!strncmp(sb.buf, "max", 3)) {
			*v = UINT64_MAX;
			ok = true;
		} else {
			char *end;

			errno = 0;
			*v = strtoull(sb.buf, &end, 10);
			ok = !errno && end != sb.buf;
		}
	}
	strbuf_release(&sb);
	return ok;
}

/* Headroom of limit/usage files in dir and every ancestor up to the root:
 * the smallest limit - usage; UINT64_MAX when nothing limits. */
static uint64_t headroom(const char *base, const char *cgpath, const char *limit, const char *usage,
			 char *where, size_t wlen)
{
	char path[CGROUP_MAX + 64], dir[CGROUP_MAX];
	uint64_t best = UINT64_MAX;

	snprintf(dir, sizeof(dir), "%s", cgpath);
	for (;;) {
		uint64_t l, u;
		char *slash;

		snprintf(path, sizeof(path), "%s%s/%s", base, dir, limit);
		if (read_u64_file(path, &l) && l != UINT64_MAX && l < (UINT64_MAX >> 2)) {
			snprintf(path, sizeof(path), "%s%s/%s", base, dir, usage);
			if (read_u64_file(path, &u)) {
				uint64_t room = u < l ? l - u : 0;

				if (room < best) {
					best = room;
					snprintf(where, wlen, "%s%s", base, dir[0] ? dir : "/");
				}
			}
		}
		slash = strrchr(dir, '/');
		if (!slash || !dir[0] || !strcmp(dir, "/"))
			break;
		*slash = 0;
	}
	return best;
}

static bool has_controller(const char *list, size_t n, const char *name)
{
	size_t k = strlen(name);

	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j < n && list[j] != ',')
			j++;
		if (j - i == k && !memcmp(list + i, name, k))
			return true;
		i = j + 1;
	}
	return false;
}

/* The clone is charged to the target's cgroups (memory and pids, v2 or
 * v1, at the usual mount points): refuse it unless every level has room
 * for what the target could make it cost. */
static int cgroup_check(int procfd, uint64_t anon, char *why, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	char where[CGROUP_MAX] = "";
	struct stat st;
	const char *v2base = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0
				     ? "/sys/fs/cgroup"
				     : "/sys/fs/cgroup/unified";
	/* Page tables of the clone (8 bytes per 4 KiB page) and slack. */
	uint64_t need = anon + anon / 256 + (1u << 20);
	int rc = 0;

	if (pd_read_file_at(procfd, "cgroup", &sb, 1 << 16) < 0)
		goto out; /* no cgroups: nothing limits */
	for (char *l = sb.buf, *nl; l && *l; l = nl ? nl + 1 : NULL) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		const char *path;
		bool v2;
		uint64_t mem = UINT64_MAX, pids = UINT64_MAX;

		nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		if (!c2)
			continue;
		path = c2 + 1;
		v2 = c2 == c1 + 1 && !strncmp(l, "0:", 2);
		if (v2) {
			mem = headroom(v2base, path, "memory.max", "memory.current", where,
				       sizeof(where));
		} else if (has_controller(c1 + 1, (size_t)(c2 - c1 - 1), "memory")) {
			mem = headroom("/sys/fs/cgroup/memory", path, "memory.limit_in_bytes",
				       "memory.usage_in_bytes", where, sizeof(where));
		}
		if (mem < need) {
			rc = why_set(why, len, -ENOSPC,
				     "cgroup %s: memory headroom %llu bytes, below the %llu the "
				     "target could write",
				     where, (unsigned long long)mem, (unsigned long long)need);
			goto out;
		}
		if (v2)
			pids = headroom(v2base, path, "pids.max", "pids.current", where,
					sizeof(where));
		else if (has_controller(c1 + 1, (size_t)(c2 - c1 - 1), "pids"))
			pids = headroom("/sys/fs/cgroup/pids", path, "pids.max", "pids.current",
					where, sizeof(where));
		if (pids < 1) {
			rc = why_set(why, len, -ENOSPC, "cgroup %s: pids.max reached", where);
			goto out;
		}
	}
out:
	strbuf_release(&sb);
	return rc;
}

/* "Seccomp:" of a thread's status: 0 none, 1 strict, 2 filter. */
static int seccomp_mode(int procfd, pid_t tid)
{
	struct strbuf sb = STRBUF_INIT;
	char path[48];
	const char *p;
	int mode = 0;

	snprintf(path, sizeof(path), "task/%d/status", (int)tid);
	if (pd_read_file_at(procfd, path, &sb, 1 << 16) == 0 && (p = strstr(sb.buf, "\nSeccomp:")))
		mode = atoi(p + 9);
	strbuf_release(&sb);
	return mode;
}

int pd_cow_precheck(struct pd_freeze *fz, uint64_t anon, char *why, size_t len)
{
#ifndef PD_COW_ARCH
	(void)fz;
	(void)anon;
	(void)cgroup_check; /* used on x86-64 only */
	(void)seccomp_mode;
	return why_set(why, len, -EOPNOTSUPP, "the clone is implemented for x86-64 only");
#else
	if (seccomp_mode(fz->procfd, fz->pid) == 1)
		return why_set(why, len, -EPERM, "strict seccomp mode forbids clone");
	return cgroup_check(fz->procfd, anon, why, len);
#endif
}

#ifdef PD_COW_ARCH

/* ---- seccomp: would clone pass the thread's filters? ------------------------- */

/* Classic BPF as seccomp runs it, on one seccomp_data. Anything it does
 * not know (or a jump out of the program) counts as a kill. */
static uint32_t bpf_run(const struct sock_filter *f, size_t n, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};

	for (size_t pc = 0; pc < n; pc++) {
		const struct sock_filter *i = &f[pc];
		uint32_t k = i->k, src = BPF_SRC(i->code) == BPF_X ? x : k;
		bool jump;

		switch (BPF_CLASS(i->code)) {
		case BPF_LD:
		case BPF_LDX: {
			uint32_t v;

			if (i->code == (BPF_LD | BPF_W | BPF_ABS)) {
				if (k >= sizeof(*d) || (k & 3))
					return SECCOMP_RET_KILL_PROCESS;
				memcpy(&v, (const char *)d + k, 4);
			} else if (BPF_MODE(i->code) == BPF_LEN) {
				v = sizeof(*d);
			} else if (BPF_MODE(i->code) == BPF_IMM) {
				v = k;
			} else if (BPF_MODE(i->code) == BPF_MEM && k < BPF_MEMWORDS) {
				v = mem[k];
			} else {
				return SECCOMP_RET_KILL_PROCESS;
			}
			if (BPF_CLASS(i->code) == BPF_LD)
				a = v;
			else
				x = v;
			break;
		}
		case BPF_ST:
		case BPF_STX:
			if (k >= BPF_MEMWORDS)
				return SECCOMP_RET_KILL_PROCESS;
			mem[k] = BPF_CLASS(i->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			switch (BPF_OP(i->code)) {
			case BPF_ADD: a += src; break;
			case BPF_SUB: a -= src; break;
			case BPF_MUL: a *= src; break;
			case BPF_DIV:
				if (!src)
					return SECCOMP_RET_KILL_PROCESS;
				a /= src;
				break;
			case BPF_MOD:
				if (!src)
					return SECCOMP_RET_KILL_PROCESS;
				a %= src;
				break;
			case BPF_OR: a |= src; break;
			case BPF_AND: a &= src; break;
			case BPF_XOR: a ^= src; break;
			case BPF_LSH: a = src < 32 ? a << src : 0; break;
			case BPF_RSH: a = src < 32 ? a >> src : 0; break;
			case BPF_NEG: a = -a; break;
			default: return SECCOMP_RET_KILL_PROCESS;
			}
			break;
		case BPF_JMP:
			if (BPF_OP(i->code) == BPF_JA) {
				pc += k;
				break;
			}
			switch (BPF_OP(i->code)) {
			case BPF_JEQ: jump = a == src; break;
			case BPF_JGT: jump = a > src; break;
			case BPF_JGE: jump = a >= src; break;
			case BPF_JSET: jump = (a & src) != 0; break;
			default: return SECCOMP_RET_KILL_PROCESS;
			}
			pc += jump ? i->jt : i->jf;
			break;
		case BPF_RET: return BPF_RVAL(i->code) == BPF_A ? a : k;
		case BPF_MISC:
			if (BPF_MISCOP(i->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		default: return SECCOMP_RET_KILL_PROCESS;
		}
	}
	return SECCOMP_RET_KILL_PROCESS;
}

/* 0 when every filter of tid lets the call through (ALLOW or LOG); else
 * -EPERM with the action in why. The filters are read with
 * PTRACE_SECCOMP_GET_FILTER (CAP_SYS_ADMIN, the thread stopped). */
static int seccomp_allows(int procfd, pid_t tid, const struct seccomp_data *d, char *why,
			  size_t len)
{
	struct sock_filter *prog;
	int rc = 0;

	if (seccomp_mode(procfd, tid) != 2)
		return 0;
	prog = malloc(BPF_MAX_INSNS * sizeof(*prog));
	if (!prog)
		return why_set(why, len, -ENOMEM, "out of memory");
	for (unsigned long idx = 0;; idx++) {
		long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)idx, NULL);
		uint32_t act;

		if (n < 0 && errno == ENOENT && idx > 0)
			break; /* past the last filter */
		if (n <= 0 || n > BPF_MAX_INSNS ||
		    ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)idx, prog) != n) {
			rc = why_set(why, len, -EPERM, "its seccomp filter cannot be read (%s)",
				     strerror(errno));
			break;
		}
		act = bpf_run(prog, (size_t)n, d) & SECCOMP_RET_ACTION_FULL;
		if (act != SECCOMP_RET_ALLOW && act != SECCOMP_RET_LOG) {
			rc = why_set(why, len, -EPERM, "its seccomp filter %s clone (action 0x%x)",
				     act == SECCOMP_RET_ERRNO ? "fails" : "forbids", act);
			break;
		}
	}
	free(prog);
	return rc;
}

/* ---- finding a syscall instruction ------------------------------------------- */

static uint64_t scan_for_syscall(struct pd_freeze *fz, uint64_t a, uint64_t b)
{
	static const char insn[2] = {0x0f, 0x05};
	size_t bufsz = 64u << 10;
	char *buf = malloc(bufsz + 1);
	uint64_t found = 0;

	if (!buf)
		return 0;
	if (b - a > SCAN_MAX)
		b = a + SCAN_MAX;
	for (uint64_t at = a; at < b && !found;) {
		size_t want = b - at < bufsz ? (size_t)(b - at) : bufsz;
		ssize_t got = pd_freeze_read(fz, at, buf, want);
		char *p;

		if (got < 2)
			break;
		p = memmem(buf, (size_t)got, insn, 2);
		if (p)
			found = at + (uint64_t)(p - buf);
		at += (uint64_t)got - 1; /* a pair split by the chunk border */
	}
	free(buf);
	return found;
}

/* The vDSO's syscall instruction (its fallbacks have them), else the
 * first one in any executable mapping. */
static uint64_t find_syscall(struct pd_freeze *fz)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_maps maps = PD_MAPS_INIT;
	char path[48];
	uint64_t ip = 0;

	snprintf(path, sizeof(path), "task/%d/maps", (int)fz->io_tid);
	if (pd_read_file_at(fz->procfd, path, &sb, 64u << 20) == 0 &&
	    pd_parse_maps(sb.buf, sb.len, &maps) == 0) {
		for (int pass = 0; pass < 2 && !ip; pass++)
			for (size_t i = 0; i < maps.n && !ip; i++) {
				const struct pd_map *m = &maps.v[i];
				bool vdso = m->path && !strcmp(m->path, "[vdso]");

				if (m->perms[2] != 'x' || (pass == 0) != vdso ||
				    (m->path && !strcmp(m->path, "[vsyscall]")))
					continue;
				ip = scan_for_syscall(fz, m->start, m->end);
			}
	}
	pd_maps_release(&maps);
	strbuf_release(&sb);
	return ip;
}

/* ---- running one system call in a stopped thread ----------------------------- */

static int wait_stop(pid_t tid, int *st)
{
	for (;;) {
		pid_t r = waitpid(tid, st, __WALL);

		if (r == tid)
			return WIFSTOPPED(*st) ? 0 : -ESRCH;
		if (r < 0 && errno == EINTR)
			continue;
		return -ESRCH;
	}
}

struct call {
	pid_t tid;		       /* in an interrupt stop, seized by us */
	struct user_regs_struct saved; /* its registers as stopped */
	uint64_t ip;		       /* a syscall instruction */
	long nr;		       /* the call and its arguments */
	uint64_t arg[6];
	long ret;      /* its return value */
	pid_t child;   /* a clone/fork event's new pid */
	uint64_t held; /* signals that came meanwhile (bit sig-1) */
};

/* Waits for the thread's next stop after a PTRACE_CONT with a
 * PTRACE_INTERRUPT pending: the interrupt stop in the kernel's signal
 * path. Signal-delivery stops on the way are held (c->held). */
static int wait_trap(struct call *c)
{
	int st, rc;

	for (;;) {
		rc = wait_stop(c->tid, &st);
		if (rc < 0)
			return rc;
		if ((st >> 16) == PTRACE_EVENT_STOP)
			return 0;
		if ((st >> 16) == 0 && WSTOPSIG(st) > 0 && WSTOPSIG(st) <= 64)
			c->held |= 1ull << (WSTOPSIG(st) - 1);
		if (ptrace(PTRACE_CONT, c->tid, 0, 0) < 0)
			return -errno;
	}
}

/* Runs c->nr in c->tid: PTRACE_SYSCALL to its entry stop (so that a
 * failed call can never return into the code after the instruction),
 * PTRACE_SYSCALL to the clone event or, for another call or a failed
 * clone, the exit stop. From there PTRACE_INTERRUPT and PTRACE_CONT bring
 * the thread through the kernel's signal path, where it traps: an
 * interrupt stop again, as it was, and its registers are put back exactly.
 * So when it is let go, the kernel itself restarts the system call it was
 * stopped in (-ERESTARTSYS and the others, restart_syscall) and restores a
 * sigsuspend's mask, as it would have without us. A signal dequeued on the
 * way is held and queued again (tkill) once the thread is back in its
 * stop, so that it is delivered when the thread runs (its siginfo is not
 * kept). */
static int call_in(struct call *c)
{
	struct user_regs_struct r = c->saved;
	int st, rc = 0, sig;

	if (ptrace(PTRACE_SETOPTIONS, c->tid, 0,
		   (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
				  PTRACE_O_TRACEVFORK)) < 0)
		return -errno;
	r.rip = c->ip;
	r.rax = (unsigned long long)c->nr;
	r.orig_rax = (unsigned long long)-1; /* no restart on the way there */
	r.rdi = c->arg[0];
	r.rsi = c->arg[1];
	r.rdx = c->arg[2];
	r.r10 = c->arg[3];
	r.r8 = c->arg[4];
	r.r9 = c->arg[5];
	if (ptrace(PTRACE_SETREGS, c->tid, 0, &r) < 0) {
		rc = -errno;
		goto opts;
	}
	/* To the entry stop (signals met on the way out of the interrupt
	 * stop are held: resumed without them). */
	for (;;) {
		if (ptrace(PTRACE_SYSCALL, c->tid, 0, 0) < 0)
			return -errno;
		rc = wait_stop(c->tid, &st);
		if (rc < 0)
			return rc; /* killed: nothing to put back */
		sig = WSTOPSIG(st);
		if (sig == (SIGTRAP | 0x80))
			break;
		if ((st >> 16) == 0 && sig > 0 && sig <= 64)
			c->held |= 1ull << (sig - 1);
	}
	/* The call; then the clone event (in it, the child made) or the
	 * exit stop (nothing between entry and exit can deliver a signal). */
	if (ptrace(PTRACE_SYSCALL, c->tid, 0, 0) < 0)
		return -errno;
	rc = wait_stop(c->tid, &st);
	if (rc < 0)
		return rc;
	if ((st >> 16) == PTRACE_EVENT_CLONE || (st >> 16) == PTRACE_EVENT_FORK ||
	    (st >> 16) == PTRACE_EVENT_VFORK) {
		unsigned long msg = 0;

		if (ptrace(PTRACE_GETEVENTMSG, c->tid, 0, &msg) == 0)
			c->child = (pid_t)msg;
		c->ret = c->child;
	} else {
		if (ptrace(PTRACE_GETREGS, c->tid, 0, &r) < 0)
			return -errno;
		c->ret = (long)r.rax;
	}
	if (ptrace(PTRACE_SETOPTIONS, c->tid, 0, 0) < 0 ||
	    ptrace(PTRACE_INTERRUPT, c->tid, 0, 0) < 0 || ptrace(PTRACE_CONT, c->tid, 0, 0) < 0)
		return -errno;
	rc = wait_trap(c);
	if (rc == 0 && ptrace(PTRACE_SETREGS, c->tid, 0, &c->saved) < 0)
		rc = -errno;
	for (sig = 1; sig <= 64; sig++)
		if (c->held & (1ull << (sig - 1)))
			syscall(SYS_tkill, c->tid, sig);
	return rc;
opts:
	ptrace(PTRACE_SETOPTIONS, c->tid, 0, 0);
	return rc;
}

/* The thread to run the call: one that holds no signal of its own (its
 * stop is an interrupt, not a signal-delivery stop). */
static struct pd_thread *pick_thread(struct pd_freeze *fz)
{
	for (size_t i = 0; i < fz->n; i++)
		if (fz->threads[i].stopped && !fz->threads[i].gone && !fz->threads[i].pending_sig)
			return &fz->threads[i];
	return NULL;
}

static void cow_close(struct pd_cow *c)
{
	if (c->memfd >= 0)
		close(c->memfd);
	if (c->procfd >= 0)
		close(c->procfd);
	c->memfd = c->procfd = -1;
}

int pd_cow_clone(struct pd_freeze *fz, struct pd_cow *c, char *why, size_t len)
{
	struct pd_thread *t = pick_thread(fz);
	struct call call;
	struct seccomp_data sd;
	char path[48];
	int st, rc, fd;

	*c = (struct pd_cow)PD_COW_INIT;
	if (!t)
		return why_set(why, len, -EAGAIN, "every thread holds a signal");
	c->ip = find_syscall(fz);
	if (!c->ip)
		return why_set(why, len, -EOPNOTSUPP, "no syscall instruction is mapped");
	memset(&call, 0, sizeof(call));
	call.tid = t->tid;
	call.saved = t->regs;
	call.ip = c->ip;
	call.nr = SYS_clone;
	/* flags 0: a plain copy-on-write child, exit signal 0 (no SIGCHLD),
	 * not CLONE_PARENT (the target's parent would get the zombie and a
	 * SIGCHLD), not CLONE_UNTRACED (PTRACE_O_TRACECLONE attaches it to
	 * us). Its stack pointer is a page that is never mapped: were it
	 * ever to run, it faults at its first stack access instead of
	 * running the target's code. */
	call.arg[0] = 0;
	call.arg[1] = 16;
	memset(&sd, 0, sizeof(sd));
	sd.nr = SYS_clone;
	sd.arch = AUDIT_ARCH_X86_64;
	sd.instruction_pointer = c->ip + 2;
	memcpy(sd.args, call.arg, sizeof(sd.args));
	rc = seccomp_allows(fz->procfd, t->tid, &sd, why, len);
	if (rc < 0)
		return rc;
	c->via = t->tid;
	rc = call_in(&call);
	if (rc < 0 && !call.child)
		return why_set(why, len, rc, "injecting clone: %s", strerror(-rc));
	if (call.ret < 0 && !call.child)
		return why_set(why, len, (int)call.ret, "clone failed in the target: %s",
			       strerror((int)-call.ret));
	c->pid = call.child ? call.child : (pid_t)call.ret;
	/* Its first stop (it was seized with us as its tracer), then what
	 * makes it die with us. */
	if (wait_stop(c->pid, &st) < 0) {
		c->pid = 0;
		return why_set(why, len, -ESRCH, "the clone died at once");
	}
	ptrace(PTRACE_SETOPTIONS, c->pid, 0, (void *)(long)PTRACE_O_EXITKILL);
	snprintf(path, sizeof(path), "/proc/%d", (int)c->pid);
	c->procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->procfd >= 0) {
		c->memfd = openat(c->procfd, "mem", O_RDONLY | O_CLOEXEC);
		/* Under memory pressure the clone goes first, not the target. */
		fd = openat(c->procfd, "oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, "1000", 4) < 0) {
				/* only a preference */
			}
			close(fd);
		}
	}
	/* Failures from here on leave c->pid for pd_cow_release(), once the
	 * target is thawed (its threads are ours until then). */
	if (c->memfd < 0) {
		rc = -errno;
		return why_set(why, len, rc, "opening the clone's memory: %s", strerror(-rc));
	}
	if (rc < 0)
		return why_set(why, len, rc, "injecting clone: %s", strerror(-rc));
	return 0;
}

/* Interrupts one thread of pid (listed in tids) and makes it reap
 * clone_pid. */
static int reap_through(pid_t pid, const pid_t *tids, size_t n, pid_t clone_pid)
{
	struct pd_freeze tmp;
	int rc = -ESRCH;

	for (size_t i = 0; i < n; i++) {
		struct call call;
		int st;

		memset(&call, 0, sizeof(call));
		call.tid = tids[i];
		if (ptrace(PTRACE_SEIZE, call.tid, 0, 0) < 0)
			continue;
		if (ptrace(PTRACE_INTERRUPT, call.tid, 0, 0) < 0 || wait_stop(call.tid, &st) < 0)
			continue; /* gone */
		if ((st >> 16) == 0 || ptrace(PTRACE_GETREGS, call.tid, 0, &call.saved) < 0) {
			/* A signal-delivery stop: given back, another thread. */
			ptrace(PTRACE_DETACH, call.tid, 0,
			       (void *)(long)((st >> 16) == 0 ? WSTOPSIG(st) : 0));
			continue;
		}
		memset(&tmp, 0, sizeof(tmp));
		tmp.procfd = -1;
		{
			char path[32];

			snprintf(path, sizeof(path), "/proc/%d", (int)pid);
			tmp.procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			tmp.pid = pid;
			tmp.io_tid = call.tid;
			tmp.memfd = -1;
			call.ip = tmp.procfd >= 0 ? find_syscall(&tmp) : 0;
			if (tmp.memfd >= 0)
				close(tmp.memfd);
			if (tmp.procfd >= 0)
				close(tmp.procfd);
		}
		call.nr = SYS_wait4;
		call.arg[0] = (uint64_t)clone_pid;
		call.arg[2] = __WALL | WNOHANG;
		rc = call.ip ? call_in(&call) : -EOPNOTSUPP;
		ptrace(PTRACE_DETACH, call.tid, 0, 0);
		if (rc == 0)
			rc = call.ret == clone_pid ? 0 : call.ret < 0 ? (int)call.ret : -EAGAIN;
		if (rc != -ESRCH)
			break;
	}
	return rc;
}

int pd_cow_release(struct pd_cow *c, struct pd_freeze *fz)
{
	pid_t tids[64];
	size_t n = 0;
	int st, rc;

	if (!c->pid) {
		cow_close(c);
		return 0;
	}
	kill(c->pid, SIGKILL);
	/* As its tracer we see it die first; then it is the target's zombie. */
	while (waitpid(c->pid, &st, __WALL) < 0 && errno == EINTR)
		;
	cow_close(c);
	for (size_t i = 0; i < fz->n && n < 64; i++)
		if (!fz->threads[i].gone)
			tids[n++] = fz->threads[i].tid;
	rc = reap_through(fz->pid, tids, n, c->pid);
	c->pid = 0;
	return rc;
}

#else /* !PD_COW_ARCH */

int pd_cow_clone(struct pd_freeze *fz, struct pd_cow *c, char *why, size_t len)
{
	(void)fz;
	*c = (struct pd_cow)PD_COW_INIT;
	return why_set(why, len, -EOPNOTSUPP, "the clone is implemented for x86-64 only");
}

int pd_cow_release(struct pd_cow *c, struct pd_freeze *fz)
{
	(void)fz;
	*c = (struct pd_cow)PD_COW_INIT;
	return 0;
}

#endif

uint64_t pd_cow_extra(const struct pd_cow *c)
{
	struct strbuf sb = STRBUF_INIT;
	struct pd_rollup ru;
	uint64_t v = 0;

	if (c->procfd >= 0 && pd_read_file_at(c->procfd, "smaps_rollup", &sb, 1 << 16) == 0 &&
	    pd_parse_smaps_rollup(sb.buf, sb.len, &ru) == 0 && ru.private_dirty > 0)
		v = (uint64_t)ru.private_dirty;
	strbuf_release(&sb);
	return v;
}

int pd_cow_reap(pid_t target, uint64_t start_time, pid_t clone_pid)
{
#ifdef PD_COW_ARCH
	struct pd_stat st;
	char path[48];
	pid_t tids[64];
	size_t n = 0;
	uint64_t until = pd_mono_ns() + 1000000000u;
	int procfd;

	snprintf(path, sizeof(path), "/proc/%d", (int)target);
	procfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return -ESRCH;
	if (pd_read_stat_at(procfd, "stat", &st) < 0 ||
	    (start_time && st.starttime != start_time)) {
		close(procfd);
		return -ESRCH;
	}
	/* EXITKILL sent it SIGKILL as its tracer died; wait for the zombie. */
	for (;;) {
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)clone_pid);
		if (pd_read_stat_at(AT_FDCWD, path, &st) < 0 || st.ppid != target) {
			close(procfd);
			return 0; /* already reaped, or not the target's */
		}
		if (st.state == 'Z')
			break;
		if (pd_mono_ns() > until) {
			close(procfd);
			return -ETIMEDOUT;
		}
		nanosleep(&(struct timespec){0, 5000000}, NULL);
	}
	{
		int dfd = openat(procfd, "task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct dirent *de;
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		while (d && (de = readdir(d)) && n < 64)
			if (atoi(de->d_name) > 0)
				tids[n++] = atoi(de->d_name);
		if (d)
			closedir(d);
		else if (dfd >= 0)
			close(dfd);
	}
	close(procfd);
	return reap_through(target, tids, n, clone_pid);
#else
	(void)target;
	(void)start_time;
	(void)clone_pid;
	return -EOPNOTSUPP;
#endif
}
