#!/usr/bin/env bash
# The kept mutant set (tests/mutants/): every mutant must be killed — the
# tests that mutants.tsv names for it must fail once its patch is applied.
# Each patch is applied in a scratch copy of this tree (never in the tree
# itself), the named targets are rebuilt incrementally in one shared build
# directory, the tests run, the patch is reverted. Prints killed/survived
# per mutant and a score; exits non-zero if any mutant survives, no longer
# applies (stale), does not compile (broken), or if a test already fails
# without any mutant (baseline).
#   usage: scripts/mutants.sh [--no-baseline] [NUMBER | NAME-SUBSTRING...]
#   MAILGATE_MUTANTS_DIR  scratch directory (default build-mutants/ in this
#                         tree: under /work, ccache's base_dir shares the
#                         normal build's objects)
#   MAILGATE_MUTANTS_JOBS build parallelism (default 2)
set -uo pipefail
set -f  # test selectors are regexes: never globs
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=${MAILGATE_MUTANTS_DIR:-$root/build-mutants}
src=$scratch/src
build=$src/build
logs=$scratch/logs
jobs=${MAILGATE_MUTANTS_JOBS:-2}
test_timeout=1200  # seconds per test selector; a hang counts as a failure

baseline=1
filters=()
for arg in "$@"; do
  case "$arg" in
    --no-baseline) baseline=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) filters+=("$arg") ;;
  esac
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# ---- the mutants to run -------------------------------------------------
names=() targets=() tests=()
while IFS=$'\t' read -r name tgt tst _; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  if [ ${#filters[@]} -gt 0 ]; then
    keep=0
    for f in "${filters[@]}"; do
      if [[ "$f" =~ ^[0-9]+$ ]]; then [[ "${name%%-*}" == "$f" ]] && keep=1  # a number: that mutant
      else [[ "$name" == *"$f"* ]] && keep=1; fi                              # a word: every name with it
    done
    [ $keep -eq 1 ] || continue
  fi
  names+=("$name") targets+=("$tgt") tests+=("$tst")
done < "$root/tests/mutants/mutants.tsv"
if [ ${#names[@]} -eq 0 ]; then
  echo "mutants: no mutant matches ${filters[*]:-}" >&2
  exit 2
fi

# ---- the scratch copy ----------------------------------------------------
# Only files whose content differs are copied (with a new mtime), so the
# shared build stays incremental across runs and a file restored after an
# interrupted run is always rebuilt.
mkdir -p "$src" "$logs"
[ -d "$src/.git" ] || git -C "$src" init -q  # `git apply` then patches relative to $src
sync_tree() {
  local f
  while IFS= read -r -d '' f; do
    [ -f "$root/$f" ] || continue
    if ! cmp -s "$root/$f" "$src/$f"; then
      mkdir -p "$src/$(dirname "$f")"
      cp "$root/$f" "$src/$f"
    fi
  done < <(git -C "$root" ls-files -z --cached --others --exclude-standard)
}
sync_tree

# A patch left applied by an interrupted run is reverted by the sync above;
# one applied by this run is reverted on any exit.
applied=""
revert() {
  if [ -n "$applied" ]; then
    git -C "$src" apply -R "$applied" || sync_tree
    applied=""
  fi
}
trap revert EXIT
trap 'exit 130' INT TERM

if [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$src" -B "$build" "${launcher[@]}" -DMAILGATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >"$logs/configure.log" 2>&1 ||
    { echo "mutants: cmake configure failed, see $logs/configure.log" >&2; exit 2; }
fi

build_targets() {  # targets... ; log file last
  local log=${!#}
  cmake --build "$build" -j"$jobs" --target "${@:1:$#-1}" >"$log" 2>&1
}

# One selector: ctest:REGEX or e2e:MODULE[.Class[.test]]. 0 when it passes.
run_selector() {
  local sel=$1 log=$2
  case "$sel" in
    ctest:*)
      timeout "$test_timeout" ctest --test-dir "$build" -R "${sel#ctest:}" --no-tests=error \
        --output-on-failure >>"$log" 2>&1 ;;
    e2e:*)
      (cd "$src/tests/e2e" && MAILGATE_BIN="$build/bin/mailgate" FAKE_MESSENGER_BIN="$build/bin/fake-messenger" \
         MAILGATE_SOURCE_DIR="$src" timeout "$test_timeout" python3 -m unittest -f "${sel#e2e:}") >>"$log" 2>&1 ;;
    *) echo "unknown test selector '$sel' (ctest:REGEX or e2e:SELECTOR)" >>"$log"; return 2 ;;
  esac
}

# ---- baseline: every named test passes without a mutant -----------------
if [ $baseline -eq 1 ]; then
  all_targets=$(printf '%s\n' "${targets[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
  echo "mutants: baseline build ($all_targets)"
  # shellcheck disable=SC2086
  build_targets $all_targets "$logs/baseline.build.log" ||
    { echo "mutants: the unmutated tree does not build, see $logs/baseline.build.log" >&2; exit 2; }
  bad=0
  for sel in $(printf '%s\n' "${tests[@]}" | tr ' ' '\n' | sort -u); do
    log="$logs/baseline.$(echo "$sel" | tr -c 'A-Za-z0-9._-' '_').log"
    : >"$log"
    if ! run_selector "$sel" "$log"; then
      echo "mutants: baseline: $sel fails without any mutant, see $log" >&2
      bad=1
    fi
  done
  [ $bad -eq 0 ] || exit 2
fi

# ---- each mutant ----------------------------------------------------------
results=()
killed=0
for i in "${!names[@]}"; do
  name=${names[$i]}
  patch="$root/tests/mutants/$name.patch"
  log="$logs/$name.log"
  : >"$log"
  if [ ! -f "$patch" ] || ! git -C "$src" apply --check "$patch" >>"$log" 2>&1; then
    results+=("stale")
    printf '%-44s %s\n' "$name" "stale (the patch no longer applies)"
    continue
  fi
  git -C "$src" apply "$patch"
  applied=$patch
  # shellcheck disable=SC2086
  if ! build_targets ${targets[$i]} "$logs/$name.build.log"; then
    results+=("broken")
    printf '%-44s %s\n' "$name" "broken (does not compile, see $logs/$name.build.log)"
    revert
    continue
  fi
  outcome="survived"
  for sel in ${tests[$i]}; do
    echo "== $sel" >>"$log"
    if ! run_selector "$sel" "$log"; then
      outcome="killed by $sel"
      break
    fi
  done
  revert
  if [[ "$outcome" == killed* ]]; then
    killed=$((killed + 1))
    results+=("killed")
  else
    results+=("SURVIVED")
  fi
  printf '%-44s %s\n' "$name" "$outcome"
done

# ---- the table ---------------------------------------------------------------
total=${#names[@]}
echo
printf '%-44s %-9s %s\n' "mutant" "result" "tests"
for i in "${!names[@]}"; do
  printf '%-44s %-9s %s\n' "${names[$i]}" "${results[$i]}" "${tests[$i]}"
done
echo "score: $killed/$total killed ($((100 * killed / total)) %); logs in $logs"
[ "$killed" -eq "$total" ]
