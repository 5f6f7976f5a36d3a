#!/usr/bin/env bash
# End to end: mails/s from SMTP into tickets, against the fake Messenger
# (TLS, its own process) answering every call 50 ms late; then the daemon's
# peak RSS while 8 sessions deliver 25 MB mails (dry-run).
#   usage: bench/run_e2e_bench.sh [MAILS]   (default 1000)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target mailgate fake-messenger >/dev/null
bin="$root/build-bench/bin"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
"$root/bench/make_test_pki.sh" .
"$bin/fake-messenger" --cert server.pem --key server.key > fake.out & pids+=($!)
for _ in $(seq 50); do grep -q listening fake.out 2>/dev/null && break; sleep 0.1; done
fport=$(awk '{print $2}' fake.out)
curl -s --cacert ca.pem -d '{"fault_rate":1.0,"faults":["slow"],"slow_ms":50}' "https://localhost:$fport/_fake/config" >/dev/null
echo test-secret > secret
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > live.yaml <<YAML
spool_dir: $work/spool
messenger: {api_key: test-api-key, secret_file: $work/secret, auth_url: "https://localhost:$fport/v1", ca_file: $work/ca.pem, max_in_flight: 64}
smtp: {listen: ["127.0.0.1:$port"], accept: ["@example.com"], max_connections_per_ip: 100}
queue: {concurrency: 64, min_free_space: 1MB}
YAML
MAILGATE_LOG=warn "$bin/mailgate" serve --config live.yaml 2>mailgate.log & pids+=($!)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

python3 - "$port" "$fport" "$n" <<'PY'
import json, smtplib, ssl, sys, threading, time, urllib.request
port, fport, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile="ca.pem")
def tickets():
    with urllib.request.urlopen("https://localhost:%d/_fake/state" % fport, context=ctx) as r:
        return len(json.load(r)["tickets"])
def sender(k):
    with smtplib.SMTP("127.0.0.1", port) as s:
        for i in range(k, n, 8):
            s.sendmail("a@example.org", ["support@example.com"],
                       ("From: User %d <u%d@example.org>\r\nTo: support@example.com\r\nSubject: bench %d\r\n"
                        "Message-ID: <bench-%d@x>\r\n\r\nbody\r\n" % (i, i % 50, i, i)).encode())
start = time.time()
threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
accepted = time.time() - start
while tickets() < n and time.time() - start < 600:
    time.sleep(0.2)
total = time.time() - start
print("e2e: %d mails, API 50 ms per call, 64 in flight: accepted in %.1f s, all tickets in %.1f s = %.0f mails/s into tickets"
      % (n, accepted, total, n / total))
PY

# Peak RSS: 8 sessions delivering 25 MB mails to a dry-run daemon.
python3 "$root/bench/make_large_mails.py" "$work"
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > dry.yaml <<YAML
spool_dir: $work/dryspool
messenger: {mode: dry-run}
smtp: {listen: ["127.0.0.1:$dport"], accept: ["@example.com"], max_message_size: 50MB}
queue: {min_free_space: 1MB}
mail: {max_attachment_size: 7MB}
YAML
MAILGATE_LOG=warn "$bin/mailgate" serve --config dry.yaml 2>dry.log & dpid=$!; pids+=($dpid)
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$dport) 2>/dev/null && break; sleep 0.1; done
python3 - "$dport" <<'PY'
import smtplib, sys, threading
port = int(sys.argv[1])
raw = open("large-25mb.eml", "rb").read()
def send(k):
    with smtplib.SMTP("127.0.0.1", port) as s:
        for j in range(2):
            s.sendmail("a@example.org", ["support@example.com"], raw.replace(b"<large@example.com>", b"<large-%d-%d@x>" % (k, j)))
ts = [threading.Thread(target=send, args=(k,)) for k in range(8)]
for t in ts: t.start()
for t in ts: t.join()
PY
sleep 3
size=$(stat -c %s large-25mb.eml)
hwm=$(awk '/VmHWM/ {print $2}' /proc/$dpid/status)
echo "rss: 16 mails of $((size / 1048576)) MB over 8 sessions (dry-run processing included): daemon peak RSS $((hwm / 1024)) MB"
