#!/usr/bin/env bash
# IMAP import rate, mailgate vs getmail6, from one private Dovecot mailbox
# layout (5 000 × 2 KB + 200 × 1 MB by default), and mailgate's peak RSS
# on a mailbox a fifth that size. Figures only; never a timed test.
# Runs on a fresh Debian 12 as root: installs the build dependencies and the
# peers itself. A peer that fails is reported as one line, and mailgate's
# figures are still printed.
#   usage: bench/run_imap_bench.sh [SMALL] [LARGE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "run_imap_bench: run as root (it installs packages, and Dovecot and getmail6 run as other users)" >&2
  exit 1
fi
"$root/scripts/install-deps.sh"
missing=()
for pkg in getmail6 dovecot-imapd; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  # A fresh machine may have no package lists yet; wait for another apt.
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target mailgate >/dev/null
python3 "$root/bench/imap_bench.py" "$root/build-bench/bin/mailgate" "$@"
