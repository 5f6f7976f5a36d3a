#!/usr/bin/env bash
# Makes a throwaway CA and a localhost/127.0.0.1 certificate in DIR for the
# benchmarks: ca.pem, server.pem, server.key.   usage: make_test_pki.sh DIR
set -euo pipefail
cd "$1"
key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $key -keyout ca.key -out ca.pem -days 2 -subj '/CN=bench CA' 2>/dev/null
openssl req $key -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
