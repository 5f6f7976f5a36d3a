#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a
# bounded time each (MIME drafts, IMAP responses, the HTML sanitiser), seeded
# from tests/corpus, tests/fuzz/imap_seeds and tests/fuzz/html_seeds. Fails on
# any crash, leak or timeout, and (HTML) on any unsafe output.
# usage: tests/fuzz/run_fuzz.sh [SECONDS]   (default 60)
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMAILGATE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_draft fuzz_imap_response fuzz_sanitize_html >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fuzz TARGET SEEDS_DIR MAX_LEN
fuzz() {
  local target=$1 seeds=$2 max_len=$3
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts"
  # Every file below the seeds directory (tests/corpus/replies/ too), named
  # by its path so replies/README.md does not collide with README.md.
  local f rel
  while IFS= read -r -d '' f; do
    rel=${f#"$seeds"/}
    cp "$f" "$work/$target/corpus/${rel//\//_}"
  done < <(find "$seeds" -type f -print0)
  # -rss_limit_mb: a memory blow-up is a bug too; -timeout: per input.
  "$build/bin/$target" "$work/$target/corpus" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -artifact_prefix="$work/$target/artifacts/" -print_final_stats=1 2>"$work/$target/log" || {
      tail -50 "$work/$target/log"
      echo "$target: FAILED; reproducer(s):"
      for a in "$work/$target"/artifacts/*; do
        [ -e "$a" ] || continue
        mkdir -p "$root/build-fuzz/crashes" && cp "$a" "$root/build-fuzz/crashes/" && echo "  build-fuzz/crashes/$(basename "$a")"
      done
      exit 1
    }
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$target/log" | sed "s/^/$target: /"
  echo "$target: ran ${seconds}s clean"
}
fuzz fuzz_draft "$root/tests/corpus" 65536
fuzz fuzz_imap_response "$root/tests/fuzz/imap_seeds" 16384
fuzz fuzz_sanitize_html "$root/tests/fuzz/html_seeds" 65536
