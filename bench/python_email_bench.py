#!/usr/bin/env python3
"""The do-it-yourself baseline: Python's email package (policy=default) parsing
each file and decoding every part, as a simple importer script would.
usage: python_email_bench.py --repeat N FILE..."""
import sys, time, email
from email import policy

def consume(msg):
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            part.get_content()          # decodes transfer encoding and charset
        except Exception:
            part.get_payload(decode=True)
    str(msg.get("subject", "")); str(msg.get("from", ""))

def main():
    rounds = int(sys.argv[2])
    mails = [open(p, "rb").read() for p in sys.argv[3:]]
    total = sum(map(len, mails))
    start = time.perf_counter()
    n = 0
    for _ in range(rounds):
        for raw in mails:
            consume(email.message_from_bytes(raw, policy=policy.default))
            n += 1
    secs = time.perf_counter() - start
    mb = total * rounds / 1048576
    print("python files=%d rounds=%d mb=%.1f seconds=%.3f mb_per_s=%.1f msgs_per_s=%.0f"
          % (len(mails), rounds, mb, secs, mb / secs, n / secs))

main()
