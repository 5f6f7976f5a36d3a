#!/usr/bin/env bash
# Parse → draft throughput and memory, mailgate vs Python's email package,
# measured in one run on the same files (the machine is noisy: compare the
# ratio, not the absolute figures).  usage: bench/run_parse_bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target parse_bench >/dev/null
bench="$root/build-bench/bin/parse_bench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$root/bench/make_large_mails.py" "$work"
# The corpus minus the two hostile files, which measure limits, not speed.
corpus=$(ls "$root"/tests/corpus/*.eml | grep -v -e nesting-bomb -e 10000-tiny)

ratio() { python3 -c "import sys; print('%.1fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "== corpus (real-world shapes, small mails)"
m=$("$bench" --repeat 200 $corpus); echo "$m"
p=$(python3 "$root/bench/python_email_bench.py" --repeat 20 $corpus); echo "$p"
echo "throughput ratio mailgate/python: $(ratio "$(echo "$m" | field mb_per_s)" "$(echo "$p" | field mb_per_s)")"

for f in large-5mb large-25mb; do
  echo "== $f.eml"
  m=$("$bench" --repeat 5 "$work/$f.eml"); echo "$m"
  p=$(python3 "$root/bench/python_email_bench.py" --repeat 2 "$work/$f.eml"); echo "$p"
  echo "throughput ratio mailgate/python: $(ratio "$(echo "$m" | field mb_per_s)" "$(echo "$p" | field mb_per_s)")"
  "$bench" --memory "$work/$f.eml"
done
