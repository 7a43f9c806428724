/* The zip bundle: a core plus everything a debugger on another machine needs.
 *
 * Called after the dump helper finished and the target runs again (so the
 * compression never stops it). The zip holds, besides the core:
 *   sysroot/<path>      every mapped executable and shared object, read
 *                       through /proc/PID/map_files (the mapped inode, even
 *                       when the path was replaced or deleted since), checked
 *                       against the build-id in the core; stored under its
 *                       NT_FILE path and again under its link_map name when
 *                       that differs (/lib/... vs /usr/lib/...)
 *   sysroot/usr/lib/debug/.build-id/xx/yyyy.debug   separate debug files
 *   sysroot/<dir>/.debug/<name>                     ... or by .gnu_debuglink
 *   sysroot/<dir>/libmscordaccore.so, libmscordbi.so  beside libcoreclr.so
 *   manifest.json, open-core.gdb, README.txt
 * Every entry name is relative and free of "." and ".." components.
 * See docs/DUMPS.md, "Zip bundle". */
#ifndef PD_BUNDLE_H
#define PD_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pd_dump_figures;

struct pd_bundle_opts {
	pid_t pid;	       /* target, alive: its /proc/PID/map_files are read */
	uint64_t start_time;   /* its start time (stat field 22) as the dump saw it;
				  another process now under pid is -ESRCH. 0: any */
	int core_fd;	       /* the finished core, read with pread */
	const char *core_name; /* name of the core inside the zip, e.g. "core.1234" */
	const char *dump_type; /* for the manifest, e.g. "Mini" or "0x2" */
	uint64_t stopped_us;   /* for the manifest */
	/* For the manifest too: how the memory was copied (lib/dumprun.h).
	 * NULL: not said. */
	const struct pd_dump_figures *figures;
	/* Called as the zip is written with the fraction done (0 to 1): of
	 * the bytes of every entry's file read, the core's as the deflate
	 * workers finish them; nonzero stops it (-ECANCELED). NULL: never
	 * stopped. */
	int (*progress)(void *arg, double fraction);
	void *progress_arg;
	/* Opens the zip's spool once every entry is chosen, before a byte is
	 * written: bytes is an upper bound of the whole zip (every entry at
	 * its stored size, deflate's worst case and the headers). Returns the
	 * fd (the caller owns it; pd_bundle_write writes into it as into
	 * out_fd) and sets *limit to the most it may hold (0: no bound but its
	 * file system's), or -errno, which pd_bundle_write returns as is.
	 * NULL: out_fd is used, unbounded. */
	int (*open_out)(void *arg, uint64_t bytes, uint64_t *limit);
	void *out_arg;
	/* core_fd is a spool dropped once the zip is written (the dump job's):
	 * it is punched behind the deflate (lib/pdeflate.h, consume), after
	 * every other read of it (notes, link_map, build-ids) is done. After
	 * the call (success, failure or cancel) core_fd may hold holes where
	 * the core was: it cannot be bundled again. Never set for a core the
	 * caller keeps. */
	bool consume_core;
};

struct pd_bundle_result {
	uint64_t size;	/* bytes of zip written to out_fd */
	uint64_t bound; /* the upper bound the spool was opened for */
	unsigned modules, binaries, debug_files;
};

/* Writes the zip into out_fd (or the fd o->open_out gives; seekable,
 * usually O_TMPFILE) from offset 0
 * through a libzip seekable source (zip_source_function_create), and
 * truncates out_fd to the zip's size. Returns 0 or -errno: -ENOSPC (or
 * -EDQUOT) when out_fd's file system is full, -ECANCELED when progress
 * asked to stop, -EFBIG when the zip would
 * pass open_out's limit (nothing past it is written), -ESRCH when the target
 * is gone, -EINVAL when core_fd is no ELF core, -ENOMEM, -EIO; err (may be
 * NULL) gets a human sentence. On failure out_fd is truncated to 0 so a spool
 * holds nothing. A module that cannot be read (or whose build-id does not
 * match the core) is no failure: the manifest says why it is missing.
 * Thread-safe; uses no global state but libelf's version. */
int pd_bundle_write(const struct pd_bundle_opts *o, int out_fd, struct pd_bundle_result *res,
		    char *err, size_t errlen);

#endif
