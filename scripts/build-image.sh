#!/usr/bin/env bash
# Builds docker/Dockerfile (and docker/postfix.Dockerfile, compose.yaml's
# MX) with Debian's buildah, without a registry: the debian:12 base image is
# made from a debootstrapped minbase root (cached), then the runtime stage is
# checked by running its binaries in a chroot of its root file system.
# Usage, as root on Debian 12: scripts/build-image.sh
#   MAILGATE_SYSTEM_TEST_CACHE  cache directory (default /var/cache/mailgate-system-test);
#                               the base root is bookworm-minbase/ there (~200 MB)
# Exit status: 0 image built and checked, 1 a step failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ "$(id -u)" -eq 0 ] || { echo "build-image: needs root (buildah, debootstrap, chroot)" >&2; exit 1; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool not found (apt-get install $tool)" >&2; exit 1; }
done
cache=${MAILGATE_SYSTEM_TEST_CACHE:-/var/cache/mailgate-system-test}
base_root=$cache/bookworm-minbase
export BUILDAH_ISOLATION=chroot
version=$(sed -n 's/^project(mailgate VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
image=localhost/mailgate:$version

# 1. debian:12 from debootstrap, with the official image's APT sources.
if ! buildah inspect --type image docker.io/library/debian:12 >/dev/null 2>&1; then
  if [ ! -d "$base_root" ]; then
    echo "build-image: debootstrap bookworm minbase into $base_root (once; cached)"
    mkdir -p "$cache"
    debootstrap --variant=minbase bookworm "$base_root.tmp" http://deb.debian.org/debian > "$cache/debootstrap-minbase.log" 2>&1 \
      || { tail -20 "$cache/debootstrap-minbase.log"; exit 1; }
    rm -f "$base_root.tmp/etc/apt/sources.list"
    cat > "$base_root.tmp/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    rm -rf "$base_root.tmp"/var/cache/apt/archives/*.deb "$base_root.tmp"/var/cache/apt/*.bin "$base_root.tmp"/var/lib/apt/lists/*
    mv "$base_root.tmp" "$base_root"
  fi
  echo "build-image: importing $base_root as docker.io/library/debian:12"
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  cp -a "$base_root"/. "$mnt"/
  buildah umount "$ctr" >/dev/null
  buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --quiet --rm "$ctr" docker.io/library/debian:12 >/dev/null
fi

# 2. The images. --pull=never: only the local base, no registry. --format
# docker: the OCI format has no HEALTHCHECK.
echo "build-image: building $image from docker/Dockerfile"
buildah bud --quiet --format docker --pull=never --layers -f docker/Dockerfile -t "$image" . > "$cache/build-image.log" 2>&1 \
  || { tail -40 "$cache/build-image.log"; echo "FAIL: buildah bud docker/Dockerfile"; exit 1; }
buildah bud --quiet --format docker --pull=never --layers -f docker/postfix.Dockerfile -t localhost/mailgate-postfix:$version docker \
  > "$cache/build-postfix.log" 2>&1 \
  || { tail -40 "$cache/build-postfix.log"; echo "FAIL: buildah bud docker/postfix.Dockerfile"; exit 1; }

# 3. Check the runtime stage: its configuration, then its root file system.
failed=0
ok()   { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }
expect() {  # expect WHAT GOT WANT
  if [ "$2" = "$3" ]; then ok "$1: $2"; else fail "$1: got '$2', want '$3'"; fi
}
cfg() { buildah inspect --type image --format "$1" "$image"; }
expect "user" "$(cfg '{{.OCIv1.Config.User}}')" mailgate
expect "exposed ports" "$(cfg '{{range $p, $_ := .Docker.Config.ExposedPorts}}{{$p}} {{end}}')" "2525/tcp 9465/tcp "
expect "volume" "$(cfg '{{range $v, $_ := .OCIv1.Config.Volumes}}{{$v}}{{end}}')" /var/lib/mailgate
expect "stop signal" "$(cfg '{{.OCIv1.Config.StopSignal}}')" SIGTERM
expect "entrypoint" "$(cfg '{{.OCIv1.Config.Entrypoint}}')" "[/usr/sbin/mailgate]"
expect "cmd" "$(cfg '{{.OCIv1.Config.Cmd}}')" "[serve --config /etc/mailgate/mailgate.yaml]"
health=$(cfg '{{if .Docker.Config.Healthcheck}}{{.Docker.Config.Healthcheck.Test}}{{end}}')
case $health in *"/healthz"*) ok "healthcheck: $health" ;; *) fail "healthcheck on /healthz: got '$health'" ;; esac

ctr=$(buildah from --pull=never "$image")
mnt=$(buildah mount "$ctr")
cleanup() { buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
as_mailgate() { chroot --userspec=mailgate:mailgate "$mnt" "$@"; }
got=$(as_mailgate /usr/sbin/mailgate --version) && ok "mailgate --version: $got" || fail "mailgate --version"
if out=$(as_mailgate /usr/sbin/mailgate check-config --config /etc/mailgate/mailgate.yaml 2>&1); then
  ok "check-config of the image's config"
else
  fail "check-config: $out"
fi
grep -q '^  mode: dry-run$' "$mnt/etc/mailgate/mailgate.yaml" && ok "config is dry-run" || fail "config is not dry-run"
uid=$(chroot "$mnt" id -u mailgate)
[ "$(stat -c %u "$mnt/var/lib/mailgate")" = "$uid" ] && ok "/var/lib/mailgate belongs to mailgate (uid $uid)" \
  || fail "/var/lib/mailgate owner: uid $(stat -c %u "$mnt/var/lib/mailgate"), want $uid"
# Slim: no compiler, no headers, no package lists or caches.
dev=$(chroot "$mnt" dpkg-query -W -f='${Package}\n' | grep -E -- '-dev$|^g\+\+|^gcc(-[0-9]+)?$|^cpp|^cmake|^make$' || true)
[ -z "$dev" ] && ok "no build tools or -dev packages" || fail "build packages in the runtime image: $dev"
[ -z "$(ls -A "$mnt/var/lib/apt/lists" 2>/dev/null | grep -v '^lock$\|^partial$' || true)" ] && ok "no APT lists" || fail "APT lists left"
[ -z "$(find "$mnt/var/cache/apt" -name '*.bin' -o -name '*.deb' | head -1)" ] && ok "no APT caches" || fail "APT caches left in /var/cache/apt"
echo "     runtime root: $(du -sh --exclude=proc "$mnt" | cut -f1), packages: $(chroot "$mnt" dpkg-query -W | wc -l)"

# The daemon itself, as the image runs it (its own network namespace, so the
# ports are the image's 2525 and 9465), and the HEALTHCHECK command as written.
spool=$(mktemp -d)
mount --bind "$spool" "$mnt/var/lib/mailgate"
chown mailgate:mailgate "$spool" 2>/dev/null || chown "$(chroot "$mnt" id -u mailgate):$(chroot "$mnt" id -g mailgate)" "$spool"
health_cmd=$(cfg '{{range $i, $a := .Docker.Config.Healthcheck.Test}}{{if eq $i 3}}{{$a}}{{end}}{{end}}')
set +e
unshare --net --fork bash -c '
  ip link set lo up
  chroot --userspec=mailgate:mailgate "$1" /usr/sbin/mailgate serve --config /etc/mailgate/mailgate.yaml 2>"$3" &
  pid=$!
  for i in $(seq 1 100); do
    chroot --userspec=mailgate:mailgate "$1" bash -c "$2" 2>/dev/null && break
    sleep 0.1
  done
  chroot --userspec=mailgate:mailgate "$1" bash -c "$2"; rc=$?
  kill -TERM $pid; wait $pid; echo "exit=$?" >> "$3"
  exit $rc' _ "$mnt" "$health_cmd" "$spool/serve.log"
health_rc=$?
set -e
[ $health_rc -eq 0 ] && ok "HEALTHCHECK passes against the running daemon" || fail "HEALTHCHECK against the running daemon (rc $health_rc)"
grep -q '^exit=0$' "$spool/serve.log" && ok "SIGTERM: clean exit 0" || fail "SIGTERM exit: $(tail -3 "$spool/serve.log")"
umount "$mnt/var/lib/mailgate"
rm -rf "$spool"

pf=$(buildah from --pull=never localhost/mailgate-postfix:$version)
pfmnt=$(buildah mount "$pf")
if chroot "$pfmnt" postfix check && [ "$(chroot "$pfmnt" postconf -h transport_maps)" != "" ]; then
  ok "postfix image: postfix check, relays to mailgate: $(chroot "$pfmnt" postconf -h transport_maps)"
else
  fail "postfix image"
fi
buildah umount "$pf" >/dev/null; buildah rm "$pf" >/dev/null

if [ $failed -ne 0 ]; then echo "FAIL: runtime image $image"; exit 1; fi
echo "PASS: runtime image $image"
