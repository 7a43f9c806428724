/* Test hooks: the one place that knows them (docs/TESTING.md, "The test
 * build").
 *
 * They exist only when PD_TEST_HOOKS is defined, which Makefile.am does for
 * one check program, tests/procdiag-hooked, built from the same sources as
 * procdiag. The procdiag binary and the package never define it: there every
 * hook below is an empty inline function, no environment variable is read,
 * and a test that sets one changes nothing (tests/e2e/test_hostile_env.py).
 *
 * In the test build each hook reads its environment variable when called:
 *   pd_hook_frozen(PD_HOOK_DUMP)    after the dump helper froze its target:
 *       PD_TEST_FROZEN_WAIT=PATH    opens the FIFO PATH and reads until EOF
 *                                   (the test writes when it is done), else
 *       PD_TEST_FROZEN_SLEEP_MS=MS  sleeps that long, target frozen
 *   pd_hook_frozen(PD_HOOK_STACKS)  after the stacks helper froze its target:
 *       PD_TEST_STACKS_FROZEN_SLEEP_MS=MS
 *   pd_hook_cloned(cancel)          after the dump helper cloned its target
 *       PD_TEST_CLONED_SLEEP_MS=MS  and thawed it: sleeps that long (the
 *                                   clone alive, the target running), or
 *                                   until *cancel is set
 *   pd_hook_mem_budget(budget)      the dump helper's --mem-budget when the
 *       PD_TEST_MEM_BUDGET=BYTES    caller gave none (the server never does):
 *                                   a small one takes the direct-write path
 *   pd_hook_freeze_rounds(max)      the freeze's retry limit (lib/freeze.c):
 *       PD_TEST_FREEZE_ROUNDS=N     1 gives up after the first round, as
 *                                   for a target whose threads never stop
 *                                   appearing
 *   pd_hook_zero_method(m)          how the dump tells zero pages from data
 *       PD_TEST_ZERO_PAGES=NAME     (lib/memcopy.h): "move_pages" skips
 *                                   PAGEMAP_SCAN as a kernel before 6.7
 *                                   would, "none" skips both
 *   pd_hook_compress_hold(stop, arg) an egress job's progress in its
 *       PD_TEST_COMPRESS_HOLD=PATH  COMPRESS phase (lib/operations.c): while
 *                                   the file PATH exists, creates PATH.held
 *                                   and waits (10 ms polls) until PATH is
 *                                   removed or stop(arg) is nonzero: the
 *                                   compression paused mid-stream, the
 *                                   uploader free to run */
#ifndef PD_TESTHOOKS_H
#define PD_TESTHOOKS_H

#include <stdint.h>

enum pd_hook_point { PD_HOOK_DUMP, PD_HOOK_STACKS };

#ifdef PD_TEST_HOOKS
void pd_hook_frozen(enum pd_hook_point where);
void pd_hook_cloned(volatile int *cancel);
uint64_t pd_hook_mem_budget(uint64_t budget);
unsigned pd_hook_freeze_rounds(unsigned max);
int pd_hook_zero_method(int m);
void pd_hook_compress_hold(int (*stop)(void *), void *arg);
#else
static inline void pd_hook_frozen(enum pd_hook_point where)
{
	(void)where;
}

static inline void pd_hook_cloned(volatile int *cancel)
{
	(void)cancel;
}

static inline uint64_t pd_hook_mem_budget(uint64_t budget)
{
	return budget;
}

static inline unsigned pd_hook_freeze_rounds(unsigned max)
{
	return max;
}

static inline int pd_hook_zero_method(int m)
{
	return m;
}

static inline void pd_hook_compress_hold(int (*stop)(void *), void *arg)
{
	(void)stop, (void)arg;
}
#endif

#endif
