#!/usr/bin/env bash
# Durable SMTP ingest, messages/s, for 2 KB and 200 KB mails at 1, 8 and 32
# concurrent sessions: mailgate (250 only after fsync), aiosmtpd with an
# fsync'ing handler (Debian python3-aiosmtpd), and Postfix's smtp-sink (no
# disk: the ceiling). Postfix's smtp-source drives all three, in one run.
#   usage: bench/run_smtp_bench.sh [MESSAGES]   (default 2000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-2000}
dpkg-query -W python3-aiosmtpd >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-aiosmtpd >/dev/null
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target mailgate >/dev/null
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

mg_port=$(free_port); ai_port=$(free_port); sink_port=$(free_port)
cat > "$work/mailgate.yaml" <<YAML
spool_dir: $work/spool
messenger: {mode: dry-run}
smtp: {listen: ["127.0.0.1:$mg_port"], accept: ["@example.com"], max_message_size: 50MB, max_connections_per_ip: 100}
queue: {min_free_space: 1MB}
YAML
MAILGATE_LOG=warn "$root/build-bench/bin/mailgate" serve --config "$work/mailgate.yaml" 2>"$work/mailgate.log" & pids+=($!)
mkdir -p "$work/aiosmtpd"
/usr/bin/python3 "$root/bench/aiosmtpd_fsync.py" "$ai_port" "$work/aiosmtpd" >/dev/null 2>&1 & pids+=($!)
smtp-sink -u nobody "127.0.0.1:$sink_port" 256 2>/dev/null & pids+=($!)
wait_port "$mg_port"; wait_port "$ai_port"; wait_port "$sink_port"

rate() {  # rate PORT SESSIONS SIZE_BYTES → messages/s
  local start end
  start=$(date +%s.%N)
  smtp-source -s "$2" -m "$n" -l "$3" -f bench@example.org -t support@example.com "127.0.0.1:$1" >/dev/null
  end=$(date +%s.%N)
  python3 -c "print('%.0f' % ($n / ($end - $start)))"
}
printf "%-8s %-9s %10s %10s %10s %18s %18s\n" size sessions mailgate aiosmtpd smtp-sink "mailgate/aiosmtpd" "smtp-sink/mailgate"
for size in 2048 204800; do
  for s in 1 8 32; do
    m=$(rate "$mg_port" "$s" "$size"); a=$(rate "$ai_port" "$s" "$size"); k=$(rate "$sink_port" "$s" "$size")
    printf "%-8s %-9s %10s %10s %10s %18s %18s\n" "$((size / 1024))KB" "$s" "$m" "$a" "$k" \
      "$(python3 -c "print('%.1fx' % ($m / $a))")" "$(python3 -c "print('%.1fx' % ($k / $m))")"
  done
done
echo "(msgs/s; every mailgate message was fsync'd — file, directory, SQLite WAL — before its 250)"
