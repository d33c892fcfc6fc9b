#!/usr/bin/env bash
# build-deb.sh SOURCE_DIR BUILD_DIR [OUT_DIR]: the Debian package strata_VERSION_ARCH.deb, made
# from a built tree with dpkg-deb (no debhelper, no network). `make deb` runs it; OUT_DIR defaults
# to BUILD_DIR/deb. Prints the path of the .deb it wrote.
#
# The files are CMake's install rules (`cmake --install BUILD --prefix /usr` into a staging
# root: strata, libstrata.so and .a, the headers, strata.pc, strata.1), stripped as dh_strip
# does, plus what lives here in deploy/: the systemd unit, /etc/strata/strata.yaml and
# /etc/default/strata (conffiles), the maintainer scripts, copyright and changelog. Depends is
# computed by dpkg-shlibdeps from the ELF files. The library goes to /usr/lib (the build tree's
# libdir), which the dynamic linker and pkg-config search on Debian.
set -euo pipefail

src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
out=${3:-$build/deb}
here=$src/deploy

fail() {
    echo "build-deb: $*" >&2
    exit 1
}

[ -x "$build/strata" ] || fail "no $build/strata: build first (make build)"
version=$("$build/strata" --version | awk '{print $2}')
[ -n "$version" ] || fail "strata --version printed no version"
arch=$(dpkg --print-architecture)
# The changelog's newest entry names the version packaged: one bump of CMakeLists.txt's
# version without a changelog entry stops here instead of shipping a package that lies.
logversion=$(sed -n '1s/^strata (\([^)]*\)).*/\1/p' "$here/debian/changelog")
[ "$logversion" = "$version" ] ||
    fail "deploy/debian/changelog's newest entry is $logversion, strata is $version: add an entry"

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
umask 022

# 1. CMake's install rules, staged
DESTDIR=$root cmake --install "$build" --prefix /usr >"$work/install.log" 2>&1 ||
    fail "cmake --install failed: $(tail -n 20 "$work/install.log")"
[ -x "$root/usr/bin/strata" ] || fail "cmake --install staged no usr/bin/strata"
lib=$(cd "$root/usr" && find . -name 'libstrata.so.*.*' -print -quit)
[ -n "$lib" ] || fail "cmake --install staged no libstrata.so.X.Y.Z"
lib=/usr/${lib#./}

# 2. stripped as dh_strip does (debug symbols are not shipped; the build tree keeps them)
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/strata"
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root$lib"
find "$root/usr" -name 'libstrata.a' -exec strip --strip-debug --remove-section=.comment \
    --remove-section=.note --enable-deterministic-archives {} +

# 3. the manual page compressed, the documentation Debian wants
man=$root/usr/share/man/man1/strata.1
[ -f "$man" ] || fail "cmake --install staged no strata.1"
gzip -9n "$man"
doc=$root/usr/share/doc/strata
install -d "$doc"
install -m 644 "$here/debian/copyright" "$doc/copyright"
gzip -9nc "$here/debian/changelog" >"$doc/changelog.gz"
chmod 644 "$doc/changelog.gz"
install -D -m 644 "$here/debian/lintian-overrides" "$root/usr/share/lintian/overrides/strata"

# 4. the service and its configuration
install -D -m 644 "$here/systemd/strata.service" "$root/lib/systemd/system/strata.service"
install -D -m 644 "$here/etc/strata.yaml" "$root/etc/strata/strata.yaml"
# the environment file may hold tokens and Redis' password: root only (systemd reads it as root)
install -D -m 600 "$here/etc/default-strata" "$root/etc/default/strata"

# 5. the control files
install -d -m 755 "$root/DEBIAN"
for s in postinst prerm postrm; do
    install -m 755 "$here/debian/$s" "$root/DEBIAN/$s"
done
printf '/etc/default/strata\n/etc/strata/strata.yaml\n' >"$root/DEBIAN/conffiles"
# libstrata.so.0 is in this package: ldconfig after install, and a shlibs entry for programs
# built against it
printf 'activate-noawait ldconfig\n' >"$root/DEBIAN/triggers"
soname=$(objdump -p "$root$lib" | awk '$1 == "SONAME" {print $2}')
sover=${soname##*.so.}
printf 'libstrata %s strata (>= %s)\n' "$sover" "$version" >"$root/DEBIAN/shlibs"

# Depends from the ELF files: dpkg-shlibdeps wants a debian/control to run in
mkdir -p "$work/pkg/debian"
printf 'Source: strata\n\nPackage: strata\nArchitecture: any\n' >"$work/pkg/debian/control"
depends=$(cd "$work/pkg" && dpkg-shlibdeps -O -e"$root/usr/bin/strata" -e"$root$lib" 2>"$work/shlibdeps.log") ||
    fail "dpkg-shlibdeps failed: $(cat "$work/shlibdeps.log")"
depends=${depends#shlibs:Depends=}
[ -n "$depends" ] || fail "dpkg-shlibdeps found no dependency"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@DEPENDS@/$depends/" "$here/debian/control.in" >"$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/triggers" \
    "$root/DEBIAN/shlibs" "$root/DEBIAN/md5sums"

# 6. the archive: files owned by root whoever builds it
mkdir -p "$out"
deb=$out/strata_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >"$work/dpkg-deb.log" 2>&1 ||
    fail "dpkg-deb failed: $(cat "$work/dpkg-deb.log")"
echo "$deb"
