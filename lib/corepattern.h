/* kernel.core_pattern and kernel.core_pipe_limit: installing procdiag's
 * crash handler, remembering what was there, putting it back byte for byte
 * (docs/CRASH.md, "Install").
 *
 * The saved file (PD_CORE_PATTERN_SAVED, a path fixed at build time) is
 * four text lines, written to a temporary name and renamed over the old:
 *   procdiag-core-pattern 1
 *   pattern <the previous core_pattern, its bytes as the kernel gave them>
 *   pipe_limit <previous core_pipe_limit> <what --install set, or "-">
 *   installed <the pattern --install wrote>
 * A core_pattern can hold neither '\n' nor NUL (the kernel stops at them),
 * so a line holds it whole. */
#ifndef PD_COREPATTERN_H
#define PD_COREPATTERN_H

#include <stdbool.h>
#include <stddef.h>

/* The kernel's limit (CORENAME_MAX_SIZE 128, its NUL included): a longer
 * write is cut silently, so the installer refuses one. */
#define PD_CORE_PATTERN_MAX 127
/* The core_pipe_limit --install sets when it finds 0 (0: the kernel does
 * not wait for the handler, and /proc/PID may be gone before the bundle
 * reads it). systemd-coredump's sysctl file sets 16 as well. */
#define PD_CORE_PIPE_LIMIT 16

struct pd_core_saved {
	char pattern[PD_CORE_PATTERN_MAX + 2];	 /* the previous pattern */
	char installed[PD_CORE_PATTERN_MAX + 2]; /* ours */
	unsigned long pipe_limit;		 /* the previous core_pipe_limit */
	bool pipe_limit_set;			 /* --install changed it ... */
	unsigned long pipe_limit_ours;		 /* ... to this */
};

/* Where the files are; tests name others (root only, as the CLI checks). */
struct pd_core_paths {
	const char *pattern;	/* NULL: /proc/sys/kernel/core_pattern */
	const char *pipe_limit; /* NULL: /proc/sys/kernel/core_pipe_limit */
	const char *saved;	/* NULL: PD_CORE_PATTERN_SAVED */
};

/* Reads core_pattern without its final '\n' into buf. 0 or -errno. */
int pd_core_pattern_read(const struct pd_core_paths *p, char *buf, size_t size);

/* Reads the saved file: 0, -ENOENT (not installed), -EINVAL (not ours or
 * damaged), -errno. */
int pd_core_saved_read(const struct pd_core_paths *p, struct pd_core_saved *out);

/* Writes pattern into core_pattern (after saving the previous values,
 * unless the current pattern is the one a previous install wrote: then the
 * saved original is kept) and raises core_pipe_limit from 0 to
 * PD_CORE_PIPE_LIMIT. 0 or -errno, with a sentence in err. *was (may be
 * NULL) gets the pattern found before. */
int pd_core_install(const struct pd_core_paths *p, const char *pattern, struct pd_core_saved *was,
		    char *err, size_t errlen);

/* Puts back the saved pattern (and core_pipe_limit, when install changed
 * it and nobody changed it since), checks it reads back the same, then
 * removes the saved file. -ENOENT: nothing saved; -EBUSY: core_pattern is
 * no longer what install wrote (someone changed it since) and !force. */
int pd_core_uninstall(const struct pd_core_paths *p, bool force, char *err, size_t errlen);

/* The value of core_pipe_limit, or -errno. */
long pd_core_pipe_limit(const struct pd_core_paths *p);

#endif
