#!/usr/bin/env bash
# bench/egress.sh — a zstd dump uploaded to Azure Blob Storage (Azurite) by an
# operation, side by side with the same dump written to a local file, in one run.
#
# Target: bench/hbtarget, 32 threads and HEAP_MIB (default 4096) MiB of heap,
# HB_FILL=mixed (partly compressible: random, text, records, near-zero pages).
#   (a) anchor: `procdiag dump -p PID --type Full --zstd -o FILE` (the CLI; the
#       same dump job), its wall time and the target's stop (the job's
#       stopped_us and hbtarget's own longest heartbeat gap);
#   (b) `GET /api/processes/PID/dump?dumpType=Full&compress=zstd&egressProvider=az`
#       through nginx and the responder, to Azurite (tests/azurite, on a
#       loopback port, its data in the run's directory): endedDateTime -
#       createdDateTime of the operation, its stopped_us, hbtarget's gap,
#       the bytes uploaded while the stream was being written, and the
#       responder's peak RSS (VmHWM) against block_size x parallel.
# Goal (issue 13): (b) <= 1.2x (a), the same stop, RSS bounded by the blocks.
#
# Usage: bench/egress.sh [-o FILE]   (in a built tree, Azurite installed by ./dev)
# Environment: HEAP_MIB (default 4096), RUNS (default 1; interleaved, the best
# of each counts), BLOCK_MIB (default 4), PARALLEL (default 4). The run's
# directory (under /tmp) needs about 2.5x HEAP_MIB free.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
. bench/lib.sh
OUT=
[ "${1:-}" = -o ] && OUT=$2
HEAP_MIB=${HEAP_MIB:-4096}
RUNS=${RUNS:-1}
BLOCK_MIB=${BLOCK_MIB:-4}
PARALLEL=${PARALLEL:-4}
AZ=tests/azurite/node_modules/.bin/azurite-blob

for tool in zstd python3 curl; do
	command -v "$tool" >/dev/null || { echo "bench/egress.sh: $tool missing (./dev bench installs it)" >&2; exit 1; }
done
[ -x ./procdiag ] && [ -x bench/hbtarget ] || { echo "bench/egress.sh: build first (make)" >&2; exit 1; }
[ -x "$AZ" ] || { echo "bench/egress.sh: no Azurite at $AZ (./dev installs it)" >&2; exit 1; }

bench_init egress
mkdir -p "$run/spool" "$run/azurite" "$run/local"
azport=$(free_port)
azaccount=pdbench
azkey=$(head -c 64 /dev/urandom | base64 -w0)
AZURITE_ACCOUNTS="$azaccount:$azkey" "$AZ" --blobHost 127.0.0.1 --blobPort "$azport" \
	--location "$run/azurite" --skipApiVersionCheck --loose --silent --disableTelemetry \
	>"$run/azurite.log" 2>&1 &
bench_pids+=($!)
azpid=$!
THREADS=4 start_stack egress "spool_dir = $run/spool" "" "[egress az]" "type = azureBlobStorage" \
	"account_url = http://127.0.0.1:$azport/$azaccount" "container = dumps" \
	"account_key = $azkey" "block_size = ${BLOCK_MIB}M" "parallel = $PARALLEL"
HB_FILL=mixed bench/hbtarget 32 "$HEAP_MIB" > "$run/hb.out" &
bench_pids+=($!)
hbpid=$!

report=$(python3 - "$ROOT" <<EOF
import json, os, resource, signal, subprocess, sys, time, urllib.request
sys.path.insert(0, os.path.join(sys.argv[1], "tests", "e2e"))
import azurite as az  # its SharedKey signer, to make the container

run, port, key, pd, hb, azpid = "$run", $port_egress, "$key", $pd_egress, $hbpid, $azpid
heap, runs, bs, par = $HEAP_MIB, $RUNS, $BLOCK_MIB << 20, $PARALLEL
procdiag = os.path.join(sys.argv[1], "procdiag")
a = az.Azurite(location="$run/azurite", port=$azport, account="$azaccount", key="$azkey")
deadline = time.time() + 30
while True:
    try:
        a.create_container("dumps")
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
hbout = open(os.path.join(run, "hb.out"))
while not hbout.readline().startswith("ready"):
    time.sleep(0.2)


def gap_reset():
    os.kill(hb, signal.SIGUSR1)
    while not hbout.readline().startswith("gap_us"):
        time.sleep(0.05)


def gap():
    os.kill(hb, signal.SIGUSR1)
    while True:
        line = hbout.readline()
        if line.startswith("gap_us"):
            return int(line.split()[1])
        time.sleep(0.05)


def http(method, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 headers={"Authorization": "Bearer " + key,
                                          "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read() or b"null")


def vm(field):
    with open("/proc/%d/status" % pd) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024


def ms(iso):
    import datetime
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def cpu(pid):
    """CPU seconds of pid and its reaped children (the responder's dump helpers)."""
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


def kids():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def local():
    out = os.path.join(run, "local", "core.zst")
    gap_reset()
    c0 = kids()
    t0 = time.monotonic()
    r = subprocess.run([procdiag, "dump", "-p", str(hb), "--type", "Full", "--zstd", "-q",
                        "--json", "-o", out], check=True, stdout=subprocess.PIPE)
    s = time.monotonic() - t0
    c = kids() - c0
    j = json.loads(r.stdout)
    size = os.path.getsize(out)
    os.unlink(out)
    return dict(s=s, stopped_us=j["stopped_us"], gap_us=gap(), bytes=size,
                core=j["core_size"], cpu=c, method=j["method"])


def egress():
    gap_reset()
    c0, a0 = cpu(pd), cpu(azpid)
    st, doc = http("GET", "/api/processes/%d/dump?dumpType=Full&compress=zstd&egressProvider=az"
                   % hb)
    assert st == 202, (st, doc)
    oid = doc["operationId"]
    while doc["status"] == "Running":
        time.sleep(0.1)
        st, doc = http("GET", "/operations/" + oid)
    assert doc["status"] == "Succeeded", doc
    c, az_ = cpu(pd) - c0, cpu(azpid) - a0
    d = doc["dump"]
    return dict(s=ms(doc["endedDateTime"]) - ms(doc["createdDateTime"]),
                stopped_us=d["stopped_us"], gap_us=gap(), bytes=d["bytes"],
                streamed=d["uploaded_while_writing"], cpu=c, azcpu=az_, method=d["method"])


rss0 = vm("VmRSS")
res = {"local": [], "egress": []}
for i in range(runs):
    res["local"].append(local())
    res["egress"].append(egress())
hwm = vm("VmHWM")
L = min(res["local"], key=lambda r: r["s"])
E = min(res["egress"], key=lambda r: r["s"])
mib = lambda n: n / 1048576.0
print("### Egress: a zstd dump to Azurite vs to a local file (\`bench/egress.sh\`)\n")
print("%s; %d CPUs; target: bench/hbtarget, 32 threads, %d MiB of heap (HB_FILL=mixed); its full"
      % (time.strftime("%Y-%m-%d", time.gmtime()), len(os.sched_getaffinity(0)), heap))
print("core %.0f MiB, %.0f MiB as zstd. %d run(s) of each, interleaved, best counts. Azurite on a loopback"
      % (mib(L["core"]), mib(L["bytes"]), runs))
print("port, block_size %d MiB, parallel %d; spool, local file and Azurite's data on the same disk.\n"
      % (bs >> 20, par))
print("| | wall s | CPU s | stopped (job, ms) | stopped (target's gap, ms) | output MiB |")
print("|---|---:|---:|---:|---:|---:|")
print("| (a) \`procdiag dump --type Full --zstd -o FILE\` | %.2f | %.1f | %.1f | %.1f | %.0f |"
      % (L["s"], L["cpu"], L["stopped_us"] / 1e3, L["gap_us"] / 1e3, mib(L["bytes"])))
print("| (b) operation, \`compress=zstd&egressProvider=az\` | %.2f | %.1f + Azurite %.1f | %.1f | %.1f | %.0f |"
      % (E["s"], E["cpu"], E["azcpu"], E["stopped_us"] / 1e3, E["gap_us"] / 1e3, mib(E["bytes"])))
print("\n- **b/a = %.2f** (goal <= 1.2)." % (E["s"] / L["s"]))
print("- CPU: (b) needs %.1f CPU s against (a)'s %.1f: on %d CPUs it cannot take less than %.2f s"
      " (%.2fx (a)) however well it overlaps."
      % (E["cpu"] + E["azcpu"], L["cpu"], len(os.sched_getaffinity(0)),
         (E["cpu"] + E["azcpu"]) / len(os.sched_getaffinity(0)),
         (E["cpu"] + E["azcpu"]) / len(os.sched_getaffinity(0)) / L["s"]))
print("- Uploaded while the zstd stream was being written: %.0f of %.0f MiB (%.0f%%)."
      % (mib(E["streamed"]), mib(E["bytes"]), 100.0 * E["streamed"] / max(E["bytes"], 1)))
print("- Stops of every run, job's figure (ms), method: (a) %s; (b) %s."
      % (", ".join("%.1f %s" % (r["stopped_us"] / 1e3, r["method"]) for r in res["local"]),
         ", ".join("%.1f %s" % (r["stopped_us"] / 1e3, r["method"]) for r in res["egress"])))
print("- Responder: VmRSS %.0f MiB before, peak (VmHWM) %.0f MiB after; blocks in flight:"
      " (parallel + 2) x block_size = %.0f MiB." % (mib(rss0), mib(hwm), mib((par + 2) * bs)))
print("\nReproduce: \`bench/egress.sh\` in a built tree (HEAP_MIB=%d RUNS=%d BLOCK_MIB=%d PARALLEL=%d)."
      % (heap, runs, bs >> 20, par))
EOF
)
echo "$report"
[ -n "$OUT" ] && echo "$report" > "$OUT"
exit 0
