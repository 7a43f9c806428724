/* pdlib: a shared object for tests/targets/pdlibtarget, built twice with a
 * different PDLIB_VARIANT so the two builds differ in code and build-id: a
 * test loads one, then replaces it on disk with the other. */
#include <unistd.h>

#ifndef PDLIB_VARIANT
#define PDLIB_VARIANT 1
#endif

int pdlib_variant(void)
{
	return PDLIB_VARIANT;
}

/* Blocks for ever; a backtrace through it names this function. */
void pdlib_park(void)
{
	for (;;)
		pause();
}
