/* Folded stacks: see lib/fold.h. */
#include "config.h"

#include "lib/fold.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonstr.h"
#include "common/strbuf.h"

#define UNKNOWN "[unknown]"

struct frame {
	char *name, *module; /* module NULL: none */
};

struct stack {
	size_t off, n; /* into pool */
	uint64_t count;
};

struct pd_fold {
	struct frame *frames;
	size_t nframes, aframes;
	uint32_t *fhash; /* frame index + 1; 0 empty */
	size_t fhash_n;	 /* a power of two */
	struct stack *stacks;
	size_t nstacks, astacks;
	uint32_t *shash; /* stack index + 1 */
	size_t shash_n;
	uint32_t *pool;
	size_t npool, apool;
	uint64_t samples;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

#define FNV0 1469598103934665603ull

static uint64_t frame_hash(const char *name, const char *module)
{
	uint64_t h = fnv(FNV0, name, strlen(name) + 1);

	return module ? fnv(h, module, strlen(module) + 1) : fnv(h, "", 0) ^ 1;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

struct pd_fold *pd_fold_new(void)
{
	return calloc(1, sizeof(struct pd_fold));
}

void pd_fold_free(struct pd_fold *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nframes; i++) {
		free(f->frames[i].name);
		free(f->frames[i].module);
	}
	free(f->frames);
	free(f->fhash);
	free(f->stacks);
	free(f->shash);
	free(f->pool);
	free(f);
}

static int grow(void **v, size_t *alloc, size_t need, size_t size)
{
	size_t na = *alloc ? *alloc : 16;
	void *nv;

	if (need <= *alloc)
		return 0;
	while (na < need)
		na *= 2;
	nv = realloc(*v, na * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*alloc = na;
	return 0;
}

/* Rebuilds a hash of n entries (hash(i) of each) at twice the size when
 * it is half full. */
static int rehash(uint32_t **tab, size_t *tab_n, size_t n, uint64_t (*hash)(const struct pd_fold *, size_t),
		  const struct pd_fold *f)
{
	size_t nn = *tab_n ? *tab_n : 64;
	uint32_t *nt;

	if ((n + 1) * 2 <= *tab_n)
		return 0;
	while ((n + 1) * 2 > nn)
		nn *= 2;
	nt = calloc(nn, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t k = (size_t)hash(f, i) & (nn - 1);

		while (nt[k])
			k = (k + 1) & (nn - 1);
		nt[k] = (uint32_t)i + 1;
	}
	free(*tab);
	*tab = nt;
	*tab_n = nn;
	return 0;
}

static uint64_t frame_hash_i(const struct pd_fold *f, size_t i)
{
	return frame_hash(f->frames[i].name, f->frames[i].module);
}

static uint64_t stack_hash(const uint32_t *v, size_t n)
{
	return fnv(FNV0, v, n * sizeof(*v));
}

static uint64_t stack_hash_i(const struct pd_fold *f, size_t i)
{
	return stack_hash(f->pool + f->stacks[i].off, f->stacks[i].n);
}

static int64_t frame_find_add(struct pd_fold *f, const char *name, const char *module, bool capped);

int64_t pd_fold_frame(struct pd_fold *f, const char *name, const char *module)
{
	return frame_find_add(f, name, module, true);
}

/* The index of (name, module); a new frame past PD_FOLD_FRAMES_MAX (when
 * capped) is PD_FOLD_BEYOND instead. */
static int64_t frame_find_add(struct pd_fold *f, const char *name, const char *module, bool capped)
{
	uint64_t h;
	size_t k;
	struct frame *fr;

	if (!name || !*name)
		name = UNKNOWN;
	if (f->nframes >= UINT32_MAX - 1 || rehash(&f->fhash, &f->fhash_n, f->nframes, frame_hash_i, f) < 0)
		return -1;
	h = frame_hash(name, module);
	for (k = (size_t)h & (f->fhash_n - 1); f->fhash[k]; k = (k + 1) & (f->fhash_n - 1)) {
		fr = &f->frames[f->fhash[k] - 1];
		if (!strcmp(fr->name, name) && same_str(fr->module, module))
			return f->fhash[k] - 1;
	}
	if (capped && f->nframes >= PD_FOLD_FRAMES_MAX)
		return frame_find_add(f, PD_FOLD_BEYOND, NULL, false);
	if (grow((void **)&f->frames, &f->aframes, f->nframes + 1, sizeof(*f->frames)) < 0)
		return -1;
	fr = &f->frames[f->nframes];
	fr->name = strdup(name);
	fr->module = module ? strdup(module) : NULL;
	if (!fr->name || (module && !fr->module)) {
		free(fr->name);
		free(fr->module);
		return -1;
	}
	f->fhash[k] = (uint32_t)++f->nframes;
	return (int64_t)f->nframes - 1;
}

static int stack_add(struct pd_fold *f, const uint32_t *v, size_t n, uint64_t count, bool capped);

int pd_fold_add(struct pd_fold *f, const uint32_t *v, size_t n, uint64_t count)
{
	return stack_add(f, v, n, count, true);
}

/* A new stack past PD_FOLD_STACKS_MAX (when capped) is counted as its root
 * and PD_FOLD_BEYOND instead: the roots' (threads') widths stay right. The
 * stacks made so are at most one per root frame, so they are bounded too. */
static int stack_add(struct pd_fold *f, const uint32_t *v, size_t n, uint64_t count, bool capped)
{
	uint64_t h = stack_hash(v, n);
	struct stack *s;
	size_t k;

	for (size_t i = 0; i < n; i++)
		if (v[i] >= f->nframes)
			return -EINVAL;
	if (rehash(&f->shash, &f->shash_n, f->nstacks, stack_hash_i, f) < 0)
		return -ENOMEM;
	for (k = (size_t)h & (f->shash_n - 1); f->shash[k]; k = (k + 1) & (f->shash_n - 1)) {
		s = &f->stacks[f->shash[k] - 1];
		if (s->n == n && !memcmp(f->pool + s->off, v, n * sizeof(*v))) {
			s->count += count;
			f->samples += count;
			return 0;
		}
	}
	if (capped && f->nstacks >= PD_FOLD_STACKS_MAX) {
		int64_t beyond = frame_find_add(f, PD_FOLD_BEYOND, NULL, false);
		uint32_t w[2];

		if (beyond < 0)
			return -ENOMEM;
		w[0] = n ? v[0] : (uint32_t)beyond;
		w[1] = (uint32_t)beyond;
		return stack_add(f, w, n ? 2 : 1, count, false);
	}
	if (grow((void **)&f->stacks, &f->astacks, f->nstacks + 1, sizeof(*f->stacks)) < 0 ||
	    grow((void **)&f->pool, &f->apool, f->npool + n + 1, sizeof(*f->pool)) < 0)
		return -ENOMEM;
	memcpy(f->pool + f->npool, v, n * sizeof(*v));
	f->stacks[f->nstacks] = (struct stack){ f->npool, n, count };
	f->npool += n;
	f->shash[k] = (uint32_t)++f->nstacks;
	f->samples += count;
	return 0;
}

uint64_t pd_fold_samples(const struct pd_fold *f)
{
	return f->samples;
}

size_t pd_fold_stacks(const struct pd_fold *f)
{
	return f->nstacks;
}

json_t *pd_fold_speedscope(const struct pd_fold *f, const char *name)
{
	json_t *doc, *frames = json_array(), *samples = json_array(), *weights = json_array();
	bool ok = frames && samples && weights;

	for (size_t i = 0; ok && i < f->nframes; i++) {
		json_t *o = json_object();

		ok = o && json_object_set_new(o, "name", pd_json_cstr(f->frames[i].name)) == 0 &&
		     (!f->frames[i].module ||
		      json_object_set_new(o, "file", pd_json_cstr(f->frames[i].module)) == 0);
		if (!ok)
			json_decref(o);
		else
			ok = json_array_append_new(frames, o) == 0;
	}
	for (size_t i = 0; ok && i < f->nstacks; i++) {
		json_t *st = json_array();

		for (size_t k = 0; st && k < f->stacks[i].n; k++)
			if (json_array_append_new(st, json_integer(f->pool[f->stacks[i].off + k])) < 0) {
				json_decref(st);
				st = NULL;
			}
		ok = st && json_array_append_new(samples, st) == 0 &&
		     json_array_append_new(weights, json_integer((json_int_t)f->stacks[i].count)) == 0;
	}
	if (!ok) {
		json_decref(frames);
		json_decref(samples);
		json_decref(weights);
		return NULL;
	}
	/* "o" steals the three arrays, also when packing fails. */
	doc = json_pack("{s:s,s:{s:o},s:[{s:s,s:o,s:s,s:i,s:I,s:o,s:o}],s:o,s:i,s:s}",
			"$schema", "https://www.speedscope.app/file-format-schema.json",
			"shared", "frames", frames,
			"profiles", "type", "sampled", "name", pd_json_cstr(name ? name : ""), "unit", "none",
			"startValue", 0, "endValue", (json_int_t)f->samples,
			"samples", samples, "weights", weights,
			"name", pd_json_cstr(name ? name : ""), "activeProfileIndex", 0,
			"exporter", "procdiag");
	return doc;
}

int pd_fold_escape(struct strbuf *out, const char *name)
{
	if (!name || !*name)
		return strbuf_addstr(out, UNKNOWN);
	for (const char *p = name; *p; p++) {
		char c = *p;

		if (c == ';')
			c = ':';
		else if ((unsigned char)c < 0x20 || c == 0x7f)
			c = '?';
		if (strbuf_addch(out, c) < 0)
			return -ENOMEM;
	}
	return 0;
}

struct line {
	char *text; /* the stack, without the count */
	uint64_t count;
};

static int cmp_line(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->text, ((const struct line *)b)->text);
}

int pd_fold_speedscope_folded(const json_t *ss, struct strbuf *out)
{
	const json_t *frames = json_object_get(json_object_get(ss, "shared"), "frames");
	const json_t *prof = json_array_get(json_object_get(ss, "profiles"), 0);
	const json_t *samples = json_object_get(prof, "samples");
	const json_t *weights = json_object_get(prof, "weights");
	size_t n = json_array_size(samples), nl = 0;
	struct line *lines;
	int rc = 0;

	if (!json_is_array(frames) || !json_is_array(samples) || !json_is_array(weights) ||
	    json_array_size(weights) != n)
		return -EINVAL;
	lines = calloc(n ? n : 1, sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		const json_t *st = json_array_get(samples, i), *ix;
		struct strbuf sb = STRBUF_INIT;
		size_t k;

		if (!json_is_array(st) || !json_is_integer(json_array_get(weights, i)) ||
		    json_integer_value(json_array_get(weights, i)) < 0) {
			rc = -EINVAL;
			break;
		}
		json_array_foreach(st, k, ix) {
			const char *name = json_string_value(
				json_object_get(json_array_get(frames, (size_t)json_integer_value(ix)), "name"));

			if (!json_is_integer(ix) || !name) {
				rc = -EINVAL;
				break;
			}
			if ((k && strbuf_addch(&sb, ';') < 0) || pd_fold_escape(&sb, name) < 0)
				rc = -ENOMEM;
		}
		if (!rc && !sb.len && strbuf_addstr(&sb, UNKNOWN) < 0)
			rc = -ENOMEM;
		if (rc || sb.failed) {
			strbuf_release(&sb);
			rc = rc ? rc : -ENOMEM;
			break;
		}
		lines[nl].count = (uint64_t)json_integer_value(json_array_get(weights, i));
		lines[nl++].text = strbuf_detach(&sb, NULL);
	}
	if (!rc) {
		qsort(lines, nl, sizeof(*lines), cmp_line);
		/* Stacks that differ only where escaping made them equal are one
		 * line. */
		for (size_t i = 0; i < nl && !rc; i++) {
			uint64_t c = lines[i].count;

			while (i + 1 < nl && !strcmp(lines[i].text, lines[i + 1].text))
				c += lines[++i].count;
			if (strbuf_addf(out, "%s %llu\n", lines[i].text, (unsigned long long)c) < 0)
				rc = -ENOMEM;
		}
	}
	for (size_t i = 0; i < nl; i++)
		free(lines[i].text);
	free(lines);
	return rc;
}

int pd_fold_folded(const struct pd_fold *f, struct strbuf *out)
{
	json_t *ss = pd_fold_speedscope(f, "");
	int rc;

	if (!ss)
		return -ENOMEM;
	rc = pd_fold_speedscope_folded(ss, out);
	json_decref(ss);
	return rc;
}
