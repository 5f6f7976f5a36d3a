#!/usr/bin/env bash
# IMAP import rate, mailgate vs getmail6, from one private Dovecot mailbox
# layout (5 000 × 2 KB + 200 × 1 MB by default), and mailgate's peak RSS
# on a mailbox a fifth that size. Figures only; never a timed test.
#   usage: bench/run_imap_bench.sh [SMALL] [LARGE]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for pkg in getmail6 dovecot-imapd; do
  dpkg-query -W "$pkg" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
done
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target mailgate >/dev/null
python3 "$root/bench/imap_bench.py" "$root/build-bench/bin/mailgate" "$@"
