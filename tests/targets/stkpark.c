/* libstkpark.so: the part of stacktarget WITHOUT debug info. The build
 * strips it completely (strip --strip-all): its functions are named by
 * .dynsym only, unwinding goes through .eh_frame, and there is no source
 * line to find. */
#include <unistd.h>

__attribute__((noinline, visibility("default"))) void nodebug_parked_here(void)
{
	for (;;)
		pause();
}

/* One more level, so a stripped frame is not only the innermost one. */
__attribute__((noinline, visibility("default"))) void nodebug_outer(void (*then)(void))
{
	then();
	__asm__ volatile("" ::: "memory"); /* no tail call */
}
