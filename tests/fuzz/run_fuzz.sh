#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a
# bounded time, seeded from tests/corpus. Fails on any crash, leak or timeout.
# usage: tests/fuzz/run_fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMAILGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_draft >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$root"/tests/corpus/*.eml "$work/corpus/"
# -rss_limit_mb: a memory blow-up is a bug too; -timeout: per input.
"$build/bin/fuzz_draft" "$work/corpus" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$work/artifacts/" -print_final_stats=1 2>"$work/log" || {
    tail -50 "$work/log"
    echo "fuzz_draft: FAILED; reproducer(s):"
    for a in "$work"/artifacts/*; do
      [ -e "$a" ] || continue
      mkdir -p "$root/build-fuzz/crashes" && cp "$a" "$root/build-fuzz/crashes/" && echo "  build-fuzz/crashes/$(basename "$a")"
    done
    exit 1
  }
grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/log" | sed 's/^/fuzz_draft: /'
echo "fuzz_draft: ran ${seconds}s clean"
