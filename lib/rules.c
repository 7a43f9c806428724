#include "config.h"

#include "lib/rules.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/numparse.h"
#include "lib/cgroupstat.h"
#include "lib/procfs.h"
#include "lib/users.h"

/* The keys, one bit each in r->seen. */
static const char *const keys[] = {
	"site", "name", "cmdline", "cmdline_regex", "uid", "cgroup", "trigger", "for",
	"action", "dump_type", "format", "count", "interval", "egress",
};

/* The signals the kernel dumps core for (signal(7), "Core"). */
static const struct {
	const char *name;
	int sig;
} core_signals[] = {
	{ "SEGV", SIGSEGV }, { "ABRT", SIGABRT }, { "BUS", SIGBUS },   { "FPE", SIGFPE },
	{ "ILL", SIGILL },   { "QUIT", SIGQUIT }, { "SYS", SIGSYS },   { "TRAP", SIGTRAP },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
};
#define NCORE_SIGNALS (sizeof(core_signals) / sizeof(core_signals[0]))

static int why_f(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int why_f(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

bool pd_rule_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > PD_RULE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

void pd_rule_init(struct pd_rule *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->action.dump = true;
	pd_dumptype_parse("Full", &r->action.type, NULL);
	snprintf(r->action.type_text, sizeof(r->action.type_text), "Full");
	r->action.format = PD_DUMP_FORMAT_RAW;
	r->count = 1;
	r->interval_ms = 60000;
}

void pd_rule_release(struct pd_rule *r)
{
	free(r->filter.name);
	free(r->filter.cmdline);
	if (r->filter.cmdline_regex)
		regfree(&r->filter.re);
	free(r->filter.cmdline_regex);
	free(r->filter.cgroup);
	free(r->file);
	memset(r, 0, sizeof(*r));
}

/* A filter's text (each key is set once: the slot is empty). */
static int set_str(char **slot, const char *v)
{
	*slot = strdup(v);
	return *slot ? 0 : -ENOMEM;
}

/* "80", "80.5", "80.25%": hundredths, at most max (hundredths). */
static int parse_centi(const char *v, uint32_t max, uint32_t *out)
{
	size_t len = strlen(v), ip;
	uint64_t whole, frac = 0;
	const char *dot;

	if (len && v[len - 1] == '%')
		len--;
	dot = memchr(v, '.', len);
	ip = dot ? (size_t)(dot - v) : len;
	if (parse_u64(v, ip, max / 100, &whole) < 0)
		return -EINVAL;
	if (dot) {
		size_t fl = len - ip - 1;

		if (fl < 1 || fl > 2 || parse_u64(dot + 1, fl, 99, &frac) < 0)
			return -EINVAL;
		if (fl == 1)
			frac *= 10;
	}
	if (whole * 100 + frac > max)
		return -EINVAL;
	*out = (uint32_t)(whole * 100 + frac);
	return 0;
}

/* Splits s (modified) into at most max space-separated words. */
static size_t split_words(char *s, char **w, size_t max)
{
	size_t n = 0;

	while (*s) {
		while (*s == ' ' || *s == '\t')
			*s++ = 0;
		if (!*s)
			break;
		if (n == max)
			return max + 1;
		w[n++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
	}
	return n;
}

static int signal_by_name(const char *s, size_t len)
{
	uint64_t n;

	if (len > 3 && !strncasecmp(s, "SIG", 3)) {
		s += 3;
		len -= 3;
	}
	for (size_t i = 0; i < NCORE_SIGNALS; i++)
		if (strlen(core_signals[i].name) == len && !strncasecmp(s, core_signals[i].name, len))
			return core_signals[i].sig;
	if (parse_u64(s, len, 64, &n) == 0 && n >= 1)
		for (size_t i = 0; i < NCORE_SIGNALS; i++)
			if (core_signals[i].sig == (int)n)
				return (int)n;
	return -1;
}

static int parse_trigger(struct pd_rule_trigger *t, const char *val, char *why, size_t whylen)
{
	char buf[256];
	char *w[5];
	size_t n;

	memset(t, 0, sizeof(*t));
	if (strlen(val) >= sizeof(buf))
		return why_f(why, whylen, "trigger is too long");
	strcpy(buf, val);
	n = split_words(buf, w, 4);
	if (n == 0)
		return why_f(why, whylen, "trigger needs a value");
	if (n > 4)
		return why_f(why, whylen, "trigger has too many words: '%s'", val);
	if (!strcmp(w[0], "cpu_above") || !strcmp(w[0], "cpu_below")) {
		bool above = w[0][4] == 'a';

		t->kind = above ? PD_TRIGGER_CPU_ABOVE : PD_TRIGGER_CPU_BELOW;
		if (n == 3 && !strcmp(w[2], "machine"))
			t->machine = true;
		else if (n != 2)
			return why_f(why, whylen, "trigger %s takes a percentage and optionally "
				     "'machine': '%s'", w[0], val);
		/* Of one core a process may use many cores: up to 1000000 %. */
		if (parse_centi(w[1], t->machine ? 10000 : 100000000, &t->centi) < 0)
			return why_f(why, whylen, "trigger %s: '%s' is not a percentage%s", w[0],
				     w[1], t->machine ? " of 0..100" : "");
		return 0;
	}
	if (!strcmp(w[0], "cgroup_memory_above")) {
		t->kind = PD_TRIGGER_CGROUP_MEMORY_ABOVE;
		if (n != 2 || parse_centi(w[1], 10000, &t->centi) < 0)
			return why_f(why, whylen, "trigger cgroup_memory_above takes a percentage "
				     "0..100: '%s'", val);
		return 0;
	}
	if (!strcmp(w[0], "pressure_above")) {
		t->kind = PD_TRIGGER_PRESSURE_ABOVE;
		if (n < 3 || (strcmp(w[1], "some") && strcmp(w[1], "full")) ||
		    (n == 4 && strcmp(w[3], "system")) ||
		    parse_centi(w[2], 10000, &t->centi) < 0)
			return why_f(why, whylen, "trigger pressure_above takes some or full, a "
				     "percentage 0..100 and optionally 'system': '%s'", val);
		t->full = w[1][0] == 'f';
		t->system = n == 4;
		return 0;
	}
	if (!strcmp(w[0], "rss_above")) {
		t->kind = PD_TRIGGER_RSS_ABOVE;
		if (n != 2 || parse_bytes(w[1], &t->n) < 0 || t->n == 0)
			return why_f(why, whylen, "trigger rss_above takes a size (bytes, or with K, "
				     "M, G, T): '%s'", val);
		return 0;
	}
	if (!strcmp(w[0], "threads_above") || !strcmp(w[0], "fds_above")) {
		t->kind = w[0][0] == 't' ? PD_TRIGGER_THREADS_ABOVE : PD_TRIGGER_FDS_ABOVE;
		if (n != 2 || parse_u64(w[1], strlen(w[1]), 1u << 30, &t->n) < 0)
			return why_f(why, whylen, "trigger %s takes a count: '%s'", w[0], val);
		return 0;
	}
	if (!strcmp(w[0], "timer")) {
		t->kind = PD_TRIGGER_TIMER;
		if (n != 2 || parse_duration_ms(w[1], 365ull * 86400000, &t->n) < 0 || t->n < 1000)
			return why_f(why, whylen, "trigger timer takes a period of at least 1 s "
				     "(seconds, or with s, m, h, d): '%s'", val);
		return 0;
	}
	if (!strcmp(w[0], "crash")) {
		t->kind = PD_TRIGGER_CRASH;
		if (n > 2)
			return why_f(why, whylen, "trigger crash takes one comma-separated list of "
				     "signals: '%s'", val);
		if (n == 2) {
			for (const char *p = w[1]; *p;) {
				const char *c = strchr(p, ',');
				size_t len = c ? (size_t)(c - p) : strlen(p);
				int sig = signal_by_name(p, len);

				if (sig < 0)
					return why_f(why, whylen, "trigger crash: '%.*s' is not a "
						     "signal that dumps core (SEGV, ABRT, BUS, FPE, ILL, "
						     "QUIT, SYS, TRAP, XCPU, XFSZ)", (int)len, p);
				t->signals |= 1ull << sig;
				p += len + (c != NULL);
			}
		}
		return 0;
	}
	return why_f(why, whylen, "unknown trigger '%s' (cpu_above, cpu_below, rss_above, "
		     "cgroup_memory_above, pressure_above, threads_above, fds_above, timer, "
		     "crash)", w[0]);
}

int pd_rule_set(struct pd_rule *r, const char *key, const char *val, char *why, size_t whylen)
{
	size_t k;

	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		if (!strcmp(key, keys[k]))
			break;
	if (k == sizeof(keys) / sizeof(keys[0]))
		return why_f(why, whylen, "unknown key '%s' in rule '%s'", key, r->name);
	if (r->seen & (1u << k))
		return why_f(why, whylen, "'%s' is set twice in rule '%s'", key, r->name);
	r->seen |= 1u << k;

	if (!strcmp(key, "site")) {
		if (!strcmp(val, "true"))
			r->filter.site = true;
		else if (strcmp(val, "false"))
			return why_f(why, whylen, "site must be true or false");
		return 0;
	}
	if (!strcmp(key, "name") || !strcmp(key, "cmdline") || !strcmp(key, "cgroup")) {
		if (!*val)
			return why_f(why, whylen, "%s needs a value", key);
		if (key[0] == 'c' && key[1] == 'g' && val[0] != '/')
			return why_f(why, whylen, "cgroup must be a path starting with '/'");
		if (key[0] == 'n' && (strchr(val, '/') || strlen(val) > 255))
			return why_f(why, whylen, "name must be a file name (no '/')");
		return set_str(key[0] == 'n'	 ? &r->filter.name
			       : key[1] == 'm' ? &r->filter.cmdline
					       : &r->filter.cgroup,
			       val);
	}
	if (!strcmp(key, "cmdline_regex")) {
		int rc;

		if (!*val)
			return why_f(why, whylen, "cmdline_regex needs a value");
		rc = regcomp(&r->filter.re, val, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char msg[128];

			regerror(rc, &r->filter.re, msg, sizeof(msg));
			return why_f(why, whylen, "cmdline_regex is not a POSIX extended regex: %s",
				     msg);
		}
		if (set_str(&r->filter.cmdline_regex, val) < 0) {
			regfree(&r->filter.re);
			return -ENOMEM;
		}
		return 0;
	}
	if (!strcmp(key, "uid")) {
		if (!*val || pd_user_lookup(val, &r->filter.uid) < 0)
			return why_f(why, whylen, "uid: no user '%s' (a user name or a uid)", val);
		r->filter.has_uid = true;
		return 0;
	}
	if (!strcmp(key, "trigger"))
		return parse_trigger(&r->trigger, val, why, whylen);
	if (!strcmp(key, "for") || !strcmp(key, "interval")) {
		uint64_t ms;

		if (parse_duration_ms(val, 30ull * 86400000, &ms) < 0)
			return why_f(why, whylen, "%s must be a duration up to 30d (seconds, or with "
				     "ms, s, m, h, d): '%s'", key, val);
		*(key[0] == 'f' ? &r->for_ms : &r->interval_ms) = ms;
		return 0;
	}
	if (!strcmp(key, "action")) {
		if (!strcmp(val, "dump"))
			r->action.dump = true, r->action.stacks = false;
		else if (!strcmp(val, "stacks"))
			r->action.dump = false, r->action.stacks = true;
		else if (!strcmp(val, "dump+stacks") || !strcmp(val, "stacks+dump"))
			r->action.dump = true, r->action.stacks = true;
		else
			return why_f(why, whylen, "action must be dump, stacks or dump+stacks");
		return 0;
	}
	if (!strcmp(key, "dump_type")) {
		uint32_t bad = 0;
		int rc = pd_dumptype_parse(val, &r->action.type, &bad);

		if (rc < 0 || !*val || strlen(val) >= sizeof(r->action.type_text))
			return why_f(why, whylen, "dump_type must be Full, Mini, WithHeap, Triage or "
				     "a MINIDUMP_TYPE number: '%s'", val);
		snprintf(r->action.type_text, sizeof(r->action.type_text), "%s", val);
		return 0;
	}
	if (!strcmp(key, "egress")) {
		size_t n = strlen(val);

		if (!n || n >= sizeof(r->action.egress) || strspn(val, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
						  "abcdefghijklmnopqrstuvwxyz0123456789._-") != n)
			return why_f(why, whylen, "egress must name an [egress NAME] section: '%s'",
				     val);
		memcpy(r->action.egress, val, n + 1);
		return 0;
	}
	if (!strcmp(key, "format")) {
		if (!strcmp(val, "raw"))
			r->action.format = PD_DUMP_FORMAT_RAW;
		else if (!strcmp(val, "zip"))
			r->action.format = PD_DUMP_FORMAT_ZIP;
		else if (!strcmp(val, "zstd"))
			r->action.format = PD_DUMP_FORMAT_ZSTD;
		else
			return why_f(why, whylen, "format must be raw, zip or zstd");
		return 0;
	}
	/* count */
	{
		uint64_t n;

		if (parse_u64(val, strlen(val), 1000000, &n) < 0)
			return why_f(why, whylen, "count must be 0..1000000 (0: unlimited)");
		r->count = (unsigned)n;
	}
	return 0;
}

int pd_rule_check(const struct pd_rule *r, char *why, size_t whylen)
{
	if (r->trigger.kind == PD_TRIGGER_NONE)
		return why_f(why, whylen, "rule '%s' has no trigger", r->name);
	if (r->trigger.kind == PD_TRIGGER_CRASH) {
		if (r->action.stacks)
			return why_f(why, whylen, "rule '%s': a crash rule's action is a dump (a dead "
				     "process has no stacks to unwind)", r->name);
		if (r->for_ms)
			return why_f(why, whylen, "rule '%s': 'for' has no meaning for a crash",
				     r->name);
	}
	if (r->trigger.kind == PD_TRIGGER_TIMER && r->for_ms)
		return why_f(why, whylen, "rule '%s': 'for' has no meaning for a timer", r->name);
	if ((r->seen & (1u << 9 | 1u << 10 | 1u << 13)) && !r->action.dump)
		return why_f(why, whylen, "rule '%s': dump_type and format (and egress) are for "
			     "an action with a dump", r->name);
	if (r->action.egress[0] && r->trigger.kind == PD_TRIGGER_CRASH)
		return why_f(why, whylen, "rule '%s': egress is not (yet) for crash rules: the "
			     "crash handler writes into the store", r->name);
	return 0;
}

int pd_ruleset_add(struct pd_ruleset *s, struct pd_rule *r)
{
	struct pd_rule *v;

	if (pd_ruleset_find(s, r->name))
		return -EEXIST;
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	/* regex_t may not be moved safely on every libc: compile it anew. */
	s->v[s->n] = *r;
	if (r->filter.cmdline_regex) {
		regfree(&r->filter.re);
		if (regcomp(&s->v[s->n].filter.re, r->filter.cmdline_regex,
			    REG_EXTENDED | REG_NOSUB)) {
			free(r->filter.name), free(r->filter.cmdline), free(r->filter.cgroup);
			free(r->filter.cmdline_regex), free(r->file);
			memset(r, 0, sizeof(*r));
			return -ENOMEM;
		}
	}
	s->n++;
	memset(r, 0, sizeof(*r));
	return 0;
}

const struct pd_rule *pd_ruleset_find(const struct pd_ruleset *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, name))
			return &s->v[i];
	return NULL;
}

void pd_ruleset_release(struct pd_ruleset *s)
{
	for (size_t i = 0; i < s->n; i++)
		pd_rule_release(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

const char *pd_trigger_name(enum pd_trigger_kind k)
{
	switch (k) {
	case PD_TRIGGER_CPU_ABOVE: return "cpu_above";
	case PD_TRIGGER_CPU_BELOW: return "cpu_below";
	case PD_TRIGGER_RSS_ABOVE: return "rss_above";
	case PD_TRIGGER_CGROUP_MEMORY_ABOVE: return "cgroup_memory_above";
	case PD_TRIGGER_PRESSURE_ABOVE: return "pressure_above";
	case PD_TRIGGER_THREADS_ABOVE: return "threads_above";
	case PD_TRIGGER_FDS_ABOVE: return "fds_above";
	case PD_TRIGGER_TIMER: return "timer";
	case PD_TRIGGER_CRASH: return "crash";
	case PD_TRIGGER_NONE: break;
	}
	return "none";
}

static void add_centi(struct strbuf *sb, uint32_t c)
{
	if (c % 100)
		strbuf_addf(sb, " %u.%02u", c / 100, c % 100);
	else
		strbuf_addf(sb, " %u", c / 100);
}

int pd_rule_trigger_format(const struct pd_rule_trigger *t, struct strbuf *sb)
{
	strbuf_addstr(sb, pd_trigger_name(t->kind));
	switch (t->kind) {
	case PD_TRIGGER_CPU_ABOVE:
	case PD_TRIGGER_CPU_BELOW:
		add_centi(sb, t->centi);
		if (t->machine)
			strbuf_addstr(sb, " machine");
		break;
	case PD_TRIGGER_CGROUP_MEMORY_ABOVE:
		add_centi(sb, t->centi);
		break;
	case PD_TRIGGER_PRESSURE_ABOVE:
		strbuf_addstr(sb, t->full ? " full" : " some");
		add_centi(sb, t->centi);
		if (t->system)
			strbuf_addstr(sb, " system");
		break;
	case PD_TRIGGER_RSS_ABOVE:
	case PD_TRIGGER_THREADS_ABOVE:
	case PD_TRIGGER_FDS_ABOVE:
		strbuf_addf(sb, " %llu", (unsigned long long)t->n);
		break;
	case PD_TRIGGER_TIMER:
		if (t->n % 1000)
			strbuf_addf(sb, " %llums", (unsigned long long)t->n);
		else
			strbuf_addf(sb, " %llu", (unsigned long long)(t->n / 1000));
		break;
	case PD_TRIGGER_CRASH: {
		const char *sep = " ";

		for (size_t i = 0; i < NCORE_SIGNALS; i++)
			if (t->signals & (1ull << core_signals[i].sig)) {
				strbuf_addf(sb, "%s%s", sep, core_signals[i].name);
				sep = ",";
			}
		break;
	}
	case PD_TRIGGER_NONE:
		break;
	}
	return sb->failed ? -ENOMEM : 0;
}

void pd_duration_text(uint64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = { { "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 } };

	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[i].ms),
				 units[i].unit);
			return;
		}
	snprintf(buf, len, "%llums", (unsigned long long)ms);
}

const char *pd_dump_format_name(enum pd_dump_format f)
{
	return f == PD_DUMP_FORMAT_ZIP ? "zip" : f == PD_DUMP_FORMAT_ZSTD ? "zstd" : "raw";
}

const char *pd_rule_action_name(const struct pd_rule_action *a)
{
	return a->dump && a->stacks ? "dump+stacks" : a->stacks ? "stacks" : "dump";
}

int pd_rule_format(const struct pd_rule *r, struct strbuf *sb)
{
	const struct pd_rule_filter *f = &r->filter;
	char d[32];

	strbuf_addf(sb, "[rule %s]\n", r->name);
	if (f->site)
		strbuf_addstr(sb, "site = true\n");
	if (f->name)
		strbuf_addf(sb, "name = %s\n", f->name);
	if (f->cmdline)
		strbuf_addf(sb, "cmdline = %s\n", f->cmdline);
	if (f->cmdline_regex)
		strbuf_addf(sb, "cmdline_regex = %s\n", f->cmdline_regex);
	if (f->has_uid)
		strbuf_addf(sb, "uid = %u\n", (unsigned)f->uid);
	if (f->cgroup)
		strbuf_addf(sb, "cgroup = %s\n", f->cgroup);
	strbuf_addstr(sb, "trigger = ");
	pd_rule_trigger_format(&r->trigger, sb);
	pd_duration_text(r->for_ms, d, sizeof(d));
	strbuf_addf(sb, "\nfor = %s\naction = %s\n", d, pd_rule_action_name(&r->action));
	if (r->action.dump)
		strbuf_addf(sb, "dump_type = %s\nformat = %s\n", r->action.type_text,
			    pd_dump_format_name(r->action.format));
	if (r->action.egress[0])
		strbuf_addf(sb, "egress = %s\n", r->action.egress);
	pd_duration_text(r->interval_ms, d, sizeof(d));
	strbuf_addf(sb, "count = %u\ninterval = %s\n", r->count, d);
	return sb->failed ? -ENOMEM : 0;
}

bool pd_rule_crash_signal(const struct pd_rule *r, int sig)
{
	if (r->trigger.kind != PD_TRIGGER_CRASH || sig < 1 || sig > 63)
		return false;
	if (r->trigger.signals)
		return (r->trigger.signals >> sig) & 1;
	for (size_t i = 0; i < NCORE_SIGNALS; i++)
		if (core_signals[i].sig == sig)
			return true;
	return false;
}

void pd_rule_procbuf_release(struct pd_rule_procbuf *b)
{
	strbuf_release(&b->comm);
	strbuf_release(&b->exe);
	strbuf_release(&b->cmdline);
	strbuf_release(&b->cgroup);
}

bool pd_rule_needs_facts(const struct pd_rule *r)
{
	return r->filter.name || r->filter.cmdline || r->filter.cmdline_regex;
}

/* Is prefix a whole-component prefix of path ("/a/b" of "/a/b" and
 * "/a/b/c", not of "/a/bc"; "/" of everything)? */
static bool cgroup_prefix(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);

	while (n > 1 && prefix[n - 1] == '/')
		n--;
	if (n == 1)
		return path[0] == '/';
	return !strncmp(prefix, path, n) && (path[n] == 0 || path[n] == '/');
}

bool pd_rule_matches_run(const struct pd_rule *r, const struct pd_rule_proc *p)
{
	const struct pd_rule_filter *f = &r->filter;

	if (f->name && strcmp(f->name, p->comm) && strcmp(f->name, p->exe_name))
		return false;
	if (f->cmdline && !strstr(p->cmdline, f->cmdline))
		return false;
	if (f->cmdline_regex && regexec(&f->re, p->cmdline, 0, NULL, 0))
		return false;
	return true;
}

bool pd_rule_matches_now(const struct pd_rule *r, const struct pd_rule_proc *p)
{
	const struct pd_rule_filter *f = &r->filter;

	if (f->site && !p->is_site)
		return false;
	if (f->has_uid && f->uid != p->uid)
		return false;
	if (f->cgroup && !cgroup_prefix(f->cgroup, p->cgroup))
		return false;
	return true;
}

bool pd_rule_matches(const struct pd_rule *r, const struct pd_rule_proc *p)
{
	return pd_rule_matches_now(r, p) && pd_rule_matches_run(r, p);
}

/* The path of the process's cgroup from /proc/PID/cgroup text in sb: the
 * v1 memory controller's where there is one (its files are the memory
 * ones), else the v2 "0::" path, written over the text ("" if neither). */
static void pick_cgroup(struct strbuf *sb)
{
	struct pd_proc_cgroup cg;
	const char *path = "";

	if (pd_cgroup_parse_proc(sb->buf, sb->len, &cg) == 0)
		path = cg.has_v1mem ? cg.v1mem : cg.has_v2 ? cg.v2 : "";
	strbuf_reset(sb);
	strbuf_addstr(sb, path);
}

int pd_rule_proc_read(int pid, int dirfd, struct pd_rule_proc *p, struct pd_rule_procbuf *b)
{
	char path[32];
	int own = -1, rc = 0;
	struct stat st;
	struct pd_stat s;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	strbuf_reset(&b->comm);
	strbuf_reset(&b->exe);
	strbuf_reset(&b->cmdline);
	strbuf_reset(&b->cgroup);
	if (dirfd < 0) {
		snprintf(path, sizeof(path), "/proc/%d", pid);
		own = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (own < 0)
			return errno == ENOENT ? -ESRCH : -errno;
		dirfd = own;
	}
	if (fstat(dirfd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	p->uid = st.st_uid;
	if (pd_read_file_at(dirfd, "stat", &b->cmdline, 4096) < 0 ||
	    pd_parse_stat(b->cmdline.buf, b->cmdline.len, &s) < 0) {
		rc = -ESRCH;
		goto out;
	}
	strbuf_reset(&b->cmdline);
	if (strbuf_add(&b->comm, s.comm, s.comm_len) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	/* exe: its basename, " (deleted)" cut */
	for (size_t room = 256;; room *= 4) {
		ssize_t n;

		if (strbuf_grow(&b->exe, room) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		n = readlinkat(dirfd, "exe", b->exe.buf, b->exe.alloc - 1);
		if (n < 0) {
			strbuf_setlen(&b->exe, 0);
			break;
		}
		if ((size_t)n < b->exe.alloc - 1) {
			const char *slash;
			size_t blen;

			strbuf_setlen(&b->exe, (size_t)n);
			if (b->exe.len > 10 && !strcmp(b->exe.buf + b->exe.len - 10, " (deleted)"))
				strbuf_setlen(&b->exe, b->exe.len - 10);
			slash = memrchr(b->exe.buf, '/', b->exe.len);
			if (slash) {
				blen = b->exe.len - (size_t)(slash + 1 - b->exe.buf);
				memmove(b->exe.buf, slash + 1, blen);
				strbuf_setlen(&b->exe, blen);
			}
			break;
		}
		if (room > (1u << 16)) {
			strbuf_setlen(&b->exe, 0);
			break;
		}
	}
	if (pd_read_file_at(dirfd, "cmdline", &b->cmdline, 1u << 20) == 0) {
		while (b->cmdline.len && b->cmdline.buf[b->cmdline.len - 1] == 0)
			b->cmdline.len--;
		for (size_t i = 0; i < b->cmdline.len; i++)
			if (b->cmdline.buf[i] == 0)
				b->cmdline.buf[i] = ' ';
		strbuf_setlen(&b->cmdline, b->cmdline.len);
	}
	if (pd_read_file_at(dirfd, "cgroup", &b->cgroup, 1u << 16) == 0)
		pick_cgroup(&b->cgroup);
	if (b->comm.failed || b->exe.failed || b->cmdline.failed || b->cgroup.failed)
		rc = -ENOMEM;
out:
	p->comm = b->comm.buf;
	p->exe_name = b->exe.buf;
	p->cmdline = b->cmdline.buf;
	p->cgroup = b->cgroup.buf;
	if (own >= 0)
		close(own);
	return rc;
}
