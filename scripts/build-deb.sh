#!/usr/bin/env bash
# Builds the Debian package, mailgate_VERSION_amd64.deb, and checks it with
# lintian. A Release build (no sanitizers, no tests) in build-deb/ with
# Debian's hardening flags from dpkg-buildflags, packed by CPack from the
# install rules in cmake/packaging.cmake.
#   scripts/build-deb.sh            -> build-deb/mailgate_VERSION_amd64.deb
#   MAILGATE_DEB_BUILD_DIR=DIR      another build directory
#   JOBS=N                          parallel compile jobs (default 2)
#   scripts/build-deb.sh --no-lintian   skip lintian (docker/Dockerfile's
#                                   build stage; the system test runs it)
# Exit status: 0 package built and lintian clean (no error or warning tag).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MAILGATE_DEB_BUILD_DIR:-$root/build-deb}
cd "$root"
lint=1
[ "${1:-}" = "--no-lintian" ] && lint=0

tools=(cmake cpack dpkg-buildflags dpkg-shlibdeps scdoc)
[ $lint -eq 1 ] && tools+=(lintian)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "build-deb: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done

# Debian's flags (-O2, stack protector, _FORTIFY_SOURCE, relro) plus bindnow.
# No -g: the binary is stripped and there is no -dbgsym package.
eval "$(dpkg-buildflags --export=sh)"
cxxflags="${CXXFLAGS//-g /} $CPPFLAGS"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-DNDEBUG" \
  -DCMAKE_CXX_FLAGS="$cxxflags" -DCMAKE_EXE_LINKER_FLAGS="$LDFLAGS -Wl,-z,now" \
  -DCMAKE_INSTALL_PREFIX=/usr -DMAILGATE_TESTS=OFF -DMAILGATE_SANITIZE=OFF >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target mailgate mailgate_man
rm -f "$build"/mailgate_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/mailgate_*_*.deb)
echo "build-deb: $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
[ $lint -eq 1 ] || exit 0
# Warnings fail like errors; info tags are shown for the record.
lintian --info --display-info --fail-on error,warning "$deb"
echo "build-deb: lintian clean"
