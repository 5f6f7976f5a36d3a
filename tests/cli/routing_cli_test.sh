#!/usr/bin/env bash
# Routes, sender trust and policy through the command line (design.md "A
# support mailbox"): check-config's positions for route patterns and its
# listing of routes, and what `preview --config` decides with a small config.
# usage: routing_cli_test.sh PATH/TO/mailgate SOURCE_DIR
set -u
bin=$1
src=$2
corpus=$src/tests/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

pass() { echo "ok: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

check_exit() {  # NAME EXPECTED ACTUAL OUTPUT-FILE
  [ "$2" = "$3" ] && return 0
  fail "$1: exit $3, expected $2"; sed 's/^/    /' "$4"; return 1
}

# expect_json NAME FILE PYTHON-EXPRESSION-OVER-j: the preview JSON must satisfy it.
expect_json() {
  if python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$2" "$3"; then
    pass "$1"
  else
    fail "$1: not ($3) in:"; sed 's/^/    /' "$2"
  fi
}

expect_line() {  # NAME FIXED-STRING FILE
  if grep -qF -- "$2" "$3"; then pass "$1"; else fail "$1: no line with '$2' in:"; sed 's/^/    /' "$3"; fi
}

base='messenger: {mode: dry-run}
smtp: {listen: ["127.0.0.1:2525"], accept: ["support@example.com", "@help.example.com"]}
tickets: {defaults: {source: 5}}'

# ---- check-config ------------------------------------------------------------
cat >"$tmp/bad-regex.yaml" <<YAML
$base
routes:
  - name: billing
    match:
      subject: "(?i)invoice ("
      header: {X-Priority: "^1", X-Team: "[z-a]"}
YAML
"$bin" check-config --config "$tmp/bad-regex.yaml" >"$tmp/out" 2>&1
if check_exit "check-config bad regex" 78 $? "$tmp/out"; then
  expect_line "bad subject regex at FILE:LINE:COL" "$tmp/bad-regex.yaml:7:16: route 'billing': match.subject is not a valid regular expression: missing ): " "$tmp/out"
  expect_line "bad header regex at FILE:LINE:COL" "$tmp/bad-regex.yaml:8:42: route 'billing': match.header.X-Team is not a valid regular expression" "$tmp/out"
  expect_line "bad regex: would not start" "2 errors; mailgate would not start" "$tmp/out"
fi

cat >"$tmp/routes.yaml" <<YAML
$base
routes:
  - name: billing
    match: {recipient: ["billing@example.com", "@billing.example.com"], subject: "(?i)invoice"}
    ticket: {queue: 3, priority: "2"}
  - {name: newsletters, match: {header: {List-Id: "news\\\\.example\\\\.org"}}, action: ignore}
senders: {trusted_lists: ["support.groups.example.com"], authserv_id: mx.example.com, unauthenticated: hold}
policy: {auto_reply: hold, flood: {max: 5, per: 10m}}
YAML
"$bin" check-config --config "$tmp/routes.yaml" >"$tmp/out" 2>&1
if check_exit "check-config routes" 0 $? "$tmp/out"; then
  expect_line "check-config lists the first route" "- name: billing" "$tmp/out"
  expect_line "check-config shows its match" 'recipient: [billing@example.com, "@billing.example.com"]' "$tmp/out"
  expect_line "check-config shows its typed ticket fields" 'ticket: "{\"priority\":\"2\",\"queue\":3}"' "$tmp/out"
  expect_line "check-config lists the second route" "- name: newsletters" "$tmp/out"
  expect_line "check-config shows senders" "authserv_id: mx.example.com" "$tmp/out"
  expect_line "check-config shows policy" "auto_reply: hold" "$tmp/out"
  expect_line "check-config shows flood" "flood: {max: 5, per: 600s, action: hold}" "$tmp/out"
fi

# ---- preview --config ------------------------------------------------------------
preview() {  # NAME EML [ARGS...]: runs preview into $tmp/out
  local name=$1 eml=$2
  shift 2
  "$bin" preview "$corpus/$eml" --config "$tmp/routes.yaml" "$@" >"$tmp/out" 2>"$tmp/err"
  check_exit "$name" 0 $? "$tmp/err"
}

if preview "trusted Google Groups post" google-groups-post-x-original-from.eml; then
  expect_json "trusted list post: a ticket from the author" "$tmp/out" \
    'j["action"] == "ticket" and j["user"]["address"] == "carla.rossi@example.it" and j["user"]["name"] == "Carla Rossi" and j["ignored"] is None and j["reason"] is None'
fi
"$bin" preview "$corpus/google-groups-post-x-original-from.eml" >"$tmp/out" 2>"$tmp/err"
expect_json "untrusted list post (no config): held as bulk, user is the list" "$tmp/out" \
  'j["action"] == "hold" and j["user"]["address"] == "support@groups.example.com" and j["ignored"] == j["reason"] == "bulk mail (Precedence: list)"'

if preview "Authentication-Results forged below ours" auth-results-forged-below-ours.eml; then
  expect_json "our MX's dmarc=fail holds it; the forged pass below does not count" "$tmp/out" \
    'j["action"] == "hold" and j["reason"].startswith("unauthenticated sender (dmarc=fail") and j["ignored"] == j["reason"]'
fi

if preview "route by recipient and subject" mailing-list-precedence-list.eml --recipient someone@example.com; then
  expect_json "no route for another recipient" "$tmp/out" 'j["route"] is None'
fi
if preview "route by recipient" thunderbird-plain.eml --recipient Someone@Billing.Example.com --recipient x@y.example; then
  expect_json "route without its subject: no match" "$tmp/out" 'j["route"] is None and j["ticket"]["source"] == 5 and "queue" not in j["ticket"]'
fi
sed 's/^Subject: .*/Subject: Your invoice 42/' "$corpus/thunderbird-plain.eml" >"$tmp/invoice.eml"
"$bin" preview "$tmp/invoice.eml" --config "$tmp/routes.yaml" --recipient Someone@Billing.Example.com >"$tmp/out" 2>"$tmp/err"
expect_json "route billing: fields merged over defaults, types kept" "$tmp/out" \
  'j["action"] == "ticket" and j["route"] == "billing" and j["reason"] == "route billing" and j["ticket"]["queue"] == 3 and j["ticket"]["priority"] == "2" and j["ticket"]["source"] == 5 and j["ignored"] is None'

if preview "policy from the config" autoreply-precedence-auto-reply.eml; then
  expect_json "auto_reply: hold applies" "$tmp/out" 'j["action"] == "hold" and j["reason"] == "auto-reply (Precedence: auto_reply)"'
fi
if preview "null MAIL FROM over SMTP" thunderbird-plain.eml --source smtp --sender ""; then
  expect_json "null sender over SMTP is a bounce" "$tmp/out" 'j["action"] == "ignore" and j["reason"] == "bounce (null sender, MAIL FROM:<>)"'
fi
if preview "preview keys in design.md's order" thunderbird-plain.eml; then
  expect_json "keys in order" "$tmp/out" 'list(j) == ["user", "media", "ticket", "skipped", "ignored", "action", "route", "reason"]'
fi

echo "cli routing: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
