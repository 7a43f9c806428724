/* lib/store: ids, atomic entries, the quotas (count, bytes as allocated
 * blocks, age) evicting oldest first, refusal of what cannot fit, the
 * sweep of a dead writer's .new-* and concurrent writers. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/store.h"

static char dir[256];

static int rm_rf(const char *path)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/pd-store-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rm_rf(dir);
	return 0;
}

static struct pd_store *open_store(unsigned count, uint64_t bytes, uint64_t age)
{
	struct pd_store_limits l = {.max_count = count, .max_bytes = bytes, .max_age_s = age};
	struct pd_store *s = NULL;

	assert_int_equal(pd_store_open(dir, &l, &s), 0);
	return s;
}

/* An entry with one file of len bytes of `c` (data, so blocks are
 * allocated). Returns commit's rc; id gets the id. */
static int add(struct pd_store *s, int pid, size_t len, char c, char *id)
{
	struct pd_store_new *n;
	char *buf = malloc(len ? len : 1);
	int fd, rc;

	assert_non_null(buf);
	memset(buf, c, len);
	assert_int_equal(pd_store_begin(s, pid, &n), 0);
	fd = pd_store_file(n, "core", len);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd); /* the caller's to close; the store keeps its own */
	free(buf);
	rc = pd_store_commit(n, json_pack("{s:s}", "kind", "dump"), id);
	return rc;
}

static size_t list_ids(struct pd_store *s, char ids[][PD_STORE_ID_MAX], size_t max)
{
	json_t *a, *e;
	size_t i, n = 0;

	assert_int_equal(pd_store_list(s, &a), 0);
	json_array_foreach(a, i, e)
	{
		if (n < max)
			snprintf(ids[n], PD_STORE_ID_MAX, "%s",
				 json_string_value(json_object_get(e, "id")));
		n++;
	}
	json_decref(a);
	return n;
}

/* Names in the store directory starting with '.', counted. */
static int hidden(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_ids(void **state)
{
	(void)state;
	assert_true(pd_store_id_valid("20261205T071500Z-1234-ab12"));
	assert_true(pd_store_id_valid("20261205T071500Z-0-0000"));
	assert_false(pd_store_id_valid(NULL));
	assert_false(pd_store_id_valid(""));
	assert_false(pd_store_id_valid("../etc"));
	assert_false(pd_store_id_valid("20261205T071500Z-1234-AB12")); /* lower hex only */
	assert_false(pd_store_id_valid("20261205T071500Z-1234-ab1"));
	assert_false(pd_store_id_valid("20261205T071500Z-1234-ab123"));
	assert_false(pd_store_id_valid("20261205T071500Z--ab12"));
	assert_false(pd_store_id_valid("20261205T071500Z-12345678901-ab12"));
	assert_false(pd_store_id_valid("2026120xT071500Z-1-ab12"));
	assert_false(pd_store_id_valid(".new-20261205T071500Z-1-ab12"));
	assert_false(pd_store_id_valid("20261205T071500Z-1-ab12/"));
	assert_true(pd_store_name_valid("stacks.txt"));
	assert_false(pd_store_name_valid("meta.json"));
	assert_false(pd_store_name_valid(".hidden"));
	assert_false(pd_store_name_valid("a/b"));
	assert_false(pd_store_name_valid(""));
}

static void test_entry_roundtrip(void **state)
{
	struct pd_store *s = open_store(0, 0, 0);
	struct pd_store_new *n;
	char id[PD_STORE_ID_MAX], buf[16] = {0};
	json_t *meta;
	int fd, fd2;

	(void)state;
	assert_int_equal(pd_store_begin(s, 42, &n), 0);
	assert_true(pd_store_id_valid(pd_store_new_id(n)));
	fd = pd_store_file(n, "core.42", 0);
	fd2 = pd_store_file(n, "stacks.txt", 0);
	assert_true(fd >= 0 && fd2 >= 0);
	assert_int_equal(pd_store_file(n, "stacks.txt", 0), -EEXIST);
	assert_int_equal(pd_store_file(n, "../x", 0), -EINVAL);
	assert_int_equal(write(fd, "CORE", 4), 4);
	assert_int_equal(write(fd2, "stk", 3), 3);
	close(fd);
	close(fd2);
	/* Not listed before the commit. */
	assert_int_equal(list_ids(s, NULL, 0), 0);
	assert_int_equal(pd_store_commit(n, json_pack("{s:s,s:s}", "kind", "dump", "trigger",
						      "manual"),
					 id),
			 0);
	assert_int_equal(hidden(), 0);
	assert_int_equal(pd_store_open_entry(s, id, NULL, &fd, &meta), 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "CORE");
	close(fd);
	assert_string_equal(json_string_value(json_object_get(meta, "id")), id);
	assert_string_equal(json_string_value(json_object_get(meta, "file")), "core.42");
	assert_int_equal(json_integer_value(json_object_get(meta, "size")), 4);
	assert_int_equal(json_integer_value(json_object_get(meta, "pid")), 42);
	assert_int_equal(json_array_size(json_object_get(meta, "files")), 2);
	json_decref(meta);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pd_store_open_entry(s, id, "stacks.txt", &fd, NULL), 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 3);
	close(fd);
	assert_int_equal(pd_store_open_entry(s, id, "meta.json", &fd, NULL), -EINVAL);
	assert_int_equal(pd_store_open_entry(s, id, "nope", &fd, NULL), -ENOENT);
	assert_int_equal(pd_store_open_entry(s, "../x", NULL, &fd, NULL), -EINVAL);
	assert_int_equal(pd_store_open_entry(s, "20261205T071500Z-1-ab12", NULL, &fd, NULL),
			 -ENOENT);
	assert_int_equal(pd_store_remove(s, id), 0);
	assert_int_equal(pd_store_remove(s, id), -ENOENT);
	assert_int_equal(pd_store_remove(s, "x"), -EINVAL);
	assert_int_equal(list_ids(s, NULL, 0), 0);
	assert_int_equal(hidden(), 0);
	/* An abort leaves nothing. */
	assert_int_equal(pd_store_begin(s, 7, &n), 0);
	fd = pd_store_file(n, "core", 0);
	assert_true(fd >= 0);
	close(fd);
	pd_store_abort(n);
	assert_int_equal(hidden(), 0);
	assert_int_equal(list_ids(s, NULL, 0), 0);
	pd_store_close(s);
}

/* max_count 3, five entries: the three newest stay, oldest went first. */
static void test_count_evicts_oldest(void **state)
{
	struct pd_store *s = open_store(3, 0, 0);
	char ids[5][PD_STORE_ID_MAX], got[8][PD_STORE_ID_MAX];

	(void)state;
	for (int i = 0; i < 5; i++)
		assert_int_equal(add(s, 100 + i, 10, 'x', ids[i]), 0);
	assert_int_equal(list_ids(s, got, 8), 3);
	/* Newest first. */
	assert_string_equal(got[0], ids[4]);
	assert_string_equal(got[1], ids[3]);
	assert_string_equal(got[2], ids[2]);
	pd_store_close(s);
}

/* Bytes are allocated blocks: 3 entries of 64 KiB under 200 KiB keep the
 * two newest when a fourth comes (bound 195 KiB); a sparse file of 1 GiB length with
 * 4 KiB written counts as about 4 KiB. */
static void test_bytes_evicts_oldest(void **state)
{
	struct pd_store *s = open_store(0, 195 * 1024, 0);
	char ids[4][PD_STORE_ID_MAX], got[8][PD_STORE_ID_MAX];
	struct pd_store_new *n;
	char id[PD_STORE_ID_MAX];
	int fd;

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(add(s, 1, 64 * 1024, 'b', ids[i]), 0);
	assert_int_equal(list_ids(s, got, 8), 3);
	assert_int_equal(add(s, 1, 64 * 1024, 'b', ids[3]), 0);
	assert_int_equal(list_ids(s, got, 8), 3);
	assert_string_equal(got[0], ids[3]);
	assert_string_equal(got[2], ids[1]); /* ids[0] went */

	/* Sparse: fits although its length is 5000 times the bound. */
	assert_int_equal(pd_store_begin(s, 2, &n), 0);
	fd = pd_store_file(n, "core", 0);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, (1ll << 30) - 1), 1);
	close(fd);
	assert_int_equal(pd_store_commit(n, NULL, id), 0);
	assert_int_equal(list_ids(s, got, 8), 3); /* one 64 KiB entry made room for ~4 KiB */
	assert_string_equal(got[0], id);
	pd_store_close(s);
}

/* An entry bigger than max_bytes: -EDQUOT, nothing of it left, nothing
 * evicted for it. */
static void test_too_big_refused(void **state)
{
	struct pd_store *s = open_store(0, 100 * 1024, 0);
	char a[PD_STORE_ID_MAX], id[PD_STORE_ID_MAX] = "x", got[4][PD_STORE_ID_MAX];

	(void)state;
	assert_int_equal(add(s, 1, 40 * 1024, 'a', a), 0);
	assert_int_equal(add(s, 2, 200 * 1024, 'z', id), -EDQUOT);
	assert_string_equal(id, "");
	assert_int_equal(list_ids(s, got, 4), 1);
	assert_string_equal(got[0], a);
	assert_int_equal(hidden(), 0);
	pd_store_close(s);
}

/* An entry past max_age is removed when the store is opened or listed. */
static void test_age(void **state)
{
	struct pd_store *s = open_store(0, 0, 0);
	char old[PD_STORE_ID_MAX], young[PD_STORE_ID_MAX], got[4][PD_STORE_ID_MAX];
	char path[512];
	json_t *m;

	(void)state;
	assert_int_equal(add(s, 1, 10, 'o', old), 0);
	assert_int_equal(add(s, 2, 10, 'y', young), 0);
	pd_store_close(s);
	/* Make `old` two hours old. */
	snprintf(path, sizeof(path), "%s/%s/meta.json", dir, old);
	m = json_load_file(path, 0, NULL);
	assert_non_null(m);
	json_object_set_new(m, "created_ns",
			    json_integer(json_integer_value(json_object_get(m, "created_ns")) -
					 7200ll * 1000000000ll));
	assert_int_equal(json_dump_file(m, path, 0), 0);
	json_decref(m);
	s = open_store(0, 0, 3600);
	assert_int_equal(list_ids(s, got, 4), 1);
	assert_string_equal(got[0], young);
	pd_store_close(s);
}

/* A writer that dies leaves a .new-* that the next open removes; a live
 * writer's is left alone. */
static void test_sweep(void **state)
{
	struct pd_store *s = open_store(0, 0, 0);
	struct pd_store_new *mine;
	pid_t child;
	int st;

	(void)state;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct pd_store_new *n;
		int fd;

		if (pd_store_begin(s, 9, &n) < 0)
			_exit(1);
		fd = pd_store_file(n, "core", 0);
		if (fd < 0 || write(fd, "half", 4) != 4)
			_exit(1);
		_exit(0); /* no commit, no abort: as SIGKILL */
	}
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(hidden(), 1);
	assert_int_equal(pd_store_begin(s, 10, &mine), 0);
	assert_int_equal(hidden(), 2);
	pd_store_close(s);
	s = open_store(0, 0, 0); /* sweeps the dead one, not mine */
	assert_int_equal(hidden(), 1);
	pd_store_abort(mine);
	assert_int_equal(hidden(), 0);
	assert_int_equal(list_ids(s, NULL, 0), 0);
	pd_store_close(s);
}

struct adder {
	struct pd_store *s;
	int pid;
};

static void *adder(void *arg)
{
	struct adder *a = arg;

	for (int i = 0; i < 10; i++) {
		char id[PD_STORE_ID_MAX];

		if (add(a->s, a->pid, 4096, 'c', id) != 0)
			return (void *)1;
	}
	return NULL;
}

/* Four threads adding at once under max_count 5: exactly 5 remain. */
static void test_threads(void **state)
{
	struct pd_store *s = open_store(5, 0, 0);
	pthread_t t[4];
	struct adder a[4];
	void *ret;

	(void)state;
	for (int i = 0; i < 4; i++) {
		a[i] = (struct adder){s, 1000 + i};
		assert_int_equal(pthread_create(&t[i], NULL, adder, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(list_ids(s, NULL, 0), 5);
	assert_int_equal(hidden(), 0);
	pd_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test_setup_teardown(test_entry_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_evicts_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytes_evicts_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
