#!/usr/bin/env bash
# The slow system tests, outside ctest and scripts/test.sh (they download a
# Debian root once, compile a Release build and boot a container):
#   1. scripts/build-deb.sh: the .deb, lintian clean;
#   2. the .deb in a booted Debian 12: debootstrap a root, boot it with
#      systemd-nspawn --boot (real systemd: Type=notify, DynamicUser=,
#      LoadCredential=, the watchdog and the resource limits apply), install,
#      mail with swaks, dry-run ticket, reload, upgrade, stop, journal,
#      remove, purge (tests/system/deb_in_booted_debian.sh);
#   3. scripts/build-image.sh: the runtime image (skip with --no-image).
# Usage, as root on Debian 12: scripts/system-test.sh [--no-image]
# The pristine root is cached in $MAILGATE_SYSTEM_TEST_CACHE (default
# /var/cache/mailgate-system-test/bookworm-root, ~340 MB): the first run
# downloads ~100 MB from deb.debian.org, later runs copy it (seconds). Delete
# the directory to refresh it.
# Exit status: 0 all passed; 1 a check failed; 77 skipped because the
# container could not boot here (the reason is printed) — never a silent pass.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
image=1
[ "${1:-}" = "--no-image" ] && image=0

cache=${MAILGATE_SYSTEM_TEST_CACHE:-/var/cache/mailgate-system-test}
pristine=$cache/bookworm-root
# Runtime libraries of the package (and of its future versions: gumbo, RE2)
# are in the root, so the container needs no network: dpkg -i resolves
# against what is installed, and a missing dependency fails the test.
include=systemd,systemd-sysv,dbus,swaks,curl,ca-certificates,libssl3,libyaml-cpp0.7,libsqlite3-0,libboost-system1.74.0,libgumbo1,libre2-9,man-db,procps
timeout_s=${MAILGATE_SYSTEM_TEST_TIMEOUT:-600}

skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
command -v debootstrap >/dev/null || skip "debootstrap not installed (apt-get install debootstrap)"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn not installed (apt-get install systemd-container)"

echo "== 1. build the .deb and run lintian"
bash scripts/build-deb.sh
deb=$(ls "${MAILGATE_DEB_BUILD_DIR:-$root/build-deb}"/mailgate_*_amd64.deb)

echo "== 2. the .deb in a booted Debian 12"
mkdir -p "$cache"
if [ ! -f "$pristine/.mailgate-include" ] || [ "$(cat "$pristine/.mailgate-include")" != "$include" ]; then
  echo "debootstrap bookworm into $pristine (once; cached)"
  rm -rf "$pristine" "$pristine.tmp"
  debootstrap --variant=minbase --include="$include" bookworm "$pristine.tmp" http://deb.debian.org/debian \
    > "$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log"; echo "FAIL: debootstrap"; exit 1; }
  echo "$include" > "$pristine.tmp/.mailgate-include"
  mv "$pristine.tmp" "$pristine"
fi

run=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$run"' EXIT
cp -a "$pristine" "$run/root"
machine=$run/root
# The upgrade: the same package one version higher.
version=$(dpkg-deb -f "$deb" Version)
dpkg-deb -R "$deb" "$run/upgrade"
sed -i "s/^Version: .*/Version: $version+systemtest1/" "$run/upgrade/DEBIAN/control"
dpkg-deb -b --root-owner-group "$run/upgrade" "$machine/root/mailgate-upgrade.deb" >/dev/null
cp "$deb" "$machine/root/mailgate.deb"
install -m 0755 tests/system/deb_in_booted_debian.sh "$machine/root/deb_in_booted_debian.sh"
echo mailgate-test > "$machine/etc/hostname"
cat > "$machine/etc/systemd/system/mailgate-system-test.service" <<'UNIT'
[Unit]
Description=mailgate system test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/deb_in_booted_debian.sh /root/mailgate.deb /root/mailgate-upgrade.deb
StandardOutput=journal+console
[Install]
WantedBy=default.target
UNIT
# After=multi-user.target with WantedBy=default.target (= multi-user): it
# starts once the system is up, like an admin logging in.
ln -s /etc/systemd/system/mailgate-system-test.service "$machine/etc/systemd/system/multi-user.target.wants/mailgate-system-test.service"

# --private-network: the container's own loopback, so port 2525 and 9465
# inside never meet the host's. --register=no --keep-unit: the host need
# not run systemd/machined.
set +e
timeout "$timeout_s" systemd-nspawn --quiet --boot --directory="$machine" --machine=mailgate-test \
  --private-network --register=no --keep-unit --console=pipe < /dev/null > "$run/console.log" 2>&1
nspawn_rc=$?
set -e
if [ ! -f "$machine/root/system-test.started" ]; then
  tail -30 "$run/console.log"
  skip "systemd-nspawn --boot did not boot the container here (exit $nspawn_rc); see the console above"
fi
cat "$machine/root/system-test.result"
echo "-- journalctl -u mailgate (in the container)"
cat "$machine/root/mailgate.journal" 2>/dev/null || true
if ! grep -q '^DONE pass$' "$machine/root/system-test.result"; then
  [ $nspawn_rc -eq 124 ] && echo "FAIL: the container did not finish within ${timeout_s}s"
  echo "FAIL: the .deb in a booted Debian 12"
  exit 1
fi
echo "PASS: the .deb in a booted Debian 12"

if [ $image -eq 1 ]; then
  echo "== 3. the runtime image"
  MAILGATE_DEBIAN_ROOT="$pristine" bash scripts/build-image.sh
fi
echo "system-test: all passed"
