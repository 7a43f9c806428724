#!/usr/bin/env bash
# bench/compress.sh — procdiag's compression side by side with zstd and gzip,
# on the same core, in one run.
#
# Target: bench/hbtarget, 32 threads and HEAP_MIB (default 1024) MiB of touched
# heap; one `procdiag dump --type Full` of it is the core every contender
# compresses (from the page cache, to a file in the same directory):
#   zstd -T0 -1          the anchor of compress=zstd (goal: procdiag >= 0.9x
#                        its throughput)
#   gzip -1              the anchor of the zip (goal: procdiag's zip bundle in
#                        <= 0.5x its time)
#   procdiag, zstd       lib/zstdout alone (bench/compressbench zstd)
#   procdiag, zip        the whole zip bundle of the core (bench/compressbench
#                        zip: the core deflated on every core, the binaries,
#                        debug files and manifest)
# and end to end, the dump and its compression in one command:
# `procdiag dump --type Full --zstd` and `--zip`, beside the raw dump.
#
# Usage: bench/compress.sh [-o FILE]     (in a built tree; bench/all.sh runs it)
# Environment: DUMP_DIR (default a temp dir under /var/tmp; it needs about
# 2.5x HEAP_MIB free), HEAP_MIB (default 1024), RUNS (default 3; the best run
# of each counts), PROCDIAG_B (another build's procdiag binary, e.g. a copy of
# main's: its --zip and --zstd end to end are run interleaved with this
# tree's, rows marked "(B)", for an A/B in one run), SYNC (default 1: `sync`
# before every timed command, untimed, so each starts with no dirty page
# cache; 0: none, the raw core written first stays dirty while the others
# run, and its writeback lands on whichever command passes the kernel's
# dirty threshold).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
OUT=
[ "${1:-}" = -o ] && OUT=$2

for tool in zstd gzip python3; do
	command -v "$tool" >/dev/null || { echo "bench/compress.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
done
[ -x ./procdiag ] && [ -x bench/hbtarget ] && [ -x bench/compressbench ] ||
	{ echo "bench/compress.sh: build first (make)" >&2; exit 1; }

report=$(python3 - "$ROOT" <<'EOF'
import os, shutil, subprocess, sys, tempfile, time

root = sys.argv[1]
procdiag = os.path.join(root, "procdiag")
hbtarget = os.path.join(root, "bench", "hbtarget")
cbench = os.path.join(root, "bench", "compressbench")
procdiag_b = os.environ.get("PROCDIAG_B")
base = os.environ.get("DUMP_DIR") or "/var/tmp"
heap = int(os.environ.get("HEAP_MIB", "1024"))
runs = int(os.environ.get("RUNS", "3"))
work = tempfile.mkdtemp(prefix="pd-bench-compress-", dir=base)
load_start = os.getloadavg()[0]
has_zstd_flag = b"--zstd" in subprocess.run([procdiag, "dump", "--help"],
                                            stdout=subprocess.PIPE).stdout


settle = os.environ.get("SYNC", "1") != "0"


def wall(argv, stdout=subprocess.DEVNULL):
    if settle:
        os.sync()
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=stdout, cwd=work)
    return time.monotonic() - start


def to_file(argv, path):
    with open(path, "wb") as f:
        return wall(argv, stdout=f), os.path.getsize(path)


def inner(argv):
    """compressbench's own figure: seconds and bytes written."""
    if settle:
        os.sync()
    r = subprocess.run(argv, check=True, stdout=subprocess.PIPE, cwd=work)
    s, n = r.stdout.split()
    return float(s), int(n)


def rm(*paths):
    for p in paths:
        if os.path.exists(p):
            os.unlink(p)


t = subprocess.Popen([hbtarget, "32", str(heap)], stdout=subprocess.PIPE)
try:
    line = t.stdout.readline().decode()
    assert line.startswith("ready"), line
    pid = line.split()[1]
    core = os.path.join(work, "core")
    wall([procdiag, "dump", "-p", pid, "--type", "Full", "-q", "-o", core])  # warm-up
    rm(core)
    res = {k: [] for k in ("raw", "zstd_cli", "gzip", "pd_zstd", "pd_zip", "dump_zip", "dump_zstd",
                           "dump_zip_b", "dump_zstd_b")}
    for i in range(runs):
        rm(core)
        res["raw"].append((wall([procdiag, "dump", "-p", pid, "--type", "Full", "-q", "-o", core]),
                           os.path.getsize(core)))
        out = os.path.join(work, "out")
        res["zstd_cli"].append(to_file(["zstd", "-T0", "-1", "-q", "-c", core], out)); rm(out)
        res["pd_zstd"].append(inner([cbench, "zstd", core, out])); rm(out)
        res["gzip"].append(to_file(["gzip", "-1", "-c", core], out)); rm(out)
        res["pd_zip"].append(inner([cbench, "zip", pid, core, out])); rm(out)
        # A and B alternate, B first on odd runs: each meets the page cache
        # the other left as often.
        order = [(procdiag, "")] + ([(procdiag_b, "_b")] if procdiag_b else [])
        if i % 2:
            order.reverse()
        for exe, sfx in order:
            res["dump_zip" + sfx].append((wall([exe, "dump", "-p", pid, "--type", "Full", "--zip",
                                                "-q", "-o", out]), os.path.getsize(out))); rm(out)
        for exe, sfx in order:
            if has_zstd_flag:
                res["dump_zstd" + sfx].append((wall([exe, "dump", "-p", pid, "--type", "Full",
                                                     "--zstd", "-q", "-o", out]),
                                               os.path.getsize(out))); rm(out)
finally:
    t.kill()
    t.wait()
    shutil.rmtree(work, ignore_errors=True)

best = {k: min(v) for k, v in res.items() if v}
size = best["raw"][1]


def mib(n):
    return "%.0f" % (n / 1048576.0)


def row(label, key, anchor):
    s, n = best[key]
    print("| %s | %.2f | %.0f | %s | %.2f |" % (label, s, size / s / 1048576.0, mib(n),
                                               best[anchor][0] / s))


print("### Compression (`bench/compress.sh`)\n")
print("%s; %d CPUs; target: 32 threads, %d MiB of touched heap; its full core: %s MiB. Best of" % (
    time.strftime("%Y-%m-%d", time.gmtime()), len(os.sched_getaffinity(0)), heap, mib(size)))
print("%d run(s), interleaved; every contender reads the same core from the page cache and writes" % runs)
print("to a file beside it. \"vs anchor\" is the anchor's time over this row's: throughput ratio,")
print("higher is faster (goals: zstd >= 0.9 of `zstd -T0 -1`; the zip bundle in <= 0.5x the time")
print("of `gzip -1`, i.e. >= 2.0 here).")
if settle:
    print("Every command starts with no dirty page cache on the machine (`sync` before it, not")
    print("timed): the raw core written first would otherwise be written back, and the next")
    print("command's spool with it, while that command runs (SYNC=0 leaves it so).\n")
else:
    print("SYNC=0: no `sync` between commands; the raw core written first is still dirty page")
    print("cache while the others run.\n")
print("| contender | s | MiB/s of core | output MiB | vs anchor |")
print("|---|---:|---:|---:|---:|")
row("`zstd -T0 -1` (anchor)", "zstd_cli", "zstd_cli")
row("procdiag zstd (lib/zstdout)", "pd_zstd", "zstd_cli")
row("`gzip -1` (anchor)", "gzip", "gzip")
row("procdiag zip bundle (lib/bundle, parallel deflate)", "pd_zip", "gzip")
print("\nEnd to end, the dump included (`procdiag dump -p PID --type Full ...`):\n")
print("| command | wall s | output MiB | vs the raw dump |")
print("|---|---:|---:|---:|")
for label, key in (("(raw)", "raw"), ("--zstd", "dump_zstd"), ("--zstd (B)", "dump_zstd_b"),
                   ("--zip", "dump_zip"), ("--zip (B)", "dump_zip_b")):
    if key in best:
        s, n = best[key]
        print("| %s | %.2f | %s | %.2f |" % (label, s, mib(n), s / best["raw"][0]))
print("\nEvery run's wall seconds, in run order (runs 1, 2, ...), for the spread:\n")
for key in ("raw", "gzip", "pd_zip", "dump_zstd", "dump_zstd_b", "dump_zip", "dump_zip_b"):
    if res.get(key):
        print("- %s: %s" % (key, ", ".join("%.2f" % s for s, _ in res[key])))
print("\nEnd-to-end `--zip` over its own run's `gzip -1` (issue 11's goal: <= 0.5):\n")
for key in ("dump_zip", "dump_zip_b"):
    if res.get(key):
        print("- %s: %s" % (key, ", ".join("%.2f" % (z[0] / g[0]) for z, g in zip(res[key], res["gzip"]))))
print("\nLoad average (1 min): %.2f at the start, %.2f at the end." % (load_start, os.getloadavg()[0]))
if procdiag_b:
    print("\n(B) is %s." % procdiag_b)
print("\nReproduce: `bench/compress.sh` in a built tree (HEAP_MIB=%d RUNS=%d SYNC=%d)."
      % (heap, runs, settle))
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
