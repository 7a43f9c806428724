#!/usr/bin/env bash
# bench/download.sh — a raw full dump downloaded through nginx from procdiag,
# side by side with the same bytes served by the same nginx as a static file.
#
# One target (bench/hbtarget: 1 thread, SIZE_MIB of touched heap, default
# 1280: a core of about 1.3 GB). For each of RUNS runs: procdiag's dump over
# HTTP (curl -o /dev/null; the download is the time from the first byte of
# the response to the last, as procdiag answers only once the core is
# spooled), then the same core, saved once, fetched from a static location of
# the same nginx. Best run of each; the ratio is static time / procdiag time
# (1 = nginx's own speed).
#
# Usage: bench/download.sh [-o FILE]   (in a built tree; ./dev bench runs it)
# Environment: SIZE_MIB (default 1280), RUNS (default 3), DUMP_DIR (spool_dir
# and the static copy; default /var/tmp, it needs 2x the core free).
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
OUT=
[ "${1:-}" = -o ] && OUT=$2
SIZE_MIB=${SIZE_MIB:-1280}
RUNS=${RUNS:-3}
DUMP_DIR=${DUMP_DIR:-/var/tmp}
. bench/lib.sh

for tool in curl python3; do
	command -v "$tool" >/dev/null || { echo "bench/download.sh: $tool missing" >&2; exit 1; }
done
[ -x ./procdiag ] && [ -x bench/hbtarget ] || { echo "bench/download.sh: build first (make)" >&2; exit 1; }

bench_init download
static=$(mktemp -d "$DUMP_DIR/pd-bench-download.XXXXXX")
bench_pids=()
trap 'bench_cleanup; rm -rf "$static"' EXIT
start_stack dl "spool_dir = $DUMP_DIR" "spool_memory_max = 0"
# The static location: the core, from the same file system as the spool.
sed -i "s|include procdiag-locations.conf;|include procdiag-locations.conf;\n        location = /core.bin { root $static; }|" "$run/dl/nginx.conf"
kill -HUP "$(cat "$run/dl/nginx.pid")"

coproc TGT { exec bench/hbtarget 1 "$SIZE_MIB"; }
bench_pids+=("$TGT_PID")
read -r ready pid <&"${TGT[0]}"
[ "$ready" = ready ] || { echo "bench/download.sh: hbtarget did not start" >&2; exit 1; }
url="http://127.0.0.1:$port_dl"

# Saved once: the static copy, and a check that a dump gets through at all.
curl -fsS -H "Authorization: Bearer $key" -o "$static/core.bin" \
	"$url/api/processes/$pid/dump?dumpType=Full"
bytes=$(stat -c %s "$static/core.bin")
curl -fso /dev/null "$url/core.bin"   # warm the page cache and nginx

fetch() { # URL [auth]: prints "start_s total_s bytes curl_cpu_s"
	local out
	out=$( { /usr/bin/time -f '%U %S' curl -fsS -o /dev/null \
		-w '%{time_starttransfer} %{time_total} %{size_download}\n' \
		-H "Authorization: Bearer $key" "$1"; } 2>&1 )
	echo "$out" | awk 'NR == 1 { l = $0 } NR == 2 { print l, $1 + $2 }'
}
ngx_cpu() { # CPU seconds so far of nginx's workers
	local w s=0
	for w in $(pgrep -P "$(cat "$run/dl/nginx.pid")"); do
		s=$(awk -v s="$s" '{ print s + ($14 + $15) / 100 }' "/proc/$w/stat")
	done
	echo "$s"
}
cpu() { # procdiag's own CPU seconds so far (its helpers not counted)
	awk '{ print ($14 + $15) / 100 }' "/proc/$pd_dl/stat"
}
pd_best= st_best= pd_dump= pd_cpu= pd_ngx= pd_curl= st_ngx= st_curl=
for i in $(seq "$RUNS"); do
	c0=$(cpu); g0=$(ngx_cpu)
	read -r s t n u < <(fetch "$url/api/processes/$pid/dump?dumpType=Full")
	c1=$(cpu); g1=$(ngx_cpu)
	[ "$n" = "$bytes" ] || { echo "bench/download.sh: dump of $n bytes, not $bytes" >&2; exit 1; }
	d=$(python3 -c "print('%.3f' % ($t - $s))")
	if [ -z "$pd_best" ] || python3 -c "import sys; sys.exit(not $d < $pd_best)"; then
		pd_best=$d; pd_dump=$s; pd_curl=$u
		pd_cpu=$(python3 -c "print('%.2f' % ($c1 - $c0))")
		pd_ngx=$(python3 -c "print('%.2f' % ($g1 - $g0))")
	fi
	g0=$(ngx_cpu)
	read -r s t n u < <(fetch "$url/core.bin")
	g1=$(ngx_cpu)
	d=$(python3 -c "print('%.3f' % ($t - $s))")
	if [ -z "$st_best" ] || python3 -c "import sys; sys.exit(not $d < $st_best)"; then
		st_best=$d; st_curl=$u; st_ngx=$(python3 -c "print('%.2f' % ($g1 - $g0))")
	fi
done

report=$(python3 - "$bytes" "$pd_best" "$st_best" "$pd_dump" "$RUNS" "$SIZE_MIB" "$DUMP_DIR" "$pd_cpu" \
	"$pd_ngx" "$pd_curl" "$st_ngx" "$st_curl" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import sys, time
b, pd, st, dump, runs, mib, d, cpu, pngx, pcurl, sngx, scurl, load = sys.argv[1:]
b, pd, st, dump = int(b), float(pd), float(st), float(dump)
rate = lambda s: b / s / 1e6 if s else 0
print("### Downloads (`bench/download.sh`)\n")
print("%s; a raw full dump (`dumpType=Full`, spool on %s) of a %s MiB heap, %d bytes," % (
    time.strftime("%Y-%m-%d", time.gmtime()), d, mib, b))
print("downloaded through nginx by curl, against the same bytes served by the same nginx")
print("as a static file from the same file system; best of %s run(s) each. Download" % runs)
print("time is first byte to last byte.")
print("CPU seconds of the best run: curl's, nginx's workers' (both over the")
print("download), procdiag's (the whole request, its dump helper not counted).")
print("Load average at the end: %s (2 cores: CPU-bound figures stretch with it).\n" % load)
print("| what | download s | MB/s | vs static | CPU s: curl / nginx / procdiag |")
print("|---|---:|---:|---:|---|")
print("| procdiag dump, raw (dump taken before the first byte: %.2f s) | %.3f | %.0f | %.2f | %s / %s / %s |" % (
    dump, pd, rate(pd), st / pd if pd else 0, pcurl, pngx, cpu))
print("| nginx static file, same bytes | %.3f | %.0f | 1 | %s / %s / - |" % (st, rate(st), scurl, sngx))
print("\nReproduce: `bench/download.sh` (SIZE_MIB=%s RUNS=%s DUMP_DIR=%s)." % (mib, runs, d))
PY
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
