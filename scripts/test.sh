#!/usr/bin/env bash
# The README's test command: installs dependencies, builds with
# AddressSanitizer + UndefinedBehaviorSanitizer, runs every test (unit,
# golden corpus, CLI contract), then the fuzzers for a bounded time.
#   MAILGATE_FUZZ_SECONDS=60 (default) bounds each fuzz target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# MAILGATE_UPDATE_GOLDEN rewrites the golden files instead of comparing with
# them: a test run with it set proves nothing, so the test command refuses it.
if [ -n "${MAILGATE_UPDATE_GOLDEN+set}" ]; then
  echo "scripts/test.sh: MAILGATE_UPDATE_GOLDEN is set; it rewrites tests/corpus/*.json instead of testing them." >&2
  echo "  Unset it (update goldens with: MAILGATE_UPDATE_GOLDEN=1 build/bin/mailgate_golden_tests)." >&2
  exit 2
fi
scripts/install-deps.sh
jobs=$(nproc)

# -O1 -g1: what the sanitizers recommend, and much faster to compile than
# -O2 -g for the coroutine-heavy sources (CI has two cores).
cmake -S . -B build -DMAILGATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null
cmake --build build -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build --output-on-failure -j"$jobs" | tee build/ctest.log
total=$(sed -n 's/.* tests failed out of \([0-9]*\)$/\1/p' build/ctest.log)

tests/fuzz/run_fuzz.sh "${MAILGATE_FUZZ_SECONDS:-60}"
echo "mailgate: $((total + 1)) passed, 0 failed"
