#!/usr/bin/env bash
# The README's run command: installs dependencies, builds build/bin/mailgate
# and runs the daemon in the foreground on config/mailgate.example.yaml —
# dry-run mode (no Inbenta credentials; each ticket mailgate would create is
# written as JSON under /tmp/mailgate-spool/dry-run/), SMTP on 127.0.0.1:2525.
# Stop it with Ctrl-C (it drains and exits 0).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
cmake -S . -B build -DMAILGATE_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mailgate
config=config/mailgate.example.yaml
build/bin/mailgate check-config --config "$config" >/dev/null
cat <<MSG
== mailgate serve --config $config   (dry-run, SMTP on 127.0.0.1:2525)
   Send it a mail from another terminal, e.g.
     swaks --server 127.0.0.1:2525 --to support@example.com --data tests/corpus/gmail-inline-image-and-pdf.eml
   then look at /tmp/mailgate-spool/dry-run/*.json, or:
     build/bin/mailgate queue list --config $config
MSG
exec build/bin/mailgate serve --config "$config"
