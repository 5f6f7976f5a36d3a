#!/usr/bin/env bash
# The README's run command: installs dependencies, builds build/bin/mailgate,
# validates the example configuration and shows what a sample support mail
# becomes. (`mailgate serve` on the example config replaces the preview
# step once the spool and processor land; see README "Status".)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
cmake -S . -B build -DMAILGATE_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target mailgate
echo "== mailgate check-config --config config/mailgate.example.yaml"
build/bin/mailgate check-config --config config/mailgate.example.yaml
sample=tests/corpus/outlook-related-in-mixed.eml
echo "== mailgate preview $sample --config config/mailgate.example.yaml"
build/bin/mailgate preview "$sample" --config config/mailgate.example.yaml
