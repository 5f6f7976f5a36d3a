#!/usr/bin/env bash
# The command-line contract of design.md: exit codes and what is printed.
# usage: cli_test.sh PATH/TO/mailgate SOURCE_DIR
set -u
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

check() {  # check NAME EXPECTED_EXIT ACTUAL_EXIT [grep-pattern file]
  local name=$1 want=$2 got=$3
  if [ "$want" != "$got" ]; then
    echo "FAIL: $name: exit $got, expected $want"; failed=$((failed + 1)); return
  fi
  if [ $# -ge 5 ] && ! grep -qE -- "$4" "$5"; then
    echo "FAIL: $name: output lacks /$4/:"; sed 's/^/    /' "$5"; failed=$((failed + 1)); return
  fi
  echo "ok: $name"; passed=$((passed + 1))
}

"$bin" --version >"$tmp/out" 2>&1
check "--version" 0 $? '^mailgate [0-9]+\.[0-9]+' "$tmp/out"
"$bin" --help >"$tmp/out" 2>&1
check "--help" 0 $? 'check-config' "$tmp/out"
"$bin" preview --help >"$tmp/out" 2>&1
check "preview --help" 0 $? 'usage' "$tmp/out"
"$bin" frobnicate >"$tmp/out" 2>&1
check "unknown command" 64 $? "unknown command 'frobnicate'" "$tmp/out"

"$bin" check-config --config "$src/config/mailgate.example.yaml" >"$tmp/out" 2>&1
check "check-config example" 0 $? 'is valid' "$tmp/out"

cat >"$tmp/broken.yaml" <<'YAML'
spool_dir: /tmp/x
messenger:
  mode: dry-run
  max_in_flight: many
smtp:
  listen: ["127.0.0.1:2525"]
  acept: ["support@example.com"]
YAML
"$bin" check-config --config "$tmp/broken.yaml" >"$tmp/out" 2>&1
check "check-config broken: exit 78" 78 $?
check "check-config broken: wrong type at line 4 col 18" 78 78 "broken.yaml:4:18: 'max_in_flight' must be a whole number" "$tmp/out"
check "check-config broken: unknown key at line 7 col 3" 78 78 "broken.yaml:7:3: unknown key 'acept'" "$tmp/out"
check "check-config broken: missing accept reported too" 78 78 "smtp.accept must list" "$tmp/out"

"$bin" check-config --config "$tmp/missing.yaml" >"$tmp/out" 2>&1
check "check-config missing file" 78 $? 'cannot open' "$tmp/out"

echo "s3cr3t-do-not-print" >"$tmp/secret"
cat >"$tmp/live.yaml" <<YAML
messenger:
  api_key: "abcdefgh12345678"
  secret_file: $tmp/secret
smtp: {listen: "127.0.0.1:2525", accept: ["@example.com"]}
YAML
"$bin" check-config --config "$tmp/live.yaml" >"$tmp/out" 2>&1
check "check-config live" 0 $? 'secret from file' "$tmp/out"
if grep -q 's3cr3t-do-not-print\|abcdefgh12345678' "$tmp/out"; then
  echo "FAIL: check-config printed a secret"; failed=$((failed + 1))
else
  echo "ok: check-config masks secrets"; passed=$((passed + 1))
fi

"$bin" preview "$src/tests/corpus/thunderbird-plain.eml" >"$tmp/out" 2>"$tmp/err"
check "preview a mail" 0 $? '"ticket"' "$tmp/out"
"$bin" preview "$src/tests/corpus/thunderbird-plain.eml" --config "$src/config/mailgate.example.yaml" >"$tmp/out" 2>&1
check "preview merges ticket defaults" 0 $? '"source": 5' "$tmp/out"
printf '\x89PNG\r\n\x1a\n\0\0binary' >"$tmp/not-mail.png"
"$bin" preview "$tmp/not-mail.png" >"$tmp/out" 2>&1
check "preview of a PNG" 65 $? 'not an email message' "$tmp/out"
[ "$(wc -l <"$tmp/out")" -eq 1 ] && { echo "ok: one-line reason"; passed=$((passed + 1)); } || { echo "FAIL: reason not one line"; failed=$((failed + 1)); }
: >"$tmp/empty.eml"
"$bin" preview "$tmp/empty.eml" >"$tmp/out" 2>&1
check "preview of an empty file" 65 $? 'empty' "$tmp/out"
"$bin" preview "$tmp/does-not-exist.eml" >"$tmp/out" 2>&1
check "preview of a missing file" 65 $? 'cannot read' "$tmp/out"
"$bin" preview - <"$src/tests/corpus/thunderbird-plain.eml" >"$tmp/out" 2>&1
check "preview from stdin" 0 $? '"title"' "$tmp/out"

# deliver: the one "is this a mail" rule (mail::classify_mail), the one the
# pipeline applies: what it refuses (65, with the reason) could never become a ticket.
cat >"$tmp/deliver.yaml" <<YAML
spool_dir: $tmp/spool
messenger:
  mode: dry-run
smtp: {listen: "127.0.0.1:2525", accept: ["support@example.com"]}
YAML
"$bin" deliver --config "$tmp/deliver.yaml" <"$src/tests/corpus/thunderbird-plain.eml" >"$tmp/out" 2>&1
check "deliver a mail" 0 $?
printf 'From someone@example.org Mon Jan  1 00:00:00 2024\nFrom: a@example.org\nSubject: mbox\n\nbody\n' |
  "$bin" deliver --config "$tmp/deliver.yaml" >"$tmp/out" 2>&1
check "deliver a mail after an mbox From line" 0 $?
printf 'X-Custom: only fields no mail system writes\n\nbody\n' | "$bin" deliver --config "$tmp/deliver.yaml" >"$tmp/out" 2>&1
check "deliver of a header without mail fields" 65 $? 'not an email message: no RFC 5322 header fields' "$tmp/out"
printf '\nFrom: a@example.org\n\nbody\n' | "$bin" deliver --config "$tmp/deliver.yaml" >"$tmp/out" 2>&1
check "deliver of input starting with a blank line" 65 $? 'not an email message' "$tmp/out"
printf ' \r\n' | "$bin" deliver --config "$tmp/deliver.yaml" >"$tmp/out" 2>&1
check "deliver of white space" 65 $? 'not an email message: the input is empty' "$tmp/out"
queued=$(find "$tmp/spool/queue" -name '*.eml' | wc -l)
check "deliver queued the two mails only ($queued)" 2 "$queued"
[ -z "$(ls -A "$tmp/spool/tmp" 2>/dev/null)" ] && { echo "ok: nothing half-written"; passed=$((passed + 1)); } ||
  { echo "FAIL: a refused input left a file in tmp/"; failed=$((failed + 1)); }

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
