#!/usr/bin/env python3
"""Writes the large benchmark mails into DIR: a 5 MB attachment, and 25 MB
spread over several attachments. Random bytes, so nothing compresses away."""
import base64, os, sys

def mail(path, attachments):
    out = [b"From: Big Sender <big@example.com>\r\nTo: support@example.com\r\nSubject: large\r\n"
           b"Message-ID: <large@example.com>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"LARGE\"\r\n\r\n--LARGE\r\n"
           b"Content-Type: text/plain\r\n\r\nSee attachments.\r\n"]
    for i, size in enumerate(attachments):
        data = base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n")
        out.append(b"--LARGE\r\nContent-Type: application/octet-stream; name=\"blob%d.bin\"\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\n" % i + data)
    out.append(b"--LARGE--\r\n")
    open(path, "wb").write(b"".join(out))

d = sys.argv[1]
mail(os.path.join(d, "large-5mb.eml"), [5 * 1024 * 1024])
mail(os.path.join(d, "large-25mb.eml"), [6 * 1024 * 1024] * 3 + [5 * 1024 * 1024] + [1024 * 1024])
