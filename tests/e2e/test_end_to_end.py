"""Real SMTP clients (smtplib, swaks) → `mailgate serve` → the fake
Messenger over TLS. Every ticket, user and attachment is checked against the
corpus goldens byte for byte (by SHA-256 of what the fake received)."""
import json, os, smtplib, subprocess, unittest, uuid

from harness import (CORPUS, MAILGATE, FakeMessenger, Mailgate, Pki, Workdir, assert_golden_tickets, corpus,
                     corpus_names, wait_for)


def send_smtplib(port, raw, rcpt="support@example.com"):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        return s.sendmail("sender@example.org", [rcpt], raw)


def send_swaks(port, path):
    return subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", "sender@example.org",
                           "--to", "support@example.com", "--data", path, "--helo", "swaks.test"],
                          capture_output=True, text=True, errors="replace", timeout=60)


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir()
        cls.pki = Pki(cls.work.path)
        cls.fake = FakeMessenger(cls.pki)
        cls.mailgate = Mailgate(cls.work.path, cls.fake, cls.pki).start()

    @classmethod
    def tearDownClass(cls):
        cls.mailgate.stop()
        cls.fake.stop()
        cls.work.cleanup()

    def wait_all_finished(self, expected):
        def finished():
            out = self.mailgate.queue("list").stdout
            rows = [l for l in out.splitlines()[1:-1]]
            done = [l for l in rows if any(" %s " % state in l for state in ("done", "failed", "ignored", "held"))]
            return len(rows) >= expected and len(done) == len(rows)
        wait_for(finished, timeout=120, what="all messages processed")

    def test_corpus_becomes_exactly_the_golden_tickets(self):
        names = corpus_names()
        for i, name in enumerate(names):
            if i % 2 == 0:
                self.assertEqual(send_smtplib(self.mailgate.port, corpus(name)), {}, name)
            else:
                r = send_swaks(self.mailgate.port, os.path.join(CORPUS, name + ".eml"))
                self.assertIn("250 2.0.0 Ok: queued as", r.stdout, name + r.stdout[-500:])
        self.wait_all_finished(len(names))

        assert_golden_tickets(self, self.fake.state(), names)

    def test_the_same_message_twice_is_one_ticket(self):
        mid = "<%s@e2e.test>" % uuid.uuid4()
        raw = ("From: Twice <twice@example.org>\r\nTo: support@example.com\r\nSubject: sent twice %s\r\n"
               "Message-ID: %s\r\n\r\nhello\r\n" % (mid, mid)).encode()
        send_smtplib(self.mailgate.port, raw)
        with smtplib.SMTP("127.0.0.1", self.mailgate.port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@example.org")
            s.rcpt("support@example.com")
            code, text = s.data(raw)
        self.assertEqual(code, 250)
        self.assertIn(b"already received", text)
        wait_for(lambda: any(t["title"] == "sent twice " + mid for t in self.fake.state()["tickets"]), 30)
        self.assertEqual(sum(t["title"] == "sent twice " + mid for t in self.fake.state()["tickets"]), 1)

    def test_deliver_pipe_exit_codes(self):
        mid = "<%s@e2e.test>" % uuid.uuid4()
        raw = ("From: Pipe <pipe@example.org>\r\nTo: support@example.com\r\nSubject: via pipe %s\r\n"
               "Message-ID: %s\r\n\r\nhello\r\n" % (mid, mid)).encode()
        r = subprocess.run([MAILGATE, "deliver", "--config", self.mailgate.config, "--recipient", "support@example.com"],
                           input=raw, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: any(t["title"] == "via pipe " + mid for t in self.fake.state()["tickets"]), 30,
                 what="the piped mail's ticket")
        r = subprocess.run([MAILGATE, "deliver", "--config", self.mailgate.config], input=b"\x89PNG not a mail",
                           capture_output=True)
        self.assertEqual(r.returncode, 65)
        self.assertIn(b"not an email message", r.stderr)



class Monitoring(unittest.TestCase):
    """metrics.listen: /metrics in Prometheus text format, /healthz."""
    def test_metrics_count_the_spool_and_healthz_says_ok(self):
        import urllib.error, urllib.request
        from harness import free_port
        work = Workdir()
        port = free_port()
        m = Mailgate(work.path, extra_yaml="metrics:\n  listen: 127.0.0.1:%d\n" % port).start()
        try:
            raw = b"From: M <m@example.org>\r\nTo: support@example.com\r\nSubject: metered\r\nMessage-ID: <metered@x>\r\n\r\nhi\r\n"
            send_smtplib(m.port, raw)
            url = "http://127.0.0.1:%d" % port

            def get(path):
                try:
                    with urllib.request.urlopen(url + path, timeout=10) as r:
                        return r.status, r.read().decode()
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode()
            wait_for(lambda: 'mailgate_messages{state="done",source="smtp"} 1' in get("/metrics")[1], 30,
                     what="the message counted as done")
            status, text = get("/metrics")
            self.assertEqual(status, 200)
            self.assertIn("# TYPE mailgate_queue_oldest_age_seconds gauge", text)
            self.assertIn("mailgate_queue_bytes 0", text)
            self.assertEqual(get("/healthz"), (200, "ok\n"))
            self.assertEqual(get("/nope")[0], 404)
        finally:
            m.stop()
            work.cleanup()


if __name__ == "__main__":
    unittest.main()
