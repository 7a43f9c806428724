#include "config.h"

#include "handlers/conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/numparse.h"
#include "common/strbuf.h"
#include "fcgi/origin.h"

#define CONFIG_MAX (1024 * 1024)

int pd_config_init(struct pd_config *c)
{
	memset(c, 0, sizeof(*c));
	c->threads = 16;
	c->log_requests = true;
	c->max_dumps = 1;
	c->spool_memory_max = PD_SPOOL_MEMORY_MAX_DEFAULT;
	c->request_read_timeout = 5;
	c->send_timeout = 60;
	c->download_min_rate = 256 << 10;
	c->drain_timeout = 30;
	c->resume_timeout = 120;
	c->rules_interval_ms = 1000;
	c->max_actions = 1;
	c->crash_timeout = 60;
	c->store_limits.max_count = PD_STORE_MAX_COUNT_DEFAULT;
	return pd_scope_init_self(&c->scope);
}

void pd_config_release(struct pd_config *c)
{
	free(c->listen);
	free(c->site_pid_file);
	free(c->spool_dir);
	free(c->public_url);
	free(c->store_dir);
	pd_keyset_release(&c->keys);
	pd_scope_release(&c->scope);
	pd_ruleset_release(&c->rules);
	for (size_t i = 0; i < c->negress; i++)
		pd_egress_provider_release(&c->egress[i]);
	free(c->egress);
	memset(c, 0, sizeof(*c));
}

static int fail(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "%s:%d: ", name, line);

	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int set_string(char **slot, const char *v)
{
	char *s = strdup(v);

	if (!s)
		return -ENOMEM;
	free(*slot);
	*slot = s;
	return 0;
}

enum { SEEN_LISTEN = 1, SEEN_THREADS = 2, SEEN_SCOPE = 4, SEEN_SITE = 8, SEEN_PROXY = 16,
       SEEN_LOG = 32, SEEN_LIST_AGE = 64, SEEN_SPOOL = 128, SEEN_SPOOL_MEM = 256,
       SEEN_MAX_DUMPS = 512, SEEN_PUBLIC_URL = 1024, SEEN_READ_TIMEOUT = 2048,
       SEEN_SEND_TIMEOUT = 4096, SEEN_MIN_RATE = 8192, SEEN_DRAIN = 16384,
       SEEN_RESUME = 32768, SEEN_RULES_INTERVAL = 65536, SEEN_MAX_ACTIONS = 131072 };
/* The crash handler's keys (docs/CRASH.md). */
enum { SEEN_CRASH_TIMEOUT = 1u << 28, SEEN_CRASH_CHAIN = 1u << 29 };

/* A byte count: digits, optionally followed by K, M or G (common/numparse.h). */
static int parse_size(const char *v, uint64_t *out)
{
	return parse_bytes(v, out) < 0 ? -EINVAL : 0;
}

/* One of the store's bounds (docs/STORE.md), which = "max_count",
 * "max_bytes" or "max_age": the store's store_max_* keys and a filesystem
 * egress's max_* keys (key, as written, names it in the message). */
static int parse_limit(struct pd_store_limits *l, const char *key, const char *which,
		       const char *val, const char *name, int line, char *err, size_t errlen)
{
	uint64_t n;

	if (!strcmp(which, "max_count")) {
		if (parse_u64(val, strlen(val), 1000000, &n) < 0)
			return fail(err, errlen, name, line,
				    "%s must be 0..1000000 entries (0: no bound)", key);
		l->max_count = (unsigned)n;
	} else if (!strcmp(which, "max_bytes")) {
		if (parse_bytes(val, &l->max_bytes) < 0)
			return fail(err, errlen, name, line,
				    "%s must be a byte count, optionally with K, M, G or T (0: no "
				    "bound)",
				    key);
	} else {
		/* Up to ten years; bare digits are seconds. */
		if (parse_duration_ms(val, 3650ull * 86400 * 1000, &n) < 0 || (n && n < 1000))
			return fail(err, errlen, name, line,
				    "%s must be seconds, or a number with s, m, h or d, up to 3650d "
				    "(0: no bound)",
				    key);
		l->max_age_s = n / 1000;
	}
	return 0;
}

/* The dump store's keys (docs/STORE.md): 1 when key is none of them.
 * Their "set twice" bits are high, apart from apply()'s list. */
static int apply_store(struct pd_config *c, const char *key, const char *val, unsigned *seen,
		       const char *name, int line, char *err, size_t errlen)
{
	static const char *const keys[] = {"store_dir", "store_max_count", "store_max_bytes",
					   "store_max_age"};
	struct pd_store_limits *l = &c->store_limits;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]) && strcmp(key, keys[i]); i++)
		;
	if (i == sizeof(keys) / sizeof(keys[0]))
		return 1;
	if (*seen & (1u << (24 + i)))
		return fail(err, errlen, name, line, "'%s' is set twice", key);
	*seen |= 1u << (24 + i);
	if (i == 0) {
		if (val[0] != '/')
			return fail(err, errlen, name, line, "store_dir must be an absolute path");
		return set_string(&c->store_dir, val);
	}
	return parse_limit(l, key, keys[i] + 6, val, name, line, err, errlen);
}

/* One "key = value" line, both trimmed. */
static int apply(struct pd_config *c, const char *key, const char *val, unsigned *seen,
		 const char *name, int line, char *err, size_t errlen)
{
	static const struct {
		const char *key;
		unsigned bit;
	} single[] = {
		{ "listen", SEEN_LISTEN }, { "threads", SEEN_THREADS }, { "scope", SEEN_SCOPE },
		{ "site_pid_file", SEEN_SITE }, { "trust_proxy", SEEN_PROXY },
		{ "log_requests", SEEN_LOG }, { "list_max_age_ms", SEEN_LIST_AGE },
		{ "spool_dir", SEEN_SPOOL }, { "spool_memory_max", SEEN_SPOOL_MEM },
		{ "max_dumps", SEEN_MAX_DUMPS }, { "public_url", SEEN_PUBLIC_URL },
		{ "request_read_timeout", SEEN_READ_TIMEOUT }, { "send_timeout", SEEN_SEND_TIMEOUT },
		{ "download_min_rate", SEEN_MIN_RATE }, { "drain_timeout", SEEN_DRAIN },
		{ "resume_timeout", SEEN_RESUME }, { "rules_interval_ms", SEEN_RULES_INTERVAL },
		{ "max_actions", SEEN_MAX_ACTIONS },
		{ "crash_timeout", SEEN_CRASH_TIMEOUT }, { "crash_chain", SEEN_CRASH_CHAIN },
	};
	bool b;
	int sr = apply_store(c, key, val, seen, name, line, err, errlen);

	if (sr <= 0)
		return sr;
	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		if (strcmp(key, single[i].key))
			continue;
		if (*seen & single[i].bit)
			return fail(err, errlen, name, line, "'%s' is set twice", key);
		*seen |= single[i].bit;
	}
	if (!strcmp(key, "api_key_sha256")) {
		int r = pd_keyset_add_hex(&c->keys, val);

		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return fail(err, errlen, name, line,
				    "api_key_sha256 must be 64 hex digits (see 'procdiag genkey')");
	} else if (!strcmp(key, "listen")) {
		if (!*val)
			return fail(err, errlen, name, line, "listen needs a value");
		return set_string(&c->listen, val);
	} else if (!strcmp(key, "threads")) {
		uint64_t n;

		if (parse_u64(val, strlen(val), 256, &n) < 0 || n < 1)
			return fail(err, errlen, name, line, "threads must be 1..256");
		c->threads = (int)n;
	} else if (!strcmp(key, "list_max_age_ms")) {
		uint64_t n;

		if (parse_u64(val, strlen(val), 60000, &n) < 0)
			return fail(err, errlen, name, line, "list_max_age_ms must be 0..60000");
		c->list_max_age_ms = (int)n;
	} else if (!strcmp(key, "scope")) {
		struct pd_scope s = PD_SCOPE_INIT;
		int r = pd_scope_parse(&s, val);

		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return fail(err, errlen, name, line,
				    "scope must be self, all, or a list of users/uids: '%s'", val);
		pd_scope_release(&c->scope);
		c->scope = s;
	} else if (!strcmp(key, "site_pid_file")) {
		if (val[0] != '/')
			return fail(err, errlen, name, line, "site_pid_file must be an absolute path");
		return set_string(&c->site_pid_file, val);
	} else if (!strcmp(key, "public_url")) {
		char url[PD_PUBLIC_URL_MAX + 1];
		const char *why;

		if (pd_public_url_parse(val, url, sizeof(url), &why) < 0)
			return fail(err, errlen, name, line, "public_url %s", why);
		return set_string(&c->public_url, url);
	} else if (!strcmp(key, "spool_dir")) {
		if (val[0] != '/')
			return fail(err, errlen, name, line, "spool_dir must be an absolute path");
		return set_string(&c->spool_dir, val);
	} else if (!strcmp(key, "spool_memory_max")) {
		if (parse_size(val, &c->spool_memory_max) < 0)
			return fail(err, errlen, name, line,
				    "spool_memory_max must be a byte count, optionally with K, M or G");
	} else if (!strcmp(key, "max_dumps")) {
		uint64_t n;

		if (parse_u64(val, strlen(val), PD_MAX_DUMPS_LIMIT, &n) < 0 || n < 1)
			return fail(err, errlen, name, line, "max_dumps must be 1..%d",
				    PD_MAX_DUMPS_LIMIT);
		c->max_dumps = (int)n;
	} else if (!strcmp(key, "request_read_timeout") || !strcmp(key, "send_timeout") ||
		   !strcmp(key, "drain_timeout") || !strcmp(key, "resume_timeout")) {
		bool resume = !strcmp(key, "resume_timeout");
		bool zero_ok = resume || key[0] == 'd';
		uint64_t n;

		if (parse_u64(val, strlen(val), 3600, &n) < 0 || (n < 1 && !zero_ok))
			return fail(err, errlen, name, line, "%s must be %d..3600 (seconds)", key,
				    zero_ok ? 0 : 1);
		*(resume	  ? &c->resume_timeout
		  : key[0] == 'd' ? &c->drain_timeout
		  : key[0] == 'r' ? &c->request_read_timeout
				  : &c->send_timeout) = (int)n;
	} else if (!strcmp(key, "rules_interval_ms")) {
		uint64_t n;

		if (parse_u64(val, strlen(val), 60000, &n) < 0 || n < 100)
			return fail(err, errlen, name, line, "rules_interval_ms must be 100..60000");
		c->rules_interval_ms = (int)n;
	} else if (!strcmp(key, "max_actions")) {
		uint64_t n;

		if (parse_u64(val, strlen(val), PD_MAX_ACTIONS_LIMIT, &n) < 0 || n < 1)
			return fail(err, errlen, name, line, "max_actions must be 1..%d",
				    PD_MAX_ACTIONS_LIMIT);
		c->max_actions = (int)n;
	} else if (!strcmp(key, "crash_timeout")) {
		uint64_t n;

		if (parse_u64(val, strlen(val), 3600, &n) < 0 || n < 1)
			return fail(err, errlen, name, line, "crash_timeout must be 1..3600 (seconds)");
		c->crash_timeout = (int)n;
	} else if (!strcmp(key, "crash_chain")) {
		if (parse_bool(val, &c->crash_chain) < 0)
			return fail(err, errlen, name, line, "crash_chain must be true or false");
	} else if (!strcmp(key, "download_min_rate")) {
		if (parse_size(val, &c->download_min_rate) < 0)
			return fail(err, errlen, name, line,
				    "download_min_rate must be bytes a second, optionally with K, "
				    "M or G");
	} else if (!strcmp(key, "trust_proxy") || !strcmp(key, "log_requests")) {
		if (parse_bool(val, &b) < 0)
			return fail(err, errlen, name, line, "%s must be true or false", key);
		if (key[0] == 't')
			c->trust_proxy = b;
		else
			c->log_requests = b;
	} else {
		return fail(err, errlen, name, line, "unknown key '%s'", key);
	}
	return 0;
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		end--;
	*end = 0;
	return s;
}

/* The rule being read ends (a new section, or the end of the file): checked
 * and added to the config. */
static int end_rule(struct pd_config *c, struct pd_rule *rule, bool *in_rule, const char *name,
		    char *err, size_t errlen)
{
	char why[256];
	int r;

	if (!*in_rule)
		return 0;
	*in_rule = false;
	if (pd_rule_check(rule, why, sizeof(why)) < 0) {
		r = fail(err, errlen, name, rule->line, "%s", why);
		pd_rule_release(rule);
		return r;
	}
	r = pd_ruleset_add(&c->rules, rule);
	if (r == -EEXIST)
		r = fail(err, errlen, name, rule->line, "a second rule named '%s'", rule->name);
	pd_rule_release(rule);
	return r;
}

struct egress_sec;
static int start_egress(struct pd_config *c, const char *en, struct egress_sec *e,
			const char *name, int line, char *err, size_t errlen);

/* A "[rule NAME]" or "[egress NAME]" line (s is trimmed and starts with '['). */
static int start_rule(struct pd_config *c, char *s, struct pd_rule *rule, bool *in_rule,
		      struct egress_sec *e, const char *name, int line, char *err, size_t errlen)
{
	size_t n = strlen(s);
	char *rn;

	if (n < 2 || s[n - 1] != ']')
		return fail(err, errlen, name, line, "expected '[rule NAME]' or '[egress NAME]'");
	s[n - 1] = 0;
	s = trim(s + 1, s + n - 1);
	if (!strncmp(s, "egress", 6) && (s[6] == ' ' || s[6] == '\t'))
		return start_egress(c, trim(s + 7, s + strlen(s)), e, name, line, err, errlen);
	if (strncmp(s, "rule", 4) || (s[4] != ' ' && s[4] != '\t'))
		return fail(err, errlen, name, line,
			    "unknown section '[%s]' (only [rule NAME], [egress NAME])", s);
	rn = trim(s + 5, s + strlen(s));
	if (!pd_rule_name_valid(rn))
		return fail(err, errlen, name, line,
			    "a rule name is 1..64 of A-Z a-z 0-9 . _ -: '%s'", rn);
	if (pd_ruleset_find(&c->rules, rn))
		return fail(err, errlen, name, line, "a second rule named '%s'", rn);
	pd_rule_init(rule, rn);
	rule->line = line;
	rule->file = strdup(name);
	if (!rule->file)
		return -ENOMEM;
	*in_rule = true;
	return 0;
}


const struct pd_egress_provider *pd_config_egress(const struct pd_config *c, const char *name)
{
	for (size_t i = 0; i < c->negress; i++)
		if (!strcmp(c->egress[i].name, name))
			return &c->egress[i];
	return NULL;
}

/* The [egress NAME] being read. */
struct egress_sec {
	bool on;
	bool typed;
	int line;
	unsigned seen;
	struct pd_egress_provider p;
};

/* A secret from a file (read once, now): its first line, at most 4 KiB.
 * The message never quotes the file's content. */
static int read_secret(const char *path, char **out, const char *name, int line, char *err,
		       size_t errlen)
{
	struct strbuf sb = STRBUF_INIT;
	int fd, r;
	size_t n;

	if (path[0] != '/')
		return fail(err, errlen, name, line, "a secret file must be an absolute path");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail(err, errlen, name, line, "%s: %s", path, strerror(errno));
	r = strbuf_read_fd(&sb, fd, 4096);
	close(fd);
	if (r < 0) {
		strbuf_release(&sb);
		return fail(err, errlen, name, line, "%s: %s", path,
			    r == -EFBIG ? "longer than 4096 bytes" : strerror(-r));
	}
	n = 0;
	while (n < sb.len && sb.buf[n] != '\n' && sb.buf[n] != '\r')
		n++;
	if (!n || memchr(sb.buf, 0, n)) {
		memset(sb.buf, 0, sb.len);
		strbuf_release(&sb);
		return fail(err, errlen, name, line, "%s: no secret on its first line", path);
	}
	free(*out);
	*out = strndup(sb.buf, n);
	memset(sb.buf, 0, sb.len);
	strbuf_release(&sb);
	return *out ? 0 : -ENOMEM;
}

static int egress_set(struct egress_sec *e, const char *key, const char *val, const char *name,
		      int line, char *err, size_t errlen)
{
	static const char *const keys[] = { "type", "directory", "account_url", "container",
					     "blob_prefix", "account_key", "account_key_file",
					     "sas_token", "sas_token_file", "block_size", "parallel",
					     "max_count", "max_bytes", "max_age" };
	struct pd_egress_provider *p = &e->p;
	char **str = NULL;
	unsigned i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(key, keys[i]))
			break;
	if (i == sizeof(keys) / sizeof(keys[0]))
		return fail(err, errlen, name, line, "unknown key '%s' in [egress %s]", key, p->name);
	if (e->seen & (1u << i))
		return fail(err, errlen, name, line, "'%s' given twice in [egress %s]", key, p->name);
	e->seen |= 1u << i;
	if (!strcmp(key, "type")) {
		if (pd_egress_type_parse(val, &p->type) < 0)
			return fail(err, errlen, name, line,
				    "type must be filesystem or azureBlobStorage");
		e->typed = true;
		return 0;
	}
	if (!strcmp(key, "block_size") || !strcmp(key, "parallel")) {
		uint64_t n;

		if (!strcmp(key, "block_size")) {
			if (parse_bytes(val, &n) < 0 || n < 64 * 1024 || n > 4000ull << 20)
				return fail(err, errlen, name, line,
					    "block_size must be 64K..4000M");
			p->block_size = (unsigned)n;
		} else {
			if (parse_u64(val, strlen(val), 64, &n) < 0 || n < 1)
				return fail(err, errlen, name, line, "parallel must be 1..64");
			p->parallel = (unsigned)n;
		}
		return 0;
	}
	if (!strncmp(key, "max_", 4)) {
		struct pd_store_limits l = { p->max_count, p->max_bytes, p->max_age_s };
		int r = parse_limit(&l, key, key, val, name, line, err, errlen);

		p->max_count = l.max_count;
		p->max_bytes = l.max_bytes;
		p->max_age_s = l.max_age_s;
		return r;
	}
	if (!strcmp(key, "account_key_file"))
		return read_secret(val, &p->account_key, name, line, err, errlen);
	if (!strcmp(key, "sas_token_file"))
		return read_secret(val, &p->sas_token, name, line, err, errlen);
	if (!strcmp(key, "directory"))
		str = &p->directory;
	else if (!strcmp(key, "account_url"))
		str = &p->account_url;
	else if (!strcmp(key, "container"))
		str = &p->container;
	else if (!strcmp(key, "blob_prefix"))
		str = &p->blob_prefix;
	else if (!strcmp(key, "account_key"))
		str = &p->account_key;
	else
		str = &p->sas_token;
	if (!*val)
		return fail(err, errlen, name, line, "'%s' is empty in [egress %s]", key, p->name);
	if (str == &p->directory && val[0] != '/')
		return fail(err, errlen, name, line, "directory must be an absolute path");
	if (str == &p->blob_prefix && (strstr(val, "..") || val[0] == '/'))
		return fail(err, errlen, name, line, "blob_prefix must be relative, without '..'");
	free(*str);
	*str = strdup(val);
	return *str ? 0 : -ENOMEM;
}

static int end_egress(struct pd_config *c, struct egress_sec *e, const char *name, char *err,
		      size_t errlen)
{
	struct pd_egress_provider *p = &e->p, *v;
	int r = 0;

	if (!e->on)
		return 0;
	e->on = false;
	if (!e->typed)
		r = fail(err, errlen, name, e->line, "[egress %s] has no type", p->name);
	else if (p->type == PD_EGRESS_FILESYSTEM && !p->directory)
		r = fail(err, errlen, name, e->line, "[egress %s] (filesystem) has no directory",
			 p->name);
	else if (p->type == PD_EGRESS_AZURE_BLOB && (!p->account_url || !p->container))
		r = fail(err, errlen, name, e->line,
			 "[egress %s] (azureBlobStorage) needs account_url and container", p->name);
	else if (p->type == PD_EGRESS_AZURE_BLOB && !p->account_key && !p->sas_token)
		r = fail(err, errlen, name, e->line,
			 "[egress %s] (azureBlobStorage) needs account_key(_file) or sas_token(_file)",
			 p->name);
	else if (p->type == PD_EGRESS_AZURE_BLOB && (p->max_count || p->max_bytes || p->max_age_s))
		r = fail(err, errlen, name, e->line,
			 "[egress %s] (azureBlobStorage): max_count, max_bytes and max_age are for "
			 "a filesystem directory (a container's retention is its lifecycle policy)",
			 p->name);
	else if (p->account_key && p->sas_token)
		r = fail(err, errlen, name, e->line,
			 "[egress %s] has both an account key and a SAS token: give one", p->name);
	if (r < 0) {
		pd_egress_provider_release(p);
		return r;
	}
	v = realloc(c->egress, (c->negress + 1) * sizeof(*v));
	if (!v) {
		pd_egress_provider_release(p);
		return -ENOMEM;
	}
	c->egress = v;
	c->egress[c->negress++] = *p;
	memset(p, 0, sizeof(*p));
	return 0;
}

static bool egress_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static int start_egress(struct pd_config *c, const char *en, struct egress_sec *e,
			const char *name, int line, char *err, size_t errlen)
{
	if (!egress_name_valid(en))
		return fail(err, errlen, name, line,
			    "an egress name is 1..64 of A-Z a-z 0-9 . _ -: '%s'", en);
	if (pd_config_egress(c, en))
		return fail(err, errlen, name, line, "a second egress named '%s'", en);
	memset(e, 0, sizeof(*e));
	snprintf(e->p.name, sizeof(e->p.name), "%s", en);
	e->p.block_size = PD_EGRESS_BLOCK_SIZE_DEFAULT;
	e->p.parallel = PD_EGRESS_PARALLEL_DEFAULT;
	e->line = line;
	e->on = true;
	return 0;
}

int pd_config_parse(struct pd_config *c, const char *text, size_t len, const char *name,
		    char *err, size_t errlen)
{
	struct strbuf sb = STRBUF_INIT;
	unsigned seen = 0;
	int line = 0, r = 0;
	char *p, *end;
	struct pd_rule rule;
	bool in_rule = false;
	struct egress_sec eg = { 0 };

	if (strbuf_add(&sb, text, len) < 0)
		return -ENOMEM;
	p = sb.buf;
	end = sb.buf + sb.len;
	while (p < end && r == 0) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		char *eq, *key, *val;

		line++;
		if (memchr(p, 0, (size_t)(eol - p))) {
			r = fail(err, errlen, name, line, "NUL byte");
			break;
		}
		key = trim(p, eol);
		p = nl ? nl + 1 : end;
		if (!*key || *key == '#')
			continue;
		if (*key == '[') {
			r = end_rule(c, &rule, &in_rule, name, err, errlen);
			if (r == 0)
				r = end_egress(c, &eg, name, err, errlen);
			if (r == 0)
				r = start_rule(c, key, &rule, &in_rule, &eg, name, line, err, errlen);
			continue;
		}
		eq = strchr(key, '=');
		if (!eq) {
			r = fail(err, errlen, name, line, "expected 'key = value'");
			break;
		}
		val = trim(eq + 1, eq + 1 + strlen(eq + 1));
		key = trim(key, eq);
		if (!*key) {
			r = fail(err, errlen, name, line, "expected 'key = value'");
			break;
		}
		if (eg.on) {
			r = egress_set(&eg, key, val, name, line, err, errlen);
		} else if (in_rule) {
			char why[256];

			r = pd_rule_set(&rule, key, val, why, sizeof(why));
			if (r == -EINVAL)
				fail(err, errlen, name, line, "%s", why);
		} else {
			r = apply(c, key, val, &seen, name, line, err, errlen);
		}
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s:%d: out of memory", name, line);
	}
	if (r == 0)
		r = end_rule(c, &rule, &in_rule, name, err, errlen);
	else if (in_rule)
		pd_rule_release(&rule);
	if (r == 0)
		r = end_egress(c, &eg, name, err, errlen);
	else if (eg.on)
		pd_egress_provider_release(&eg.p);
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", name);
	strbuf_release(&sb);
	return r;
}

int pd_config_check(const struct pd_config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->rules.n; i++) {
		const struct pd_rule *r = &c->rules.v[i];
		const char *f = r->file ? r->file : "config";

		if (r->action.egress[0] && !pd_config_egress(c, r->action.egress)) {
			snprintf(err, errlen, "%s:%d: rule '%s' names egress '%s', and no [egress %s] "
				 "section is configured", f, r->line, r->name, r->action.egress,
				 r->action.egress);
			return -EINVAL;
		}
		/* a rule's stacks, and a dump without egress, go into the store */
		if (!c->store_dir && (r->action.stacks || !r->action.egress[0])) {
			snprintf(err, errlen,
				 "%s:%d: rule '%s' writes into the dump store, and no store_dir is "
				 "configured",
				 f, r->line, r->name);
			return -EINVAL;
		}
	}
	return 0;
}

int pd_config_load(struct pd_config *c, const char *path, char *err, size_t errlen)
{
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	r = pd_config_load_fd(c, fd, path, err, errlen);
	close(fd);
	return r;
}

int pd_config_load_fd(struct pd_config *c, int fd, const char *path, char *err, size_t errlen)
{
	struct strbuf sb = STRBUF_INIT;
	int r = strbuf_read_fd(&sb, fd, CONFIG_MAX);

	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		strbuf_release(&sb);
		return r;
	}
	r = pd_config_parse(c, sb.buf, sb.len, path, err, errlen);
	strbuf_release(&sb);
	return r;
}
