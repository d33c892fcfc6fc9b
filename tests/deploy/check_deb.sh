#!/usr/bin/env bash
# check_deb.sh SOURCE_DIR BUILD_DIR: the Debian package built from this tree installs into a fresh
# root and the installed strata starts from the installed files (docs/operations.md, "The Debian
# package and systemd").
#
# No container and no chroot: dpkg installs into an empty directory with --root (maintainer
# scripts run outside it, --force-script-chrootless, and leave the running system alone because
# dpkg sets DPKG_ROOT). That root's dpkg status is a copy of this machine's, so dpkg resolves the
# package's Depends against what is installed here, as `apt install ./strata_*.deb` would; a root
# with an empty status must refuse it. Then:
#   - the control file: Depends names the package of every library strata needs (dpkg-shlibdeps),
#     conffiles are registered, every file CMake installs is there;
#   - the unit: `systemd-analyze verify` prints nothing (warnings count), `systemd-analyze
#     security --offline` rates it at most 2.0 (OK);
#   - the installed strata, started with the installed unit's ExecStart and EnvironmentFile (paths
#     moved into the root, the address moved to a free port): /readyz answers 200, the installed
#     /etc/strata/strata.yaml is loaded, `strata cache health` (the container's HEALTHCHECK)
#     passes, SIGHUP (ExecReload) reloads the file, SIGTERM drains and exits 0;
#   - libstrata: examples/l1.c builds with the installed strata.pc and runs on the installed .so;
#   - remove keeps the conffiles, purge removes them;
#   - lintian, when installed, reports no error and no warning that deploy/debian/lintian-overrides
#     does not explain.
# Exit 77 (skipped) when not root: dpkg must own the files it installs.
set -euo pipefail

src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "check_deb: skipped: dpkg --root needs root (CI runs as root)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-deb-check.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "check_deb: $*" >&2
    if [ -f "$tmp/serve.log" ]; then
        echo "--- strata serve's log:" >&2
        cat "$tmp/serve.log" >&2
    fi
    exit 1
}

# 1. the package
deb=$("$src/deploy/debian/build-deb.sh" "$src" "$build" "$tmp/out") || fail "build-deb.sh failed"
version=$("$build/strata" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
[ "$(basename "$deb")" = "strata_${version}_${arch}.deb" ] || fail "unexpected name $deb"

# Depends: the package of each library the binary and libstrata need
depends=$(dpkg-deb -f "$deb" Depends)
[ -n "$depends" ] || fail "no Depends in $(dpkg-deb -f "$deb")"
for elf in "$build/strata" "$build/libstrata.so"; do
    # the libraries it names itself (ldd also lists theirs, which their packages depend on)
    needed=$(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    resolved=$(ldd "$elf")
    for so in $needed; do
        lib=$(awk -v so="$so" '$1 == so && $2 == "=>" {print $3}' <<<"$resolved")
        [ -n "$lib" ] || lib=$(awk -v so="$so" 'index($1, "/") && $1 ~ so {print $1}' <<<"$resolved")
        [ -n "$lib" ] || fail "ldd does not resolve $so for $elf"
        real=$(readlink -f "$lib")
        owner=$(dpkg -S "$real" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true)
        owner=${owner%%:*}
        [ -n "$owner" ] || fail "no Debian package owns $lib, which $elf needs"
        grep -Eq "(^|, )$owner( |,|$)" <<<"$depends" ||
            fail "Depends does not name $owner ($lib, needed by $elf): $depends"
    done
done

# 2. an empty status: dpkg refuses it for its dependencies
mkroot() {
    mkdir -p "$1/var/lib/dpkg/info" "$1/var/lib/dpkg/updates" "$1/var/lib/dpkg/triggers"
    touch "$1/var/lib/dpkg/available" "$1/var/lib/dpkg/status"
}
mkroot "$tmp/bare"
if dpkg --root="$tmp/bare" --force-script-chrootless -i "$deb" >"$tmp/bare.log" 2>&1; then
    fail "a root with no libraries installed it: dependencies are not declared"
fi
grep -q 'dependency problems' "$tmp/bare.log" || fail "unexpected refusal: $(cat "$tmp/bare.log")"

# 3. the fresh root, with this machine's status (and empty file lists: dpkg only reads them)
root=$tmp/root
mkroot "$root"
cp /var/lib/dpkg/status "$root/var/lib/dpkg/status"
dpkg-query -W -f='${binary:Package}\n' | while read -r p; do
    : >"$root/var/lib/dpkg/info/$p.list"
done
dpkg --root="$root" --force-script-chrootless -i "$deb" >"$tmp/install.log" 2>&1 ||
    fail "dpkg -i into $root failed: $(cat "$tmp/install.log")"
status=$(dpkg-query --root="$root" -W -f='${Status} ${Version}' strata)
[ "$status" = "install ok installed $version" ] || fail "strata is '$status' in the root"
for f in usr/bin/strata usr/lib/libstrata.so.0 usr/lib/libstrata.so usr/lib/libstrata.a \
    usr/include/strata/strata.h usr/include/strata/version.h usr/lib/pkgconfig/strata.pc \
    usr/share/man/man1/strata.1.gz lib/systemd/system/strata.service etc/strata/strata.yaml \
    etc/default/strata usr/share/doc/strata/copyright; do
    [ -e "$root/$f" ] || fail "/$f is not installed"
    dpkg --root="$root" -S "/$f" >/dev/null 2>&1 || fail "/$f is not registered to strata"
done
grep -qx 'prefix=/usr' "$root/usr/lib/pkgconfig/strata.pc" || fail "strata.pc does not say prefix=/usr"
[ "$(stat -c %a "$root/etc/default/strata")" = 600 ] || fail "/etc/default/strata is not 0600"
conffiles=$(dpkg-query --root="$root" -W -f='${Conffiles}' strata)
for f in /etc/strata/strata.yaml /etc/default/strata; do
    grep -q " $f " <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
"$root/usr/bin/strata" --version | grep -qx "strata $version" || fail "the installed strata --version"
man -l "$root/usr/share/man/man1/strata.1.gz" >/dev/null 2>&1 ||
    zcat "$root/usr/share/man/man1/strata.1.gz" | grep -q '^\.TH STRATA 1' ||
    fail "strata.1.gz is not a manual page"

# 4. the unit as installed; verify's warnings (an unknown key, a bad system call group) fail too
unit=$root/lib/systemd/system/strata.service
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir "$tmp/unit"
    # ExecStart must exist: the installed binary, at the root's path
    sed "s|^ExecStart=/usr/bin/strata|ExecStart=$root/usr/bin/strata|" "$unit" >"$tmp/unit/strata.service"
    MANPATH=$root/usr/share/man systemd-analyze verify "$tmp/unit/strata.service" >"$tmp/verify.log" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$tmp/verify.log")"
    [ ! -s "$tmp/verify.log" ] || fail "systemd-analyze verify warns: $(cat "$tmp/verify.log")"
    systemd-analyze security --offline=true --threshold=20 "$tmp/unit/strata.service" \
        >"$tmp/security.log" 2>&1 ||
        fail "systemd-analyze security rates the unit above 2.0: $(tail -n 3 "$tmp/security.log")"
else
    fail "systemd-analyze is not installed (scripts/deps.sh installs systemd)"
fi

# 5. the installed strata, as the unit starts it
execstart=$(sed -n 's/^ExecStart=//p' "$unit")
envfile=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
[ "$execstart" = "/usr/bin/strata serve" ] || fail "unexpected ExecStart=$execstart"
[ "$envfile" = /etc/default/strata ] || fail "unexpected EnvironmentFile=$envfile"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || fail "ExecReload does not send SIGHUP"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The environment file's assignments (systemd's syntax here is plain KEY=VALUE lines), with /etc
# paths moved into the root and the address moved to the free port.
env_args=()
while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    [[ $line =~ ^[A-Z_][A-Z0-9_]*= ]] || fail "$envfile: not KEY=VALUE: $line"
    env_args+=("${line//=\/etc\//=$root/etc/}")
done <"$root$envfile"
grep -q "^STRATA_CONFIG=$root/etc/strata/strata.yaml$" <(printf '%s\n' "${env_args[@]}") ||
    fail "$envfile does not point STRATA_CONFIG at /etc/strata/strata.yaml"
env -i PATH=/usr/bin:/bin "${env_args[@]}" STRATA_LISTEN="127.0.0.1:$port" \
    "$root${execstart%% *}" ${execstart#* } >"$tmp/serve.log" 2>&1 &
pid=$!
url=http://127.0.0.1:$port
ready=
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || fail "the installed strata exited at start"
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; then
        ready=1
        break
    fi
    sleep 0.1
done
[ -n "$ready" ] || fail "/readyz did not answer 200 within 10 s"
grep -q 'proxy: 1 route, 1 origin, 0 invalidation rules (from STRATA_CONFIG)' "$tmp/serve.log" ||
    fail "the default configuration file was not loaded"
STRATA_URL=$url "$root/usr/bin/strata" cache health >"$tmp/health.log" 2>&1 ||
    fail "strata cache health failed: $(cat "$tmp/health.log")"
kill -HUP "$pid"
for _ in $(seq 1 100); do
    grep -q 'SIGHUP: proxy: 1 routes, 1 origins' "$tmp/serve.log" && break
    sleep 0.1
done
grep -q 'SIGHUP: proxy: 1 routes, 1 origins' "$tmp/serve.log" || fail "SIGHUP did not reload the file"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "SIGTERM: exit code $rc, expected 0"
grep -q 'info  stopped' "$tmp/serve.log" || fail "no 'stopped' line after SIGTERM"

# 6. libstrata as installed: examples/l1.c against the root's strata.pc and libstrata.so
flags=$(PKG_CONFIG_PATH=$root/usr/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root pkg-config --cflags --libs strata) ||
    fail "pkg-config does not read the installed strata.pc"
# shellcheck disable=SC2086 # the flags are words
cc -o "$tmp/l1" "$src/examples/l1.c" $flags || fail "examples/l1.c does not build with: $flags"
LD_LIBRARY_PATH=$root/usr/lib "$tmp/l1" | grep -q '^hit: 42 is the answer' ||
    fail "examples/l1.c did not run on the installed libstrata.so"

# 7. remove keeps the conffiles, purge removes them
dpkg --root="$root" --force-script-chrootless -r strata >"$tmp/remove.log" 2>&1 ||
    fail "dpkg -r failed: $(cat "$tmp/remove.log")"
[ ! -e "$root/usr/bin/strata" ] || fail "dpkg -r left /usr/bin/strata"
[ -e "$root/etc/strata/strata.yaml" ] || fail "dpkg -r removed a conffile"
dpkg --root="$root" --force-script-chrootless -P strata >"$tmp/purge.log" 2>&1 ||
    fail "dpkg -P failed: $(cat "$tmp/purge.log")"
[ ! -e "$root/etc/strata/strata.yaml" ] && [ ! -e "$root/etc/default/strata" ] ||
    fail "dpkg -P left the conffiles"

# 8. lintian (scripts/deps.sh installs it)
if command -v lintian >/dev/null 2>&1; then
    # (its own temporary files in ours: it leaves some behind)
    TMPDIR=$tmp lintian --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1 ||
        fail "lintian: $(cat "$tmp/lintian.log")"
else
    fail "lintian is not installed (scripts/deps.sh installs it)"
fi

echo "check_deb: $(basename "$deb"): built, installed in a fresh root, started, reloaded, stopped, removed, purged; lintian clean"
