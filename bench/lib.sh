# bench/lib.sh — sourced by the benchmarks: a scratch directory, an API key,
# nginx -> procdiag stacks on free loopback ports, and wrk runs.
#
#   bench_init NAME          $run (removed at exit, with every stack), $key
#   start_stack NAME [LINE]  nginx + procdiag (PD_BIN, default ./procdiag); LINE...: extra config lines.
#                            Sets port_NAME and pd_NAME (procdiag's pid).
#   wrk_run NAME URL CONNS SECONDS
#                            prints "req_per_s p50_ms p99_ms errors"
# Callers set THREADS (procdiag workers) and NGINX before start_stack.
#   dump_bench_ready NAME    exits unless gcore, python3, ./procdiag,
#                            bench/hbtarget and bench/forkfloor are there (the dump benchmarks)

dump_bench_ready() {
	local tool
	for tool in gcore python3; do
		command -v "$tool" >/dev/null || { echo "bench/$1.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
	done
	[ -x ./procdiag ] && [ -x bench/hbtarget ] && [ -x bench/forkfloor ] || { echo "bench/$1.sh: build first (make)" >&2; exit 1; }
}

bench_init() {
	run=$(mktemp -d "/tmp/pd-bench-$1.XXXXXX")
	stack_pids=()
	bench_pids=()
	trap bench_cleanup EXIT
	./procdiag genkey > "$run/key"
	key=$(sed -n 1p "$run/key")
	mkdir -p "$run/html"
	cp /etc/nginx/mime.types /etc/nginx/fastcgi_params "$run/"
}

bench_cleanup() {
	[ ${#stack_pids[@]} -gt 0 ] && kill "${stack_pids[@]}" 2>/dev/null
	[ ${#bench_pids[@]} -gt 0 ] && kill "${bench_pids[@]}" 2>/dev/null
	wait 2>/dev/null || true
	rm -rf "$run"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_stack() {
	local name=$1 d="$run/$1" sock="$run/$1/procdiag.sock" port i user='# (not root)' line
	shift
	[ "$(id -u)" -eq 0 ] && user='user root;'
	mkdir -p "$d/tmp"
	{
		sed -n 2p "$run/key"
		echo "log_requests = ${LOG_REQUESTS:-false}"
		for line in "$@"; do echo "$line"; done
	} > "$d/procdiag.conf"
	port=$(free_port)
	sed "s|unix:/run/procdiag/procdiag.sock|unix:$sock|g" nginx/procdiag.conf > "$d/procdiag-locations.conf"
	cp "$run/mime.types" "$run/fastcgi_params" "$d/"
	# The dev template, plus one static location serving $run/html.
	sed -e "s|@PREFIX@|$d|g" -e "s|@LISTEN@|127.0.0.1:$port|g" -e "s|@SOCKET@|$sock|g" \
		-e "s|@USER@|$user|g" -e "s|access_log .*;|access_log off;|" \
		-e "s|include procdiag-locations.conf;|include procdiag-locations.conf;\n        location = /static.json { root $run/html; default_type application/json; }|" \
		nginx/dev.conf.in > "$d/nginx.conf"
	"${PD_BIN:-./procdiag}" serve --listen "unix:$sock" --config "$d/procdiag.conf" --threads "${THREADS:-16}" \
		2>"$d/procdiag.log" &
	stack_pids+=($!)
	printf -v "pd_$name" '%s' "$!"
	for i in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	"${NGINX:-/usr/sbin/nginx}" -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;' &
	stack_pids+=($!)
	for i in $(seq 50); do
		curl -fso /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/processes" && break
		sleep 0.1
	done
	printf -v "port_$name" '%s' "$port"
}

wrk_run() {
	local name=$1 url=$2 conns=$3 secs=$4
	wrk -t"$(( conns < 2 ? 1 : 2 ))" -c"$conns" -d"${secs}s" --latency \
		-H "Authorization: Bearer $key" "$url" > "$run/wrk-$name.txt"
	python3 - "$run/wrk-$name.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errs = (int(m.group(1)) if m else 0) + (sum(map(int, e.groups())) if e else 0)
print("%.0f %.2f %.2f %d" % (rps, p50, p99, errs))
PY
}
