/* make check's side of the fuzzers: feeds every file of
 * fuzz/regress/NAME/ (inputs that once crashed a harness) and
 * fuzz/corpus/NAME/ (the seed corpus) to the harness once, as a TAP test,
 * built with the normal compiler so make check needs no clang.
 *
 *   replay_NAME              the two directories under $PD_SRCDIR (or .)
 *   replay_NAME PATH...      these files and directories instead
 *
 * A harness that aborts on an input kills the program: the TAP driver then
 * reports the missing results and the last "# input" line names the file. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "fuzz/fuzz.h"

#ifndef PD_FUZZ_NAME
#error "build with -DPD_FUZZ_NAME='\"name\"'"
#endif

/* libFuzzer calls it once before the first input, when a harness has it. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

struct files {
	size_t n, alloc;
	char **v;
};

static void add(struct files *f, const char *path)
{
	if (f->n == f->alloc) {
		f->alloc = f->alloc ? 2 * f->alloc : 64;
		f->v = realloc(f->v, f->alloc * sizeof(*f->v));
		FUZZ_CHECK(f->v != NULL);
	}
	f->v[f->n] = strdup(path);
	FUZZ_CHECK(f->v[f->n] != NULL);
	f->n++;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of dir (not recursive; dot files such as .gitkeep are
 * skipped), sorted so the output is the same on every run. A missing
 * directory is empty. */
static void add_dir(struct files *f, const char *dir)
{
	size_t first = f->n;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		struct strbuf p = STRBUF_INIT;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		FUZZ_CHECK(strbuf_addf(&p, "%s/%s", dir, de->d_name) == 0);
		if (stat(p.buf, &st) == 0 && S_ISREG(st.st_mode))
			add(f, p.buf);
		strbuf_release(&p);
	}
	closedir(d);
	qsort(f->v + first, f->n - first, sizeof(*f->v), cmp);
}

static void add_path(struct files *f, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		add_dir(f, path);
	else
		add(f, path);
}

int main(int argc, char **argv)
{
	struct files f = {0, 0, NULL};
	const char *src = getenv("PD_SRCDIR");
	int failed = 0;

	if (!src || !*src)
		src = ".";
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			add_path(&f, argv[i]);
	} else {
		struct strbuf p = STRBUF_INIT;

		FUZZ_CHECK(strbuf_addf(&p, "%s/fuzz/regress/%s", src, PD_FUZZ_NAME) == 0);
		add_dir(&f, p.buf);
		strbuf_reset(&p);
		FUZZ_CHECK(strbuf_addf(&p, "%s/fuzz/corpus/%s", src, PD_FUZZ_NAME) == 0);
		add_dir(&f, p.buf);
		strbuf_release(&p);
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);

	/* The seed corpus is committed: no inputs means a broken checkout or
	 * a wrong PD_SRCDIR, not a pass. */
	if (f.n == 0) {
		printf("1..1\nnot ok 1 - no inputs for %s under %s/fuzz\n", PD_FUZZ_NAME, src);
		return 1;
	}
	printf("1..%zu\n", f.n);
	for (size_t i = 0; i < f.n; i++) {
		struct strbuf in = STRBUF_INIT;
		int fd = open(f.v[i], O_RDONLY | O_CLOEXEC);
		int r = fd < 0 ? -errno : strbuf_read_fd(&in, fd, 64 << 20);

		if (fd >= 0)
			close(fd);
		if (r < 0) {
			printf("not ok %zu - %s: %s\n", i + 1, f.v[i], strerror(-r));
			failed = 1;
		} else {
			printf("# input %s (%zu bytes)\n", f.v[i], in.len);
			fflush(stdout);
			/* An exact-size copy: strbuf's slack would hide a read
			 * past the end from ASan. */
			char *copy = fuzz_exact((const uint8_t *)in.buf, in.len);

			LLVMFuzzerTestOneInput((const uint8_t *)copy, in.len);
			free(copy);
			printf("ok %zu - %s\n", i + 1, f.v[i]);
		}
		fflush(stdout);
		strbuf_release(&in);
		free(f.v[i]);
	}
	free(f.v);
	return failed;
}
