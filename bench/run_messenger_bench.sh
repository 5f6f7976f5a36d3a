#!/usr/bin/env bash
# Messenger client throughput: mailgate's keep-alive HTTPS client posting
# small tickets to the fake Messenger (its own process, TLS on 127.0.0.1),
# next to curl posting the same tickets sequentially over one connection,
# the do-it-yourself alternative. Same run, same fake: compare the ratio.
#   usage: bench/run_messenger_bench.sh [N]   (default 10000; curl does N/10)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-10000}
curl_n=$((n / 10))
cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release -DMAILGATE_TESTS=ON >/dev/null
cmake --build "$root/build-bench" -j"$(nproc)" --target messenger_bench fake-messenger >/dev/null
bin="$root/build-bench/bin"
work=$(mktemp -d)
fake_pid=
cleanup() { [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cd "$work"
"$root/bench/make_test_pki.sh" .

"$bin/fake-messenger" --cert server.pem --key server.key --threads "${FAKE_THREADS:-1}" > fake.out &
fake_pid=$!
for _ in $(seq 50); do grep -q listening fake.out 2>/dev/null && break; sleep 0.1; done
port=$(awk '{print $2}' fake.out)
auth="https://localhost:$port/v1"

echo "== mailgate MessengerClient, $n tickets, keep-alive"
"$bin/messenger_bench" "$auth" ca.pem "$n" 8 | tee mailgate.txt
"$bin/messenger_bench" "$auth" ca.pem "$n" 1 | tee mailgate1.txt

echo "== curl, $curl_n tickets, sequential on one connection"
token=$(curl -s --cacert ca.pem -H 'x-inbenta-key: test-api-key' -d '{"secret":"test-secret"}' "$auth/auth" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
user=$(curl -s --cacert ca.pem -H 'x-inbenta-key: test-api-key' -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"name":"Curl","address":"curl@example.com"}' \
        "https://localhost:$port/prod/ticketing/v1/users" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
{
  for i in $(seq "$curl_n"); do
    [ "$i" -gt 1 ] && echo "next"
    echo "url = \"https://localhost:$port/prod/ticketing/v1/tickets\""
    echo "header = \"x-inbenta-key: test-api-key\""
    echo "header = \"Authorization: Bearer $token\""
    echo "header = \"Content-Type: application/json\""
    echo "data = \"{\\\"title\\\":\\\"curl ticket $i\\\",\\\"message\\\":\\\"<p>small body</p>\\\",\\\"creator\\\":\\\"$user\\\",\\\"attachments\\\":[]}\""
    echo "cacert = \"ca.pem\""
    echo "output = \"/dev/null\""
  done
} > curl.cfg
/usr/bin/time -f "%e %U %S" -o curl.time curl -s -K curl.cfg
read -r wall user_s sys_s < curl.time
python3 - "$curl_n" "$wall" "$user_s" "$sys_s" <<'PY' | tee curl.txt
import sys
n, wall, u, s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print("curl requests=%d seconds=%.3f req_per_s=%.0f cpu_us_per_req=%.1f" % (n, wall, n / wall, (u + s) / n * 1e6))
PY
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2"; }
python3 -c "import sys; print('rate ratio mailgate(8 in flight)/curl: %.1fx; mailgate(1 in flight)/curl: %.1fx' % (float(sys.argv[1])/float(sys.argv[3]), float(sys.argv[2])/float(sys.argv[3])))" \
  "$(field req_per_s mailgate.txt)" "$(field req_per_s mailgate1.txt)" "$(field req_per_s curl.txt)"
curl -s --cacert ca.pem "https://localhost:$port/_fake/state" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("fake received %d tickets" % len(d["tickets"]))'

# A real API is not 0.1 ms away: with 5 ms added to every answer, what
# counts is requests in flight, not CPU. (curl: one at a time.)
lat_n=$((n / 10))
echo "== with 5 ms server latency: mailgate $lat_n tickets at 32 in flight, curl $((lat_n / 10)) sequential"
curl -s --cacert ca.pem -d '{"fault_rate":1.0,"faults":["slow"],"slow_ms":5}' "https://localhost:$port/_fake/config" >/dev/null
"$bin/messenger_bench" "$auth" ca.pem "$lat_n" 32 | tee mailgate-lat.txt
head -n $((8 * (lat_n / 10) - 1)) curl.cfg > curl-lat.cfg  # 7 lines an entry, "next" between
/usr/bin/time -f "%e %U %S" -o curl-lat.time curl -s -K curl-lat.cfg
read -r wall user_s sys_s < curl-lat.time
python3 -c "import sys; n=int(sys.argv[1]); w=float(sys.argv[2]); print('curl requests=%d seconds=%.3f req_per_s=%.0f' % (n, w, n / w))" "$((lat_n / 10))" "$wall" | tee curl-lat.txt
python3 -c "import sys; print('rate ratio with latency mailgate/curl: %.1fx' % (float(sys.argv[1]) / float(sys.argv[2])))" \
  "$(field req_per_s mailgate-lat.txt)" "$(field req_per_s curl-lat.txt)"
