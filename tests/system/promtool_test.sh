#!/usr/bin/env bash
# contrib/prometheus/alerts.yml is a valid rule file (promtool check rules)
# and its alerts fire when they should (promtool test rules, alerts_test.yml).
# Exit 77 (ctest: skipped) only when promtool is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIPPED: promtool not found (Debian package 'prometheus'; scripts/install-deps.sh installs it)"
  exit 77
fi
promtool check rules "$here/../../contrib/prometheus/alerts.yml"
promtool test rules "$here/alerts_test.yml"
