/* pdlibtarget: a process with shared objects loaded from paths a test
 * chooses, for the zip bundle tests.
 *
 *   pdlibtarget LIB...
 *
 * dlopen()s each LIB (RTLD_NOW), starts one thread per LIB that blocks in
 * the library's pdlib_park(), prints "ready PID" and pauses in
 * target_main_park() until killed. A test may then replace or delete the
 * files: the process keeps the versions it loaded. Exit status 1 when a
 * library cannot be loaded, 2 without arguments. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *park_in_lib(void *fn)
{
	((void (*)(void))fn)();
	return NULL;
}

__attribute__((noinline)) static void target_main_park(void)
{
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: pdlibtarget LIB...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		void *h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
		void *park = h ? dlsym(h, "pdlib_park") : NULL;
		pthread_t t;

		if (!park || pthread_create(&t, NULL, park_in_lib, park)) {
			fprintf(stderr, "pdlibtarget: %s: %s\n", argv[i],
				h ? "no pdlib_park" : dlerror());
			return 1;
		}
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	target_main_park();
	return 0;
}
