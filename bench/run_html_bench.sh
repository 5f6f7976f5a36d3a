#!/usr/bin/env bash
# The HTML sanitiser on hostile inputs of 1, 5 and 25 MB (issue 13, item 4):
# ms/MB should stay flat as the size grows. The machine is noisy: compare
# the rows of one run.  usage: bench/run_html_bench.sh [MAX_MB]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target html_bench >/dev/null
"$root/build-bench/bin/html_bench" "${1:-25}"
