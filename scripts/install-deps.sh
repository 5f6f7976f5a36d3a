#!/usr/bin/env bash
# Installs everything mailgate needs to build, test and benchmark, from
# Debian 12's packages. Idempotent; skips apt entirely when all is present.
set -euo pipefail
packages=(
  g++ cmake make pkg-config clang libclang-rt-14-dev  # toolchain; clang for libFuzzer
  libboost-dev libboost-system-dev libssl-dev openssl # Asio/Beast, TLS
  nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev
  libgtest-dev libgmock-dev
  libgumbo-dev                                        # HTML5 parser for the mail sanitiser
  libre2-dev                                          # linear-time regexes for routes and threading (never std::regex on mail)
  python3 swaks libnet-ssleay-perl libio-socket-ssl-perl  # real SMTP clients (swaks --tls)
  postfix dovecot-imapd systemd curl ca-certificates   # real peers: MTA, IMAP, systemd-analyze
  strace                                              # tests/e2e/test_durability.py: the sync order before 250
  scdoc man-db prometheus                              # man pages (build, man -l), promtool check/test rules
  dpkg-dev lintian debootstrap systemd-container buildah  # scripts/build-deb.sh, system-test.sh, build-image.sh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or: sudo $0)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
