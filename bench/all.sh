#!/usr/bin/env bash
# bench/all.sh — runs every benchmark side by side with its anchors and
# rewrites docs/BENCHMARKS.md from their reports. `./dev bench` runs it.
#
# Usage: bench/all.sh [-n]     (-n: print the report, do not write the file)
# Each bench/NAME.sh prints a Markdown section on stdout; the sections are
# assembled in the order below. A benchmark that fails stops the run and
# leaves docs/BENCHMARKS.md unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
BENCHES=(list dump compress stacks profile load zeropages download rules crash egress table)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
	cat <<HEAD
# Benchmarks

Every number below is a ratio against an anchor (nginx serving a static file,
\`ps\`, \`gcore\`, \`eu-stack\`, \`gdb\`) measured side by side in the same run on
the same machine. Regenerate the whole file with \`./dev bench\` (or
\`bench/all.sh\` in a built tree); each section names the command that
reproduces it alone. Timings vary with the machine and its load; the ratios
are the point.

Machine of this run: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo),
$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r).

HEAD
	for b in "${BENCHES[@]}"; do
		[ -x "bench/$b.sh" ] || continue
		echo "bench/all.sh: bench/$b.sh" >&2
		bash "bench/$b.sh"
		echo
	done
} > "$out"
if [ "${1:-}" = -n ]; then
	cat "$out"
else
	cp "$out" docs/BENCHMARKS.md
	echo "bench/all.sh: wrote docs/BENCHMARKS.md" >&2
fi
