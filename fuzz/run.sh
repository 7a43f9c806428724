#!/bin/sh
# Runs each fuzzer of make fuzz for SECONDS: run.sh BUILDDIR SRCDIR SECONDS NAME...
#
# Each harness starts from its committed seeds (fuzz/corpus/NAME, read only)
# and a working corpus in _fuzz/corpus/NAME that grows from run to run and is
# never committed. An input that crashes a harness, or breaks one of its
# invariants, is written by libFuzzer to fuzz/regress/NAME/ in the source
# tree: fix the bug, keep the file, and make check replays it from then on.
# The exit status is 1 when any harness found something.
set -u
builddir=$1 srcdir=$2 seconds=$3
shift 3
out=$builddir/_fuzz
mkdir -p "$out/log"
failed=''
for name in "$@"; do
	bin=$out/bin/fuzz_$name
	work=$out/corpus/$name
	regress=$srcdir/fuzz/regress/$name
	log=$out/log/$name.log
	mkdir -p "$work" "$regress"
	# detect_leaks: libFuzzer also checks every new input for leaks.
	ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:print_stacktrace=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
		"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
		-artifact_prefix="$regress/" -print_final_stats=1 \
		"$work" "$srcdir/fuzz/corpus/$name" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		printf 'fuzz: %-9s ok   %ss, %s inputs, %s, corpus %s files\n' "$name" "$seconds" \
			"${execs:-?}" "${cov:-cov: ?}" "$(ls "$work" | wc -l)"
		# Keep the source tree clean: drop the directory if nothing was found.
		rmdir "$regress" 2>/dev/null || true
	else
		printf 'fuzz: %-9s FAILED (status %s); the input is in %s/, the log in %s:\n' \
			"$name" "$rc" "$regress" "$log"
		grep -E 'ERROR|invariant failed|SUMMARY|Test unit written|runtime error' "$log" | head -n 20
		failed="$failed $name"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: FAILED:$failed"
	exit 1
fi
