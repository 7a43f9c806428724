/* lib/fold: identical stacks merged and counted, the folded text (order,
 * escaping of `;`, control bytes and empty names; spaces kept), the
 * speedscope file and its way back to folded text, and the stacks
 * document of lib/stacks.h folded with each thread one sample
 * (pd_profile_fold_stacks). */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "lib/fold.h"
#include "lib/profile.h"

static uint32_t fr(struct pd_fold *f, const char *name, const char *module)
{
	int64_t ix = pd_fold_frame(f, name, module);

	assert_true(ix >= 0);
	return (uint32_t)ix;
}

static char *folded(struct pd_fold *f)
{
	struct strbuf sb = STRBUF_INIT;

	assert_int_equal(pd_fold_folded(f, &sb), 0);
	return strbuf_detach(&sb, NULL);
}

static void test_merges_and_counts(void **state)
{
	struct pd_fold *f = pd_fold_new();
	uint32_t a[3], b[3];
	char *s;

	(void)state;
	a[0] = fr(f, "worker", NULL);
	a[1] = fr(f, "main", "/bin/x");
	a[2] = fr(f, "spin", "/bin/x");
	b[0] = a[0];
	b[1] = a[1];
	b[2] = fr(f, "wait", "/lib/libc.so.6");
	/* The same frame is the same index. */
	assert_int_equal(fr(f, "main", "/bin/x"), a[1]);
	/* ... and another module makes another frame. */
	assert_int_not_equal(fr(f, "main", "/bin/y"), a[1]);
	assert_int_not_equal(fr(f, "main", NULL), a[1]);
	assert_int_equal(pd_fold_add(f, a, 3, 1), 0);
	assert_int_equal(pd_fold_add(f, b, 3, 2), 0);
	assert_int_equal(pd_fold_add(f, a, 3, 4), 0);
	assert_int_equal(pd_fold_add(f, a, 2, 1), 0); /* a prefix is its own stack */
	assert_int_equal(pd_fold_samples(f), 8);
	assert_int_equal(pd_fold_stacks(f), 3);
	s = folded(f);
	assert_string_equal(s, "worker;main 1\n"
			       "worker;main;spin 5\n"
			       "worker;main;wait 2\n");
	free(s);
	/* A frame index that is not one. */
	b[2] = 999;
	assert_int_equal(pd_fold_add(f, b, 3, 1), -EINVAL);
	assert_int_equal(pd_fold_samples(f), 8);
	pd_fold_free(f);
}

static void test_escaping(void **state)
{
	struct pd_fold *f = pd_fold_new();
	uint32_t v[4], w[2];
	char *s;

	(void)state;
	v[0] = fr(f, "<img src=x;y z>", NULL);
	v[1] = fr(f, "operator new(unsigned long)", "/lib/libstdc++.so.6");
	v[2] = fr(f, "a;b", NULL);
	v[3] = fr(f, "line\nbreak\x7f", NULL);
	assert_int_equal(pd_fold_add(f, v, 4, 3), 0);
	/* "a:b" and "a;b" are two frames that fold to one text: one line. */
	w[0] = v[0];
	w[1] = fr(f, "a:b", NULL);
	assert_int_equal(pd_fold_add(f, w, 2, 1), 0);
	w[1] = v[2];
	assert_int_equal(pd_fold_add(f, w, 2, 4), 0);
	assert_int_equal(pd_fold_add(f, v, 3, 2), 0);
	assert_int_equal(pd_fold_stacks(f), 4);
	s = folded(f);
	assert_string_equal(s, "<img src=x:y z>;a:b 5\n"
			       "<img src=x:y z>;operator new(unsigned long);a:b 2\n"
			       "<img src=x:y z>;operator new(unsigned long);a:b;line?break? 3\n");
	free(s);
	pd_fold_free(f);
}

static void test_empty_and_unknown(void **state)
{
	struct pd_fold *f = pd_fold_new();
	struct strbuf sb = STRBUF_INIT;
	uint32_t v[2];
	char *s;

	(void)state;
	s = folded(f);
	assert_string_equal(s, ""); /* no samples, no lines */
	free(s);
	v[0] = fr(f, "", NULL);
	v[1] = fr(f, NULL, "/bin/x");
	assert_int_equal(pd_fold_add(f, v, 2, 1), 0);
	assert_int_equal(pd_fold_add(f, v, 0, 1), 0); /* an empty stack */
	s = folded(f);
	assert_string_equal(s, "[unknown] 1\n[unknown];[unknown] 1\n");
	free(s);
	assert_int_equal(pd_fold_escape(&sb, ""), 0);
	assert_string_equal(sb.buf, "[unknown]");
	strbuf_release(&sb);
	pd_fold_free(f);
}

static void test_speedscope(void **state)
{
	struct pd_fold *f = pd_fold_new();
	struct strbuf sb = STRBUF_INIT;
	uint32_t v[3];
	json_t *ss, *p, *again;
	char *s;

	(void)state;
	v[0] = fr(f, "t;1", NULL);
	v[1] = fr(f, "main", "/bin/x");
	v[2] = fr(f, "\xff", "/bin/x"); /* invalid UTF-8: escaped, not dropped */
	assert_int_equal(pd_fold_add(f, v, 3, 5), 0);
	assert_int_equal(pd_fold_add(f, v, 2, 2), 0);
	ss = pd_fold_speedscope(f, "x (1)");
	assert_non_null(ss);
	assert_string_equal(json_string_value(json_object_get(ss, "$schema")),
			    "https://www.speedscope.app/file-format-schema.json");
	p = json_array_get(json_object_get(ss, "profiles"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "type")), "sampled");
	assert_int_equal(json_array_size(json_object_get(p, "samples")),
			 json_array_size(json_object_get(p, "weights")));
	assert_int_equal(json_integer_value(json_object_get(p, "endValue")), 7);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(json_object_get(ss, "shared"), "frames"), 0),
				    "name")),
			    "t;1"); /* raw in speedscope */
	assert_null(json_object_get(
		json_array_get(json_object_get(json_object_get(ss, "shared"), "frames"), 0), "file"));
	/* Through JSON text and back: the same folded text. */
	s = json_dumps(ss, JSON_COMPACT);
	again = json_loads(s, 0, NULL);
	assert_non_null(again);
	assert_int_equal(pd_fold_speedscope_folded(again, &sb), 0);
	assert_string_equal(sb.buf, "t:1;main 2\nt:1;main;\\xFF 5\n");
	free(s);
	json_decref(again);
	/* Not one of ours. */
	json_array_append_new(json_object_get(p, "weights"), json_integer(1));
	strbuf_reset(&sb);
	assert_int_equal(pd_fold_speedscope_folded(ss, &sb), -EINVAL);
	assert_int_equal(pd_fold_speedscope_folded(json_object_get(ss, "shared"), &sb), -EINVAL);
	strbuf_release(&sb);
	json_decref(ss);
	pd_fold_free(f);
}

static void test_many_stacks_rehash(void **state)
{
	struct pd_fold *f = pd_fold_new();
	uint32_t v[2];
	char name[32];

	(void)state;
	v[0] = fr(f, "root", NULL);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(name, sizeof(name), "f%d", i);
			v[1] = fr(f, name, "/m");
			assert_int_equal(pd_fold_add(f, v, 2, (uint64_t)i + 1), 0);
		}
	}
	assert_int_equal(pd_fold_stacks(f), 5000);
	assert_int_equal(pd_fold_samples(f), 2ull * 5000 * 5001 / 2);
	pd_fold_free(f);
}

/* A hostile process's profile: distinct stacks and frames past the bounds
 * are folded into PD_FOLD_BEYOND under their root; samples all counted. */
static void test_bounded(void **state)
{
	struct pd_fold *f = pd_fold_new();
	uint32_t v[3];
	uint64_t total = 0;
	char name[32], *s;

	(void)state;
	v[0] = fr(f, "thread", NULL);
	v[1] = fr(f, "a", NULL);
	for (int i = 0; i < PD_FOLD_STACKS_MAX + 1000; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		v[2] = fr(f, name, "/m");
		assert_int_equal(pd_fold_add(f, v, 3, 1), 0);
		total++;
	}
	assert_true(pd_fold_stacks(f) <= PD_FOLD_STACKS_MAX + 1);
	assert_int_equal(pd_fold_samples(f), total);
	s = folded(f);
	assert_non_null(strstr(s, "thread;" PD_FOLD_BEYOND " 1000\n"));
	free(s);
	/* Frames: past the bound, a new one is the beyond frame. */
	for (int i = 0; i < PD_FOLD_FRAMES_MAX + 10; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		(void)fr(f, name, "/m");
	}
	snprintf(name, sizeof(name), "g%d", PD_FOLD_FRAMES_MAX + 5);
	assert_int_equal(fr(f, name, "/m"), fr(f, PD_FOLD_BEYOND, NULL));
	pd_fold_free(f);
}

static void test_stacks_document(void **state)
{
	/* Two threads of one name (merged) and one of another; frames
	 * innermost first as lib/stacks.h gives them; unknown symbols become
	 * [module file name] or [unknown]. */
	const char *doc_text =
		"{\"id\":1,\"name\":\"p\",\"threads\":["
		"{\"id\":1,\"name\":\"w\",\"frames\":[{\"symbol\":\"spin\",\"module\":\"/bin/x\"},"
		"{\"symbol\":\"main\",\"module\":\"/bin/x\"}]},"
		"{\"id\":2,\"name\":\"w\",\"frames\":[{\"symbol\":\"spin\",\"module\":\"/bin/x\"},"
		"{\"symbol\":\"main\",\"module\":\"/bin/x\"}]},"
		"{\"id\":3,\"name\":\"io\",\"frames\":[{\"symbol\":null,\"module\":\"/lib/libc.so.6\"},"
		"{\"symbol\":null,\"module\":null}]}]}";
	json_t *doc = json_loads(doc_text, 0, NULL);
	struct pd_fold *f = pd_fold_new();
	char *s;

	(void)state;
	assert_int_equal(pd_profile_fold_stacks(f, doc), 3);
	s = folded(f);
	assert_string_equal(s, "io;[unknown];[libc.so.6] 1\nw;main;spin 2\n");
	free(s);
	json_decref(doc);
	pd_fold_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merges_and_counts),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_empty_and_unknown),
		cmocka_unit_test(test_speedscope),
		cmocka_unit_test(test_many_stacks_rehash),
		cmocka_unit_test(test_stacks_document),
		cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests_name("fold", tests, NULL, NULL);
}
