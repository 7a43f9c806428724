#!/usr/bin/env bash
# The installed-package stage of ./dev test (docs/OPERATIONS.md, "./dev test
# and the installed package"). Run from the top of a configured, built tree,
# as root, on Debian 12:
#
#   1. make dist -> scratch dir + packaging/debian -> dpkg-buildpackage -b
#      (make check runs inside unless DEB_BUILD_OPTIONS has nocheck)
#   2. apt-get install ./procdiag_*.deb; check what it installed
#   3. start it: systemd when it is pid 1, else the unit's ExecStart under
#      spawn-fcgi with the unit's socket, group, mode and capabilities
#   4. the system nginx (its nginx.conf, a test-only site on a free loopback
#      port that includes the installed snippet; never port 80)
#   5. the e2e tests with PD_E2E_TARGET=installed
#   6. stop everything, purge the package, check nothing is left
#
# Environment: JOBS (make -j), DEB_BUILD_OPTIONS (nocheck skips make check in
# the package build), PD_NGINX (the nginx binary, default /usr/sbin/nginx),
# PD_KEEP=1 keeps the scratch directory.
set -euo pipefail

ROOT=$(pwd)
JOBS=${JOBS:-2}
# (not NGINX in the environment: nginx itself reads that variable, as the
# sockets inherited in a binary upgrade, and would log [emerg] at each start)
NGINX=${PD_NGINX:-/usr/sbin/nginx}
export -n NGINX
E2E_FILES=(test_list test_detail test_kill test_auth test_errors test_monitor test_dump test_hostile_env)

say() { printf 'package-test: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs the package)"
[ -f config.status ] || die "run from the top of a configured tree"
t0=$(date +%s)

if dpkg-query -W -f='${Status}' procdiag 2>/dev/null | grep -q 'ok installed'; then
	die "procdiag is already installed here; not touching it (apt-get purge procdiag first)"
fi
if [ -e /etc/procdiag ] || [ -e /run/procdiag ]; then
	die "/etc/procdiag or /run/procdiag exists; not touching it (left over? remove it first)"
fi

version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' config.h)
[ -n "$version" ] || die "no PACKAGE_VERSION in config.h"
mkdir -p _test
work=$(mktemp -d "$ROOT/_test/package.XXXXXX")
chmod 755 "$work"
src="$work/procdiag-$version"
nginx_pid='' pd_pid='' installed='' systemd_mode='' made_run='' journal_pid=''

cleanup() {
	local rc=$? left=''
	trap - EXIT INT TERM
	if [ -n "$nginx_pid" ]; then
		kill -TERM "$nginx_pid" 2>/dev/null || true
		wait "$nginx_pid" 2>/dev/null || true
	fi
	[ -n "$journal_pid" ] && kill "$journal_pid" 2>/dev/null
	if [ -n "$systemd_mode" ]; then
		systemctl stop procdiag.service procdiag.socket 2>/dev/null || true
	elif [ -n "$pd_pid" ]; then
		kill -TERM "$pd_pid" 2>/dev/null || true
		wait "$pd_pid" 2>/dev/null || true
	fi
	if [ -n "$installed" ]; then
		say "apt-get purge procdiag"
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q procdiag > "$work/purge.log" 2>&1 ||
			{ cat "$work/purge.log" >&2; rc=1; }
	fi
	[ -n "$made_run" ] && rm -rf /run/procdiag
	for f in /usr/bin/procdiag /etc/procdiag /etc/nginx/snippets/procdiag.conf \
		/lib/systemd/system/procdiag.socket /lib/systemd/system/procdiag.service \
		/usr/share/doc/procdiag /run/procdiag \
		/etc/systemd/system/sockets.target.wants/procdiag.socket; do
		[ -e "$f" ] || [ -L "$f" ] && left+=" $f"
	done
	if [ -n "$installed" ] && [ -n "$left" ]; then
		say "FAILED: left behind after purge:$left"
		rc=1
	fi
	if [ "$rc" -eq 0 ] && [ -z "${PD_KEEP:-}" ]; then
		rm -rf "$work"
		rmdir "$ROOT/_test" 2>/dev/null || true
	else
		say "kept $work for inspection"
	fi
	say "$([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0)) s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# -- 1. build the .deb from the dist tarball ----------------------------------
say "make dist"
make -s dist-gzip > "$work/dist.log" 2>&1 || { cat "$work/dist.log" >&2; die "make dist"; }
tar -C "$work" -xzf "procdiag-$version.tar.gz"
mv "procdiag-$version.tar.gz" "$work/procdiag_$version.orig.tar.gz"
cp -a "$src/packaging/debian" "$src/debian"
# The egress tests' Azurite comes from npm, installed by ./dev into the
# checkout; the dist tree has only its package.json and lock.
if [ -d "$ROOT/tests/azurite/node_modules" ]; then
	ln -s "$ROOT/tests/azurite/node_modules" "$src/tests/azurite/node_modules"
fi
profiles=()
case " ${DEB_BUILD_OPTIONS:-} " in *" nocheck "*) profiles=(-Pnocheck) ;; esac
say "dpkg-buildpackage -us -uc -b ${profiles[*]} (DEB_BUILD_OPTIONS='${DEB_BUILD_OPTIONS:-}'; log: $work/build.log)"
tb=$(date +%s)
if ! (cd "$src" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$JOBS" \
	dpkg-buildpackage -us -uc -b "${profiles[@]}") > "$work/build.log" 2>&1; then
	tail -n 60 "$work/build.log" >&2
	die "dpkg-buildpackage (whole log: $work/build.log)"
fi
grep -E '^# (TOTAL|PASS|FAIL|ERROR|SKIP)' "$work/build.log" | sed 's/^/package-test: make check in the build: /' >&2 || true
arch=$(dpkg --print-architecture)
deb="$work/procdiag_${version}-1_${arch}.deb"
[ -f "$deb" ] || deb=$(ls "$work"/procdiag_*.deb | head -n 1)
say "built $(basename "$deb") in $(($(date +%s) - tb)) s"
if command -v lintian > /dev/null 2>&1; then
	lintian --info "$deb" 2>&1 | sed 's/^/package-test: lintian: /' >&2 || true
fi

# -- 2. install it and check what it installed ------------------------------
say "apt-get install $(basename "$deb")"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" \
	> "$work/install.log" 2>&1 || { cat "$work/install.log" >&2; die "apt-get install"; }
grep '^procdiag:' "$work/install.log" | sed 's/^/package-test: postinst said: /' >&2 || true

check() { "$@" || die "check failed: $*"; }
mode_of() { stat -c '%a %U:%G' "$1"; }
unitdir=/lib/systemd/system
check test -x /usr/bin/procdiag
check cmp -s "$ROOT/nginx/procdiag.conf" /etc/nginx/snippets/procdiag.conf
check cmp -s "$ROOT/packaging/procdiag.conf.example" /etc/procdiag/procdiag.conf
conffiles=$(dpkg-query -W -f='${Conffiles}' procdiag)
for f in /etc/procdiag/procdiag.conf /etc/nginx/snippets/procdiag.conf; do
	grep -q " $f " <<< "$conffiles " || die "$f is not a conffile: $conffiles"
done
[ "$(mode_of /etc/procdiag/initial-key)" = "600 root:root" ] ||
	die "initial-key is $(mode_of /etc/procdiag/initial-key), not 600 root:root"
[ "$(mode_of /etc/procdiag/keys.conf)" = "600 root:root" ] ||
	die "keys.conf is $(mode_of /etc/procdiag/keys.conf), not 600 root:root"
key=$(cat /etc/procdiag/initial-key)
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
grep -qx "api_key_sha256 = $hash" /etc/procdiag/keys.conf ||
	die "keys.conf does not hold the hash of initial-key"
check grep -qx 'SocketGroup=www-data' "$unitdir/procdiag.socket"
check grep -qx 'CapabilityBoundingSet=CAP_SYS_PTRACE CAP_KILL CAP_DAC_READ_SEARCH' "$unitdir/procdiag.service"
check test -e /usr/share/doc/procdiag/OPERATIONS.md
if command -v systemd-analyze > /dev/null 2>&1; then
	systemd-analyze verify "$unitdir/procdiag.socket" "$unitdir/procdiag.service" \
		> "$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; die "systemd-analyze verify"; }
fi

# -- 3. start it --------------------------------------------------------------
sock=$(sed -n 's/^ListenStream=//p' "$unitdir/procdiag.socket")
group=$(sed -n 's/^SocketGroup=//p' "$unitdir/procdiag.socket")
smode=$(sed -n 's/^SocketMode=//p' "$unitdir/procdiag.socket")
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unitdir/procdiag.service")
read -r -a execstart <<< "$(sed -n 's/^ExecStart=//p' "$unitdir/procdiag.service")"
pdlog="$work/procdiag.log"
if [ -d /run/systemd/system ]; then
	say "systemd is pid 1: systemctl start procdiag.socket"
	systemd_mode=1
	systemctl start procdiag.socket
	check test -S "$sock"
	# The first connection starts the service.
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' "$sock"
	for _ in $(seq 50); do
		pd_pid=$(systemctl show -p MainPID --value procdiag.service)
		[ "${pd_pid:-0}" != 0 ] && break
		sleep 0.1
	done
	[ "${pd_pid:-0}" != 0 ] || die "procdiag.service did not start: $(systemctl status procdiag.service 2>&1 | tail -n 20)"
	journalctl -f -o cat -u procdiag.service > "$pdlog" 2>&1 &
	journal_pid=$!
else
	say "systemd is not pid 1 ($(ps -o comm= -p 1)): the unit's ExecStart under spawn-fcgi"
	command -v spawn-fcgi > /dev/null || die "no spawn-fcgi (./dev installs it)"
	# The unit's socket: its path, group and mode; DirectoryMode=0755.
	install -d -m 0755 "$(dirname "$sock")"
	made_run=1
	# The unit's capabilities as the bounding set (root's uid: the permitted
	# set after exec is exactly that), and NoNewPrivileges.
	bset=-all
	for c in $caps; do
		c=${c#CAP_}
		bset+=",+${c,,}"
	done
	spawn-fcgi -n -s "$sock" -M "$smode" -G "$group" -- \
		"$(command -v setpriv)" --bounding-set="$bset" --no-new-privs -- "${execstart[@]}" \
		< /dev/null > "$pdlog" 2>&1 &
	pd_pid=$!
	for _ in $(seq 50); do
		grep -q 'serving' "$pdlog" 2>/dev/null && break
		kill -0 "$pd_pid" 2>/dev/null || die "procdiag exited: $(cat "$pdlog")"
		sleep 0.1
	done
	grep -q 'serving' "$pdlog" || die "procdiag did not start: $(cat "$pdlog")"
	bnd=$(sed -n 's/^CapBnd:\t//p' "/proc/$pd_pid/status")
	# CAP_DAC_READ_SEARCH (2), CAP_KILL (5), CAP_SYS_PTRACE (19)
	[ "$bnd" = 0000000000080024 ] ||
		die "responder's CapBnd is $bnd, not CAP_DAC_READ_SEARCH|CAP_KILL|CAP_SYS_PTRACE (80024)"
fi
[ "$(stat -c '%a %G' "$sock")" = "$smode $group" ] || [ "$(stat -c '0%a %G' "$sock")" = "$smode $group" ] ||
	die "$sock is $(stat -c '%a %U:%G' "$sock"), the unit says $smode, group $group"
say "procdiag runs as pid $pd_pid ($(tr '\0' ' ' < "/proc/$pd_pid/cmdline"))"

# -- 4. the system nginx on a free loopback port -------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
cat > "$work/procdiag-e2e.site" <<EOF
# test-only site (packaging/package-test.sh): the installed snippet, plus
# procdiag's index at / and 404 elsewhere, as nginx/dev.conf.in has them
server {
    listen 127.0.0.1:$port;
    server_name localhost;
    include /etc/nginx/snippets/procdiag.conf;
    location = / {
        include fastcgi_params;
        client_max_body_size 1k;
        fastcgi_pass unix:$sock;
    }
    location / {
        return 404;
    }
}
EOF
grep -q '^[[:space:]]*include /etc/nginx/sites-enabled/\*;' /etc/nginx/nginx.conf ||
	die "/etc/nginx/nginx.conf has no 'include /etc/nginx/sites-enabled/*;' to replace"
# nginx resolves relative includes (the snippet's `include fastcgi_params`)
# against the directory of its main file: give it one that mirrors /etc/nginx.
mkdir "$work/etc-nginx"
for e in /etc/nginx/*; do
	[ "$e" = /etc/nginx/nginx.conf ] || ln -s "$e" "$work/etc-nginx/"
done
sed -e "s|^\([[:space:]]*\)include /etc/nginx/sites-enabled/\*;|\1include $work/procdiag-e2e.site;|" \
	-e "s|^\([[:space:]]*\)pid .*;|\1pid $work/nginx.pid;|" \
	-e "s|/var/log/nginx/|$work/nginx-|g" \
	/etc/nginx/nginx.conf > "$work/etc-nginx/nginx.conf"
"$NGINX" -t -q -e "$work/nginx-error.log" -c "$work/etc-nginx/nginx.conf" 2> "$work/nginx-t.log" ||
	{ cat "$work/nginx-t.log" >&2; die "nginx -t"; }
"$NGINX" -e "$work/nginx-error.log" -c "$work/etc-nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for _ in $(seq 50); do
	curl -s -o /dev/null --max-time 2 "$base/" && break
	kill -0 "$nginx_pid" 2>/dev/null || die "nginx did not start: $(tail -n 5 "$work/nginx-error.log")"
	sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base/api/processes")
[ "$code" = 200 ] || die "GET $base/api/processes through nginx: $code; $(tail -n 5 "$work/nginx-error.log")"
say "nginx (system config, user $(ps -o user= --ppid "$nginx_pid" | sort -u | tr '\n' ' ')) on $base"

# -- 5. the e2e tests against it --------------------------------------------
# A file counts only when it ran its whole plan: present, a "1..N" line, N
# results, and exit status 0 (harness.main exits 1 on any "not ok"). One
# that is missing, dies early or exits non-zero fails the stage.
fails=0 total=0 skipped=0
for name in "${E2E_FILES[@]}"; do
	f="$ROOT/tests/e2e/$name.py"
	if [ ! -f "$f" ]; then
		say "$name: FAILED: $f is missing"
		fails=$((fails + 1))
		continue
	fi
	out="$work/$name.tap"
	rc=0
	env -u PYTHONOPTIMIZE PD_E2E_TARGET=installed PD_E2E_BASE="$base" PD_E2E_KEY="$key" \
		PD_E2E_PID="$pd_pid" PD_E2E_LOG="$pdlog" PD_E2E_NGINX_LOG="$work/nginx-error.log" \
		PD_PROCDIAG=/usr/bin/procdiag PD_BUILDDIR="$ROOT" PD_SRCDIR="$ROOT" PD_NGINX="$NGINX" \
		PYTHONDONTWRITEBYTECODE=1 python3 "$f" > "$out" 2>&1 || rc=$?
	n=$(grep -cE '^(not )?ok ' "$out" || true)
	bad=$(grep -cE '^not ok ' "$out" || true)
	skip=$(grep -cE '^ok .*# SKIP' "$out" || true)
	plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$out" | head -n 1)
	why=''
	if [ -z "$plan" ]; then
		why="no plan line"
	elif [ "$plan" -ne "$n" ]; then
		why="ran $n of its $plan tests"
	fi
	[ "$bad" -eq 0 ] || why="${why:+$why, }$bad failed"
	[ "$rc" -eq 0 ] || why="${why:+$why, }exit status $rc"
	total=$((total + n))
	skipped=$((skipped + skip))
	if [ -n "$why" ]; then
		cat "$out" >&2
		say "$name: FAILED: $why"
		fails=$((fails + 1))
	else
		say "$name: $((n - skip)) passed, $skip skipped"
	fi
done
kill -0 "$pd_pid" 2>/dev/null || die "the responder (pid $pd_pid) is gone"
[ "$fails" -eq 0 ] || die "$fails of ${#E2E_FILES[@]} e2e files did not pass against the installed package"
say "e2e against the installed package: $total tests, $skipped skipped, none failed"
