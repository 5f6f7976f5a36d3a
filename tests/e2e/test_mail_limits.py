"""Per-mail limits through the real daemon: SMTP → `mailgate serve` → the
fake Messenger. An attachment over the default 7 MB limit is skipped and
named while the rest of the mail becomes the ticket (issue 15); a mail over
its processing-time budget goes to failed/ without holding up the next one,
and a shutdown does not wait for it (issue 13)."""
import base64, os, smtplib, time, unittest, uuid

from harness import FakeMessenger, Mailgate, Pki, Workdir, wait_for


def send(port, raw):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        return s.sendmail("sender@example.org", ["support@example.com"], raw)


def wrapped_base64(data):
    b64 = base64.b64encode(data).decode()
    return "\r\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))


def slow_html_mail(subject, megabytes):
    """255 open <span> (under the sanitiser's nesting bound), then end tags
    HTML5 looks for through all of them: linear, but ~256 steps per tag,
    about a second per MB under ASan: the kind of mail the budget is for."""
    lines = "\r\n".join("</x>" * 250 for _ in range(megabytes * 1024 * 1024 // 1000))
    return ("From: Slow <slow@example.org>\r\nTo: support@example.com\r\nSubject: %s\r\n"
            "Message-ID: <%s@e2e.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            "%s\r\n%s\r\nend\r\n" % (subject, uuid.uuid4(), "<span>" * 255, lines)).encode()


def queue_rows(mailgate):
    return mailgate.queue("list").stdout.splitlines()[1:-1]


class DefaultAttachmentLimit(unittest.TestCase):
    def setUp(self):
        self.work = Workdir()
        self.pki = Pki(self.work.path)
        self.fake = FakeMessenger(self.pki)
        # No mail: section at all: the defaults are under test.
        self.mailgate = Mailgate(self.work.path, self.fake, self.pki).start()

    def tearDown(self):
        self.mailgate.stop()
        self.fake.stop()
        self.work.cleanup()

    def test_an_8mb_attachment_is_skipped_and_named_and_the_rest_is_the_ticket(self):
        subject = "limits %s" % uuid.uuid4()
        big = os.urandom(8 * 1024 * 1024)
        small = b"%PDF-1.4\n% small enough\n"
        raw = ("From: Jane <jane@example.org>\r\nTo: support@example.com\r\nSubject: %s\r\n"
               "Message-ID: <%s@e2e.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe disk image and the report.\r\n"
               "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=disk.img\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n"
               "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n"
               % (subject, uuid.uuid4(), wrapped_base64(big), wrapped_base64(small))).encode()
        self.assertEqual(send(self.mailgate.port, raw), {})

        wait_for(lambda: any(t["title"] == subject for t in self.fake.state()["tickets"]), 120,
                 what="the ticket of the mail with an 8 MB attachment")
        state = self.fake.state()
        [ticket] = [t for t in state["tickets"] if t["title"] == subject]
        media = {m["id"]: m for m in state["media"]}
        # Only the PDF was uploaded; nothing of 8 MB ever reached the API.
        self.assertEqual([media[a]["name"] for a in ticket["attachments"]], ["report.pdf"])
        self.assertTrue(all(m["size"] < 7 * 1024 * 1024 for m in state["media"]))
        self.assertIn("The disk image and the report.", ticket["message"])
        self.assertIn("disk.img", ticket["message"])
        self.assertIn("larger than 7 MB media limit (8.0 MB)", ticket["message"])


class ProcessingTimeBudget(unittest.TestCase):
    def start(self, seconds):
        self.work = Workdir()
        self.pki = Pki(self.work.path)
        self.fake = FakeMessenger(self.pki)
        self.mailgate = Mailgate(self.work.path, self.fake, self.pki,
                                 extra_yaml="mail:\n  max_processing_time: %ds\n" % seconds).start()

    def tearDown(self):
        self.mailgate.stop()
        self.fake.stop()
        self.work.cleanup()

    def test_a_mail_over_budget_fails_alone_and_the_next_one_becomes_a_ticket(self):
        self.start(1)
        send(self.mailgate.port, slow_html_mail("too slow", 8))
        subject = "after the slow one %s" % uuid.uuid4()
        send(self.mailgate.port, ("From: Next <next@example.org>\r\nTo: support@example.com\r\nSubject: %s\r\n\r\n"
                                  "hello\r\n" % subject).encode())
        wait_for(lambda: any(t["title"] == subject for t in self.fake.state()["tickets"]), 60,
                 what="the next mail's ticket")
        wait_for(lambda: any(" failed " in r for r in queue_rows(self.mailgate)), 60, what="the slow mail failed")
        self.assertNotIn("too slow", [t["title"] for t in self.fake.state()["tickets"]])
        failed = self.mailgate.queue("list").stdout + self.mailgate.log_text()
        self.assertIn("mail.max_processing_time", failed)
        self.assertIn("pipeline.over_budget", self.mailgate.log_text())

    def test_sigterm_does_not_wait_for_a_draft_and_the_mail_stays_queued(self):
        self.start(600)  # the budget would let it run for minutes
        send(self.mailgate.port, slow_html_mail("slow at shutdown", 16))
        time.sleep(2)  # drafting has begun
        started = time.monotonic()
        self.assertEqual(self.mailgate.stop(), 0)
        self.assertLess(time.monotonic() - started, 30)
        rows = queue_rows(self.mailgate)
        self.assertEqual(len(rows), 1, rows)
        self.assertIn(" queued ", rows[0])
        self.assertIn("pipeline.draft_cancelled", self.mailgate.log_text())


if __name__ == "__main__":
    unittest.main()
