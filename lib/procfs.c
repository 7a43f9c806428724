#include "config.h"

#include "lib/procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/numparse.h"

/* ---- small helpers over (pointer, length) text ------------------------- */

static bool is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t pn = strlen(prefix);

	return n >= pn && memcmp(s, prefix, pn) == 0;
}

static void skip_blanks(const char **s, size_t *n)
{
	while (*n && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
}

static int parse_int(const char *s, size_t n, int min, int max, int *out)
{
	int64_t v;
	int r = parse_i64(s, n, min, max, &v);

	if (r == 0)
		*out = (int)v;
	return r;
}

/* Any number the kernel prints in a stat-like line: %d, %ld, %u or %lu. */
static int check_number(const char *s, size_t n)
{
	uint64_t u;
	int64_t i;

	if (n && s[0] == '-')
		return parse_i64(s, n, INT64_MIN, INT64_MAX, &i);
	return parse_u64(s, n, UINT64_MAX, &u);
}

/* "1234 kB" (leading blanks allowed) -> bytes. */
static int parse_kb(const char *s, size_t n, int64_t *out)
{
	uint64_t kb;
	int r;

	skip_blanks(&s, &n);
	if (n < 3 || memcmp(s + n - 3, " kB", 3) != 0)
		return -EINVAL;
	r = parse_u64(s, n - 3, (uint64_t)INT64_MAX / 1024, &kb);
	if (r < 0)
		return r;
	*out = (int64_t)(kb * 1024);
	return 0;
}

int pd_lines_next(struct pd_lines *it, const char **line, size_t *n)
{
	const char *nl;

	if (it->p == it->end)
		return 0;
	nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
	if (!nl)
		return -EINVAL;
	*line = it->p;
	*n = (size_t)(nl - it->p);
	it->p = nl + 1;
	return 1;
}

/* ---- /proc/PID/stat ---------------------------------------------------- */

/* 1-based field numbers of proc(5). Everything up to processor is required;
 * later fields were added over the years and are only checked as numbers. */
enum {
	F_PPID = 4,
	F_PGRP = 5,
	F_SESSION = 6,
	F_FLAGS = 9,
	F_UTIME = 14,
	F_STIME = 15,
	F_PRIORITY = 18,
	F_NICE = 19,
	F_NUM_THREADS = 20,
	F_STARTTIME = 22,
	F_VSIZE = 23,
	F_RSS = 24,
	F_PROCESSOR = 39,
};

static int stat_field(struct pd_stat *st, unsigned field, const char *s, size_t n)
{
	switch (field) {
	case F_PPID: return parse_int(s, n, 0, INT_MAX, &st->ppid);
	/* -1 for a task reaped while its line was written (procfs.h). */
	case F_PGRP: return parse_int(s, n, -1, INT_MAX, &st->pgrp);
	case F_SESSION: return parse_int(s, n, -1, INT_MAX, &st->session);
	case F_FLAGS: return parse_u64(s, n, UINT64_MAX, &st->flags);
	case F_UTIME: return parse_u64(s, n, UINT64_MAX, &st->utime);
	case F_STIME: return parse_u64(s, n, UINT64_MAX, &st->stime);
	case F_PRIORITY: return parse_i64(s, n, INT64_MIN, INT64_MAX, &st->priority);
	case F_NICE: return parse_i64(s, n, INT64_MIN, INT64_MAX, &st->nice);
	case F_NUM_THREADS: return parse_i64(s, n, 0, INT64_MAX, &st->num_threads);
	case F_STARTTIME: return parse_u64(s, n, UINT64_MAX, &st->starttime);
	case F_VSIZE: return parse_u64(s, n, UINT64_MAX, &st->vsize);
	case F_RSS: return parse_i64(s, n, INT64_MIN, INT64_MAX, &st->rss);
	case F_PROCESSOR: return parse_int(s, n, 0, INT_MAX, &st->processor);
	default: return check_number(s, n);
	}
}

int pd_parse_stat(const char *buf, size_t len, struct pd_stat *out)
{
	struct pd_stat st;
	const char *lp, *rp, *p, *end;
	size_t comm_len;
	unsigned field;
	int r;

	if (len == 0 || buf[len - 1] != '\n')
		return -EINVAL;
	end = buf + len - 1;
	memset(&st, 0, sizeof(st));

	/* The pid has no '(' and the numeric fields after the state have no
	 * ')', so the first '(' and the last ')' delimit comm, whatever comm
	 * itself contains (")", " S ", newlines...). */
	lp = memchr(buf, '(', len);
	rp = memrchr(buf, ')', len);
	if (!lp || !rp || rp < lp || lp == buf || lp[-1] != ' ')
		return -EINVAL;
	r = parse_int(buf, (size_t)(lp - 1 - buf), 0, INT_MAX, &st.pid);
	if (r < 0)
		return r;
	comm_len = (size_t)(rp - lp - 1);
	if (comm_len > PD_COMM_MAX - 1)
		comm_len = PD_COMM_MAX - 1;
	memcpy(st.comm, lp + 1, comm_len);
	st.comm[comm_len] = 0;
	st.comm_len = comm_len;

	/* ") S 123 ..." */
	if (end - rp < 5 || rp[1] != ' ' || !is_alpha(rp[2]) || rp[3] != ' ')
		return -EINVAL;
	st.state = rp[2];

	p = rp + 4;
	for (field = F_PPID;; field++) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		const char *tok_end = sp ? sp : end;

		r = stat_field(&st, field, p, (size_t)(tok_end - p));
		if (r < 0)
			return r;
		if (!sp)
			break;
		p = sp + 1;
	}
	if (field < F_PROCESSOR)
		return -EINVAL;
	*out = st;
	return 0;
}

/* ---- /proc/PID/status -------------------------------------------------- */

enum value_kind { KB, PLAIN };

static const struct status_key {
	const char *key;
	size_t off;
	enum value_kind kind;
} status_keys[] = {
	{"VmPeak", offsetof(struct pd_status, vm_peak), KB},
	{"VmSize", offsetof(struct pd_status, vm_size), KB},
	{"VmLck", offsetof(struct pd_status, vm_lck), KB},
	{"VmHWM", offsetof(struct pd_status, vm_hwm), KB},
	{"VmRSS", offsetof(struct pd_status, vm_rss), KB},
	{"RssAnon", offsetof(struct pd_status, rss_anon), KB},
	{"RssFile", offsetof(struct pd_status, rss_file), KB},
	{"RssShmem", offsetof(struct pd_status, rss_shmem), KB},
	{"VmData", offsetof(struct pd_status, vm_data), KB},
	{"VmStk", offsetof(struct pd_status, vm_stk), KB},
	{"VmExe", offsetof(struct pd_status, vm_exe), KB},
	{"VmLib", offsetof(struct pd_status, vm_lib), KB},
	{"VmPTE", offsetof(struct pd_status, vm_pte), KB},
	{"VmSwap", offsetof(struct pd_status, vm_swap), KB},
	{"Threads", offsetof(struct pd_status, threads), PLAIN},
	{"TracerPid", offsetof(struct pd_status, tracer_pid), PLAIN},
	{"voluntary_ctxt_switches", offsetof(struct pd_status, voluntary_ctxt_switches), PLAIN},
	{"nonvoluntary_ctxt_switches", offsetof(struct pd_status, nonvoluntary_ctxt_switches),
	 PLAIN},
};

static bool key_is(const char *key, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(key, want, n) == 0;
}

static bool is_octal(char c)
{
	return c >= '0' && c <= '7';
}

/* The kernel writes '\n' as "\n" and '\\' as "\\" in Name: (older kernels
 * used octal "\012"); any other byte, tabs and invalid UTF-8 included, is
 * raw. A backslash that starts no known escape is kept as is. */
static void unescape_name(const char *s, size_t n, struct pd_status *st)
{
	size_t o = 0;

	for (size_t i = 0; i < n;) {
		char c = s[i];

		if (c == '\\' && i + 1 < n && (s[i + 1] == 'n' || s[i + 1] == '\\')) {
			c = s[i + 1] == 'n' ? '\n' : '\\';
			i += 2;
		} else if (c == '\\' && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '3' &&
			   is_octal(s[i + 2]) && is_octal(s[i + 3])) {
			c = (char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 |
				   (s[i + 3] - '0'));
			i += 4;
		} else {
			i++;
		}
		if (o < PD_COMM_MAX - 1)
			st->name[o++] = c;
	}
	st->name[o] = 0;
	st->name_len = o;
}

static int parse_ids(const char *s, size_t n, int64_t ids[4])
{
	for (int i = 0; i < 4; i++) {
		const char *e;
		uint64_t v;
		int r;

		skip_blanks(&s, &n);
		for (e = s; e < s + n && !is_blank(*e); e++)
			;
		r = parse_u64(s, (size_t)(e - s), UINT32_MAX, &v);
		if (r < 0)
			return r;
		ids[i] = (int64_t)v;
		n -= (size_t)(e - s);
		s = e;
	}
	skip_blanks(&s, &n);
	return n ? -EINVAL : 0;
}

/* "Groups:\t1 2 3 \n": a space-separated list, possibly empty. */
static int parse_groups(const char *s, size_t n, struct pd_status *st)
{
	st->ngroups = 0;
	for (;;) {
		const char *e;
		uint64_t v;
		int r;

		skip_blanks(&s, &n);
		if (!n)
			return 0;
		for (e = s; e < s + n && !is_blank(*e); e++)
			;
		r = parse_u64(s, (size_t)(e - s), UINT32_MAX, &v);
		if (r < 0)
			return r;
		if (st->ngroups < PD_STATUS_GROUPS_MAX)
			st->groups[st->ngroups++] = (uint32_t)v;
		n -= (size_t)(e - s);
		s = e;
	}
}

static int status_line(struct pd_status *st, const char *key, size_t kn, const char *v, size_t vn,
		       unsigned *seen)
{
	if (key_is(key, kn, "Name")) {
		/* Exactly one tab separates: a name may itself start with blanks. */
		if (!vn || v[0] != '\t')
			return -EINVAL;
		unescape_name(v + 1, vn - 1, st);
		*seen |= 1;
		return 0;
	}
	skip_blanks(&v, &vn);
	if (key_is(key, kn, "State")) {
		if (!vn || !is_alpha(v[0]))
			return -EINVAL;
		st->state = v[0];
		*seen |= 2;
		return 0;
	}
	if (key_is(key, kn, "PPid")) {
		*seen |= 4;
		return parse_int(v, vn, 0, INT_MAX, &st->ppid);
	}
	if (key_is(key, kn, "Uid"))
		return parse_ids(v, vn, st->uid);
	if (key_is(key, kn, "Gid"))
		return parse_ids(v, vn, st->gid);
	if (key_is(key, kn, "Groups"))
		return parse_groups(v, vn, st);
	for (size_t i = 0; i < sizeof(status_keys) / sizeof(status_keys[0]); i++) {
		const struct status_key *k = &status_keys[i];
		int64_t *dst = (int64_t *)((char *)st + k->off);

		if (!key_is(key, kn, k->key))
			continue;
		if (k->kind == KB)
			return parse_kb(v, vn, dst);
		return parse_i64(v, vn, 0, INT64_MAX, dst);
	}
	return 0; /* a line we do not use: Umask, Sig*, Cap*, ... */
}

int pd_parse_status(const char *buf, size_t len, struct pd_status *out)
{
	struct pd_lines it = {buf, buf + len};
	struct pd_status st;
	unsigned seen = 0;
	const char *line;
	size_t n;
	int r;

	memset(&st, 0, sizeof(st));
	for (int i = 0; i < 4; i++)
		st.uid[i] = st.gid[i] = -1;
	for (size_t i = 0; i < sizeof(status_keys) / sizeof(status_keys[0]); i++)
		*(int64_t *)((char *)&st + status_keys[i].off) = -1;

	while ((r = pd_lines_next(&it, &line, &n)) > 0) {
		const char *colon = memchr(line, ':', n);

		if (!colon)
			return -EINVAL;
		r = status_line(&st, line, (size_t)(colon - line), colon + 1,
				n - (size_t)(colon - line) - 1, &seen);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	/* Every kernel writes these three; without them it is not a status file. */
	if (seen != 7)
		return -EINVAL;
	*out = st;
	return 0;
}

/* ---- /proc/PID/smaps_rollup -------------------------------------------- */

static const struct rollup_key {
	const char *key;
	size_t off;
} rollup_keys[] = {
	{"Rss", offsetof(struct pd_rollup, rss)},
	{"Pss", offsetof(struct pd_rollup, pss)},
	{"Shared_Clean", offsetof(struct pd_rollup, shared_clean)},
	{"Shared_Dirty", offsetof(struct pd_rollup, shared_dirty)},
	{"Private_Clean", offsetof(struct pd_rollup, private_clean)},
	{"Private_Dirty", offsetof(struct pd_rollup, private_dirty)},
	{"Referenced", offsetof(struct pd_rollup, referenced)},
	{"Anonymous", offsetof(struct pd_rollup, anonymous)},
	{"Swap", offsetof(struct pd_rollup, swap)},
	{"SwapPss", offsetof(struct pd_rollup, swap_pss)},
	{"Locked", offsetof(struct pd_rollup, locked)},
};
#define N_ROLLUP_KEYS (sizeof(rollup_keys) / sizeof(rollup_keys[0]))

static bool is_key(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !(s[i] >= '0' && s[i] <= '9') && s[i] != '_')
			return false;
	return true;
}

int pd_parse_smaps_rollup(const char *buf, size_t len, struct pd_rollup *out)
{
	struct pd_lines it = {buf, buf + len};
	struct pd_rollup ru;
	const char *line;
	bool first = true;
	size_t n;
	int r;

	for (size_t i = 0; i < N_ROLLUP_KEYS; i++)
		*(int64_t *)((char *)&ru + rollup_keys[i].off) = -1;
	while ((r = pd_lines_next(&it, &line, &n)) > 0) {
		const char *colon = memchr(line, ':', n);
		size_t kn = colon ? (size_t)(colon - line) : 0;

		/* The first line is the "start-end ---p ... [rollup]" header. */
		if (!is_key(line, kn)) {
			if (!first)
				return -EINVAL;
			first = false;
			continue;
		}
		first = false;
		for (size_t i = 0; i < N_ROLLUP_KEYS; i++) {
			if (!key_is(line, kn, rollup_keys[i].key))
				continue;
			r = parse_kb(colon + 1, n - kn - 1,
				     (int64_t *)((char *)&ru + rollup_keys[i].off));
			if (r < 0)
				return r;
			break;
		}
	}
	if (r < 0)
		return r;
	*out = ru;
	return 0;
}

/* ---- /proc/PID/maps ---------------------------------------------------- */

/* Cuts the next ' '-terminated token; the last token may end the line. */
static bool token(const char **s, size_t *n, const char **tok, size_t *tn)
{
	const char *sp = memchr(*s, ' ', *n);
	size_t k = sp ? (size_t)(sp - *s) : *n;

	if (k == 0)
		return false;
	*tok = *s;
	*tn = k;
	*s += sp ? k + 1 : k;
	*n -= sp ? k + 1 : k;
	return true;
}

static bool valid_perms(const char *p, size_t n)
{
	return n == 4 && (p[0] == 'r' || p[0] == '-') && (p[1] == 'w' || p[1] == '-') &&
	       (p[2] == 'x' || p[2] == '-') && (p[3] == 'p' || p[3] == 's');
}

static int parse_dev(const char *s, size_t n, struct pd_map *m)
{
	const char *colon = memchr(s, ':', n);
	uint64_t maj, min;
	int r;

	if (!colon)
		return -EINVAL;
	r = parse_hex_u64(s, (size_t)(colon - s), &maj);
	if (r == 0)
		r = parse_hex_u64(colon + 1, n - (size_t)(colon - s) - 1, &min);
	if (r == 0 && (maj > UINT_MAX || min > UINT_MAX))
		r = -ERANGE;
	if (r < 0)
		return r;
	m->dev_major = (unsigned)maj;
	m->dev_minor = (unsigned)min;
	return 0;
}

static int parse_range(const char *s, size_t n, struct pd_map *m)
{
	const char *dash = memchr(s, '-', n);
	int r;

	if (!dash)
		return -EINVAL;
	r = parse_hex_u64(s, (size_t)(dash - s), &m->start);
	if (r == 0)
		r = parse_hex_u64(dash + 1, n - (size_t)(dash - s) - 1, &m->end);
	if (r == 0 && m->end < m->start)
		r = -EINVAL;
	return r;
}

/* "start-end perms offset maj:min inode   path". *strings receives the path
 * (NUL-terminated) and is advanced past it. */
static int map_line(const char *s, size_t n, struct pd_map *m, char **strings)
{
	static const char deleted[] = " (deleted)";
	const size_t dn = sizeof(deleted) - 1;
	const char *t;
	size_t tn;
	int r;

	memset(m, 0, sizeof(*m));
	if (!token(&s, &n, &t, &tn))
		return -EINVAL;
	r = parse_range(t, tn, m);
	if (r < 0)
		return r;
	if (!token(&s, &n, &t, &tn) || !valid_perms(t, tn))
		return -EINVAL;
	memcpy(m->perms, t, 4);
	m->perms[4] = 0;
	if (!token(&s, &n, &t, &tn))
		return -EINVAL;
	r = parse_hex_u64(t, tn, &m->offset);
	if (r < 0)
		return r;
	if (!token(&s, &n, &t, &tn))
		return -EINVAL;
	r = parse_dev(t, tn, m);
	if (r < 0)
		return r;
	if (!token(&s, &n, &t, &tn))
		return -EINVAL;
	r = parse_u64(t, tn, UINT64_MAX, &m->inode);
	if (r < 0)
		return r;

	/* The kernel pads with spaces before the path; a path never starts
	 * with a space (it is absolute, "[...]" or "anon_inode:..."), but may
	 * contain them, so everything after the padding is the path. */
	skip_blanks(&s, &n);
	if (!n)
		return 0;
	/* No file name holds a NUL: one here would cut the path short. */
	if (memchr(s, 0, n))
		return -EINVAL;
	if (n > dn && memcmp(s + n - dn, deleted, dn) == 0) {
		m->deleted = true;
		n -= dn;
	}
	memcpy(*strings, s, n);
	(*strings)[n] = 0;
	m->path = *strings;
	*strings += n + 1;
	return 0;
}

void pd_maps_release(struct pd_maps *m)
{
	free(m->v);
	free(m->strings);
	m->n = 0;
	m->v = NULL;
	m->strings = NULL;
}

int pd_parse_maps(const char *buf, size_t len, struct pd_maps *out)
{
	struct pd_lines it = {buf, buf + len};
	struct pd_maps m = PD_MAPS_INIT;
	size_t alloc = 0;
	const char *line;
	char *sp;
	size_t n;
	int r;

	out->n = 0;
	out->v = NULL;
	out->strings = NULL;
	/* Each path is at most its line, and its NUL replaces the line's
	 * '\n', so len + 1 bytes hold them all and never move. */
	m.strings = malloc(len + 1);
	if (!m.strings)
		return -ENOMEM;
	sp = m.strings;
	while ((r = pd_lines_next(&it, &line, &n)) > 0) {
		if (m.n == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			struct pd_map *nv;

			/* n is bounded by len, so na * size cannot overflow
			 * before malloc fails, but say so explicitly. */
			if (na > SIZE_MAX / sizeof(*nv)) {
				r = -ENOMEM;
				break;
			}
			nv = realloc(m.v, na * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			m.v = nv;
			alloc = na;
		}
		r = map_line(line, n, &m.v[m.n], &sp);
		if (r < 0)
			break;
		m.n++;
	}
	if (r < 0) {
		pd_maps_release(&m);
		return r;
	}
	*out = m;
	return 0;
}

/* ---- NUL-separated lists ----------------------------------------------- */

void pd_strv_release(struct pd_strv *sv)
{
	free(sv->v);
	free(sv->len);
	free(sv->buf);
	sv->n = 0;
	sv->v = NULL;
	sv->len = NULL;
	sv->buf = NULL;
}

int pd_parse_nulsep(const char *buf, size_t len, struct pd_strv *out)
{
	struct pd_strv sv = PD_STRV_INIT;
	size_t n = 0, start = 0;

	*out = sv;
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		n += buf[i] == 0;
	if (buf[len - 1] != 0)
		n++; /* the last item lost its NUL (a process rewrote its argv) */
	/* The copy gets one more byte for a NUL the input may lack. */
	sv.buf = malloc(len + 1);
	sv.v = calloc(n, sizeof(*sv.v));
	sv.len = calloc(n, sizeof(*sv.len));
	if (!sv.buf || !sv.v || !sv.len) {
		pd_strv_release(&sv);
		return -ENOMEM;
	}
	memcpy(sv.buf, buf, len);
	sv.buf[len] = 0;
	for (size_t i = 0; i <= len && sv.n < n; i++) {
		if (sv.buf[i] != 0)
			continue;
		sv.v[sv.n] = sv.buf + start;
		sv.len[sv.n] = i - start;
		sv.n++;
		start = i + 1;
	}
	*out = sv;
	return 0;
}

/* ---- /proc/stat -------------------------------------------------------- */

int pd_parse_btime(const char *buf, size_t len, int64_t *out)
{
	struct pd_lines it = {buf, buf + len};
	const char *line;
	size_t n;
	int r;

	while ((r = pd_lines_next(&it, &line, &n)) > 0) {
		if (has_prefix(line, n, "btime ")) {
			uint64_t v;
			/* The kernel prints it unsigned: "-0" is not a time. */
			int r2 = parse_u64(line + 6, n - 6, INT64_MAX, &v);

			if (r2 == 0)
				*out = (int64_t)v;
			return r2;
		}
	}
	return -EINVAL;
}

/* ---- reading ------------------------------------------------------------ */

int pd_read_file_at(int dirfd, const char *path, struct strbuf *sb, size_t max)
{
	size_t orig = sb->len, limit;
	int fd, r;

	/* O_NOCTTY: path may name a tty under /proc/PID/fd. The errors of
	 * openat() and read() pass through unchanged: ENOENT from the open
	 * and ESRCH from the read both mean the process went away, and the
	 * caller knows which file it asked for. */
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* strbuf_read_fd() fails once the buffer reaches its limit, even at
	 * EOF; one byte of slack lets a file of exactly max bytes through. */
	limit = max < SIZE_MAX - orig - 1 ? orig + max + 1 : SIZE_MAX;
	r = strbuf_read_fd(sb, fd, limit);
	close(fd);
	if (r < 0) {
		/* Half a file parses as something else; give nothing. */
		strbuf_setlen(sb, orig);
		return r;
	}
	return 0;
}
