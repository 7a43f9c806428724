#!/usr/bin/env bash
# bench/crash.sh — how long a crashing process waits for procdiag's crash
# handler (docs/CRASH.md), against the kernel writing its own core file.
#
# The target is tests/targets/crashtarget with MIB MiB of non-zero heap; it
# crashes by SIGSEGV and the time is from its crash to its parent's
# waitpid: the time the kernel holds it for the core. The anchor is the
# kernel's own file (core_pattern "core", the file on /var/tmp); then the
# handler, installed as tests/e2e/test_crash.py installs it (and put back
# the same way, under /tmp/procdiag-core_pattern.lock), storing the core
# raw, as a zstd stream and as a zip bundle. REPS runs each, the median
# reported. Root only (core_pattern).
#
# Usage: bench/crash.sh     (in a built tree: make, make tests/targets/crashtarget)
# Environment: MIB (default 1024), REPS (default 3).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" -eq 0 ] || { echo "bench/crash.sh: root only (kernel.core_pattern)" >&2; exit 1; }
[ -x ./procdiag ] && [ -x tests/targets/crashtarget ] ||
	{ echo "bench/crash.sh: build first (make; make tests/targets/crashtarget)" >&2; exit 1; }

PD_BUILDDIR=$ROOT python3 - "${MIB:-1024}" "${REPS:-3}" <<'EOF'
import fcntl, os, shutil, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "e2e"))
import harness as h  # noqa: E402
import test_crash as tc  # noqa: E402

mib, reps = int(sys.argv[1]), int(sys.argv[2])


def held(exe, cwd):
    p = subprocess.Popen([exe, "segv", "mib", str(mib)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, cwd=cwd)
    pid = int(p.stdout.readline().split()[1])
    start = time.monotonic()
    p.stdin.write(b"go\n")
    p.stdin.flush()
    p.wait()
    took = time.monotonic() - start
    tc.wait_handled(pid)
    return took


rows = []
lock = os.open(tc.LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
fcntl.flock(lock, fcntl.LOCK_EX)
orig = tc._read(tc.CORE_PATTERN)
work = tempfile.mkdtemp(prefix="pd-bench-crash-", dir="/var/tmp")
try:
    tc._write(tc.CORE_PATTERN, b"core")
    times = []
    for _ in range(reps):
        times.append(held(tc.CRASHTARGET, work))
        size = os.path.getsize(os.path.join(work, "core"))
        os.unlink(os.path.join(work, "core"))
    rows.append(("the kernel's own file (anchor)", statistics.median(times), size))
finally:
    tc._write(tc.CORE_PATTERN, orig)
    shutil.rmtree(work, ignore_errors=True)
    fcntl.flock(lock, fcntl.LOCK_UN)
    os.close(lock)
for fmt in ("raw", "zstd", "zip"):
    conf = tc.one_rule("r", "name = crashtarget", top=["store_max_count = 1"]) + \
        "format = %s\n" % fmt
    with tc.Handler(conf) as hd:
        times, sizes = [], []
        for _ in range(reps):
            times.append(held(hd.target(), hd.dir))
            (meta,) = hd.entries().values()
            sizes.append(meta["size"])
        rows.append(("procdiag crash-handler, " + fmt, statistics.median(times),
                     statistics.median(sizes)))
anchor = rows[0][1]
print("### Crash capture (`bench/crash.sh`)\n")
print("A process with %d MiB of non-zero heap dies of SIGSEGV; the time from the "
      "crash to its parent's `waitpid` (the kernel holds it until the core is "
      "taken), median of %d. A raw core and a zstd stream let the process go as "
      "soon as the core is read; a zip keeps it for the bundle (docs/CRASH.md).\n"
      % (mib, reps))
print("| the core goes to | process held | vs the kernel's file | stored |")
print("|---|---|---|---|")
for name, t, size in rows:
    print("| %s | %.2f s | %.2f× | %d MiB |" % (name, t, t / anchor, size >> 20))
print()
EOF
