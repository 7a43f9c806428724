#include "config.h"

#include "lib/scope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/numparse.h"
#include "lib/proc.h"
#include "lib/users.h"

/* Both constructors treat s as output only: whatever it held is
 * overwritten, not freed. On failure s is left as PD_SCOPE_INIT. */

int pd_scope_init_self(struct pd_scope *s)
{
	*s = (struct pd_scope)PD_SCOPE_INIT;
	s->uids = malloc(sizeof(*s->uids));
	if (!s->uids)
		return -ENOMEM;
	s->uids[0] = getuid();
	s->n = 1;
	return 0;
}

void pd_scope_release(struct pd_scope *s)
{
	free(s->uids);
	*s = (struct pd_scope)PD_SCOPE_INIT;
}

bool pd_scope_has(const struct pd_scope *s, uid_t uid)
{
	if (!s)
		return false;
	if (s->all)
		return true;
	for (size_t i = 0; i < s->n; i++)
		if (s->uids[i] == uid)
			return true;
	return false;
}

bool pd_scope_has_recorded(const struct pd_scope *s, bool known, long long uid)
{
	if (!s || s->all)
		return true;
	if (!known || uid < 0 || uid > (long long)(uid_t)-1)
		return false;
	return pd_scope_has(s, (uid_t)uid);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* One list item, trimmed, as a NUL-terminated copy: getpwnam needs one. */
static int item_uid(const char *p, size_t n, uid_t *out)
{
	char *name;
	int r;

	while (n && is_space(*p)) {
		p++;
		n--;
	}
	while (n && is_space(p[n - 1]))
		n--;
	if (n == 0)
		return -EINVAL; /* "a,,b" or a trailing comma: a typo, not "nobody" */
	if (n == 4 && memcmp(p, "self", 4) == 0) {
		*out = getuid();
		return 0;
	}
	name = strndup(p, n);
	if (!name)
		return -ENOMEM;
	r = pd_user_lookup(name, out);
	free(name);
	if (r == -ENOMEM)
		return r;
	return r < 0 ? -EINVAL : 0;
}

int pd_scope_parse(struct pd_scope *s, const char *spec)
{
	struct pd_scope t = PD_SCOPE_INIT;
	const char *p = spec;
	size_t cap = 1;
	int r;

	*s = t;
	if (!spec)
		return -EINVAL;
	for (const char *c = spec; *c; c++)
		cap += *c == ',';
	/* "all" only alone: in a list it would be looked up as a user name,
	 * and "all,www-data" is a mistake whichever was meant. */
	while (is_space(*p))
		p++;
	if (strncmp(p, "all", 3) == 0) {
		const char *q = p + 3;

		while (is_space(*q))
			q++;
		if (!*q) {
			s->all = true;
			return 0;
		}
	}
	t.uids = calloc(cap, sizeof(*t.uids));
	if (!t.uids)
		return -ENOMEM;
	p = spec;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		uid_t uid;

		r = item_uid(p, n, &uid);
		if (r < 0) {
			pd_scope_release(&t);
			return r;
		}
		if (!pd_scope_has(&t, uid))
			t.uids[t.n++] = uid;
		if (!comma)
			break;
		p = comma + 1;
	}
	*s = t;
	return 0;
}

int pd_scope_format(const struct pd_scope *s, struct strbuf *sb)
{
	if (s->all)
		return strbuf_addstr(sb, "all");
	for (size_t i = 0; i < s->n; i++)
		if (strbuf_addf(sb, "%s%u", i ? "," : "", (unsigned)s->uids[i]) < 0)
			return -ENOMEM;
	return 0;
}

int pd_scope_parse_ids(struct pd_scope *s, const char *spec)
{
	struct pd_scope t = PD_SCOPE_INIT;
	size_t cap = 1;

	*s = t;
	if (!strcmp(spec, "all")) {
		s->all = true;
		return 0;
	}
	for (const char *c = spec; *c; c++)
		cap += *c == ',';
	t.uids = calloc(cap, sizeof(*t.uids));
	if (!t.uids)
		return -ENOMEM;
	for (const char *p = spec;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		uint64_t v;

		/* (uid_t)-1 is no user: chown(2)'s "leave it". */
		if (parse_u64(p, n, (uid_t)-2, &v) < 0) {
			pd_scope_release(&t);
			return -EINVAL;
		}
		t.uids[t.n++] = (uid_t)v;
		if (!comma)
			break;
		p = comma + 1;
	}
	*s = t;
	return 0;
}

static bool all_same(const unsigned *v)
{
	return v[0] == v[1] && v[1] == v[2];
}

int pd_scope_may_act(const struct pd_scope *s, int dirfd, const char *path)
{
	struct pd_creds c;
	unsigned u[3], g[3];
	int rc;

	if (!s || s->all)
		return 0;
	rc = pd_read_creds_at(dirfd, path, &c);
	if (rc < 0)
		return rc;
	for (int i = 0; i < 3; i++) {
		u[i] = c.uid[i];
		g[i] = c.gid[i];
	}
	if (!pd_scope_has(s, c.uid[1]))
		return -EACCES;
	if (!all_same(u) || !all_same(g) || !c.dumpable)
		return -EPERM;
	return 0;
}
