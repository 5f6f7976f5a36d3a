"""Hostile and broken SMTP clients get the right codes, nothing crashes, and
nothing half-written is left in the spool."""
import os, smtplib, socket, subprocess, time, unittest

from harness import Mailgate, Pki, SmtpConversation, Workdir, wait_for

HEADERS = "From: a@example.org\r\nTo: support@example.com\r\nSubject: %s\r\n\r\n"


class HostileSmtp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir()
        cls.pki = Pki(cls.work.path)
        cls.mailgate = Mailgate(cls.work.path, smtp_yaml=(
            "  timeout: 2s\n  max_message_size: 100KB\n  max_connections_per_ip: 5\n"
            "  tls: {cert_file: %s, key_file: %s}\n" % (cls.pki.cert, cls.pki.key))).start()
        cls.port = cls.mailgate.port

    @classmethod
    def tearDownClass(cls):
        code = cls.mailgate.stop()
        cls.work.cleanup()
        assert code == 0, "mailgate serve did not exit cleanly: %s" % code

    def conv(self):
        c = SmtpConversation(self.port)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting[0], 220)
        return c

    def queued(self):
        # Every accepted message, wherever the processor has moved it. A set,
        # listed from queue/ onwards: a file renamed queue/ -> done/ between
        # two listdir calls is seen twice, never missed, and counts once.
        spool = self.mailgate.spool
        return sorted({name for d in ("queue", "done", "held", "failed") if os.path.isdir(os.path.join(spool, d))
                       for name in os.listdir(os.path.join(spool, d))})

    def assert_nothing_half_written(self):
        self.assertEqual(os.listdir(os.path.join(self.mailgate.spool, "tmp")), [])

    def test_commands_out_of_order(self):
        c = self.conv()
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0], 503)  # no EHLO
        self.assertEqual(c.command("RCPT TO:<support@example.com>")[0], 503)
        self.assertEqual(c.command("DATA")[0], 503)
        self.assertEqual(c.command("EHLO client.test")[0], 250)
        self.assertEqual(c.command("DATA")[0], 503)
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(c.command("MAIL FROM:<a@example.org>")[0], 503)  # nested
        self.assertEqual(c.command("VRFY someone")[0], 252)
        self.assertEqual(c.command("NOOP")[0], 250)
        self.assertEqual(c.command("HELP")[0], 214)
        self.assertEqual(c.command("QUIT")[0], 221)

    def test_never_an_open_relay(self):
        c = self.conv()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@example.org>")
        for rcpt in ["victim@gmail.com", "support@example.com.evil.test", "support@sub.help.example.com", "@x"]:
            self.assertIn(c.command("RCPT TO:<%s>" % rcpt)[0], (550, 501), rcpt)
        self.assertEqual(c.command("RCPT TO:<Support@Example.COM>")[0], 250)  # case-insensitive
        self.assertEqual(c.command("RCPT TO:<anyone@help.example.com>")[0], 250)

    def test_a_thousand_recipients(self):
        c = self.conv()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@example.org>")
        c.send("".join("RCPT TO:<user%d@help.example.com>\r\n" % i for i in range(1000)))  # pipelined
        codes = [c.reply()[0] for _ in range(1000)]
        self.assertEqual(codes.count(250), 100)
        self.assertEqual(codes.count(452), 900)

    def test_a_ten_megabyte_line(self):
        c = self.conv()
        try:
            c.send("EHLO " + "x" * (10 * 1024 * 1024) + "\r\n")
        except OSError:
            pass  # the server may close while we are still sending
        self.assertEqual(c.reply()[0], 500)
        self.assertEqual(c.reply()[0], None)  # closed

    def test_a_ten_megabyte_line_inside_data(self):
        before = self.queued()
        c = self.conv()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<support@example.com>")
        self.assertEqual(c.command("DATA")[0], 354)
        try:
            c.send(HEADERS % "long line" + "y" * (10 * 1024 * 1024) + "\r\n.\r\n")
        except OSError:
            pass
        self.assertIn(c.reply()[0], (500, 552))
        self.assertEqual(self.queued(), before)
        self.assert_nothing_half_written()

    def test_pipelined_garbage_ends_with_421(self):
        c = self.conv()
        c.send("".join("GARBAGE %d\r\n" % i for i in range(50)))
        codes = []
        while True:
            code, _ = c.reply()
            if code is None:
                break
            codes.append(code)
        self.assertEqual(codes[:9], [500] * 9)
        self.assertEqual(codes[9], 421)
        self.assertEqual(len(codes), 10)

    def test_bare_lf_clients_are_understood_and_stored_as_crlf(self):
        c = self.conv()
        c.send("EHLO lf.test\n")
        self.assertEqual(c.reply()[0], 250)
        for line in ["MAIL FROM:<a@example.org>", "RCPT TO:<support@example.com>"]:
            c.send(line + "\n")
            self.assertEqual(c.reply()[0], 250)
        c.send("DATA\n")
        self.assertEqual(c.reply()[0], 354)
        c.send("From: a@example.org\nSubject: bare lf\nMessage-ID: <bare-lf@test>\n\n..dot-stuffed\nline\n.\n")
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        spool_id = text.split()[-1]
        path = wait_for(lambda: next((os.path.join(self.mailgate.spool, d, spool_id + ".eml") for d in ("queue", "done")
                                      if os.path.exists(os.path.join(self.mailgate.spool, d, spool_id + ".eml"))), None),
                        10, what="the stored message")
        with open(path, "rb") as f:
            stored = f.read()
        self.assertTrue(stored.startswith(b"Received: from lf.test"))
        self.assertIn(b"Subject: bare lf\r\nMessage-ID: <bare-lf@test>\r\n\r\n.dot-stuffed\r\nline\r\n", stored)

    def test_slowloris_is_cut_off(self):
        c = self.conv()
        start = time.monotonic()
        c.send("EH")  # and then nothing
        code, text = c.reply()
        self.assertEqual(code, 421, text)
        self.assertIn("timeout", text)
        self.assertLess(time.monotonic() - start, 10)

    def test_disconnect_mid_data_leaves_nothing(self):
        before = self.queued()
        c = self.conv()
        c.command("EHLO client.test")
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<support@example.com>")
        c.command("DATA")
        c.send(HEADERS % "half" + "partial body\r\n")
        c.close()
        time.sleep(0.5)
        self.assertEqual(self.queued(), before)
        self.assert_nothing_half_written()

    def test_size_limits(self):
        c = self.conv()
        self.assertIn("SIZE 102400", c.command("EHLO client.test")[1])
        self.assertEqual(c.command("MAIL FROM:<a@example.org> SIZE=200000")[0], 552)
        self.assertEqual(c.command("MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8")[0], 250)
        c.command("RCPT TO:<support@example.com>")
        c.command("DATA")
        c.send(HEADERS % "too big" + ("z" * 998 + "\r\n") * 120 + ".\r\n")
        self.assertEqual(c.reply()[0], 552)
        self.assertEqual(c.command("NOOP")[0], 250)  # the session goes on
        self.assert_nothing_half_written()

    def test_connection_limit_per_address(self):
        held = [self.conv() for _ in range(5)]
        extra = SmtpConversation(self.port)
        self.addCleanup(extra.close)
        self.assertEqual(extra.greeting[0], 421)
        for c in held:
            c.command("QUIT")

    def test_chunking_bdat(self):
        c = self.conv()
        self.assertIn("CHUNKING", c.command("EHLO client.test")[1])
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<support@example.com>")
        part1 = (HEADERS % "chunked").encode()
        part2 = b"body in a second chunk\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        self.assertEqual(c.reply()[0], 250)
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        code, text = c.reply()
        self.assertEqual(code, 250, text)
        self.assertIn("queued as", text)

    def test_starttls_with_swaks(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.port, "--tls", "--to", "support@example.com",
                            "--from", "a@example.org", "--header", "Subject: over TLS"],
                           capture_output=True, text=True, errors="replace", timeout=60)
        self.assertIn("250 2.0.0 Ok: queued as", r.stdout, r.stdout[-2000:])
        self.assertIn("STARTTLS", r.stdout)

    def test_python_smtplib_with_starttls(self):
        import ssl
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.starttls(context=ssl.create_default_context(cafile=self.pki.ca))
            s.ehlo("tls.test")
            self.assertFalse(s.has_extn("starttls"))  # not offered twice
            s.sendmail("a@example.org", ["support@example.com"], (HEADERS % "smtplib tls").encode())

    # SMTP smuggling (CVE-2023-51764 class): a relay passes its sender's
    # "\n.\n" (and the like) on as text and ends the message with its own
    # CRLF.CRLF. Nothing but CRLF.CRLF may end DATA, or the rest would be read
    # as commands: a second mail with a forged sender. One connection, one mail.
    SMUGGLED = ("MAIL FROM:<ceo@example.com>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
                "From: ceo@example.com\r\nSubject: smuggled\r\n\r\npay the invoice\r\n")
    SEQUENCES = ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\n.\r\r\n"]

    def stored(self, spool_id):
        path = wait_for(lambda: next((os.path.join(self.mailgate.spool, d, spool_id + ".eml")
                                      for d in ("queue", "done", "failed")
                                      if os.path.exists(os.path.join(self.mailgate.spool, d, spool_id + ".eml"))), None),
                        10, what="the stored message")
        with open(path, "rb") as f:
            return f.read()

    def all_replies(self, c):
        replies = []
        while True:
            code, text = c.reply()
            if code is None:
                return replies
            replies.append((code, text))

    def test_smuggling_inside_data_is_text_of_the_one_mail(self):
        for i, seq in enumerate(self.SEQUENCES):
            with self.subTest(sequence=repr(seq)):
                before = self.queued()
                c = self.conv()
                c.send("EHLO relay.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
                       "From: a@example.org\r\nSubject: first %d\r\nMessage-ID: <smuggle-%d@test>\r\n\r\nbody"
                       % (i, i) + seq + self.SMUGGLED + ".\r\nQUIT\r\n")
                replies = self.all_replies(c)
                self.assertEqual([code for code, _ in replies], [250, 250, 250, 354, 250, 221], replies)
                spool_id = replies[4][1].split()[-1]
                stored = self.stored(spool_id)
                self.assertIn(b"MAIL FROM:<ceo@example.com>\r\n", stored)
                self.assertIn(b"Subject: smuggled", stored)
                self.assertEqual(len(self.queued()), len(before) + 1)

    def test_smuggling_inside_bdat_is_bytes_of_the_one_mail(self):
        for i, seq in enumerate(self.SEQUENCES):
            with self.subTest(sequence=repr(seq)):
                before = self.queued()
                c = self.conv()
                chunk = ("Subject: chunk %d\r\nMessage-ID: <smuggle-bdat-%d@test>\r\n\r\nbody" % (i, i) + seq +
                         self.SMUGGLED).encode()
                c.send(b"EHLO relay.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n"
                       b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"QUIT\r\n")
                replies = self.all_replies(c)
                self.assertEqual([code for code, _ in replies], [250, 250, 250, 250, 221], replies)
                self.assertIn(chunk, self.stored(replies[3][1].split()[-1]))
                self.assertEqual(len(self.queued()), len(before) + 1)


class Lmtp(unittest.TestCase):
    def test_one_status_per_recipient(self):
        work = Workdir()
        self.addCleanup(work.cleanup)
        mg = Mailgate(work.path, protocol="lmtp", smtp_yaml="  max_message_size: 20KB\n").start()
        self.addCleanup(mg.stop)
        c = SmtpConversation(mg.port)
        self.addCleanup(c.close)
        self.assertIn("LMTP", c.greeting[1])
        self.assertEqual(c.command("EHLO x")[0], 500)
        self.assertEqual(c.command("LHLO x")[0], 250)
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<support@example.com>")
        c.command("RCPT TO:<other@help.example.com>")
        self.assertEqual(c.command("RCPT TO:<nope@elsewhere.test>")[0], 550)
        c.command("DATA")
        c.send(HEADERS % "lmtp" + "body\r\n.\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 250)
        # A refusal is also one reply per recipient.
        c.command("MAIL FROM:<a@example.org>")
        c.command("RCPT TO:<support@example.com>")
        c.command("RCPT TO:<other@help.example.com>")
        c.command("DATA")
        c.send(HEADERS % "too big" + ("z" * 998 + "\r\n") * 30 + ".\r\n")
        self.assertEqual(c.reply()[0], 552)
        self.assertEqual(c.reply()[0], 552)
        self.assertEqual(c.command("NOOP")[0], 250)
        # No mail smuggled inside another over LMTP either (see HostileSmtp).
        for seq in HostileSmtp.SEQUENCES:
            c.send("RSET\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<support@example.com>\r\n"
                   "RCPT TO:<other@help.example.com>\r\nDATA\r\nSubject: first\r\n\r\nbody" + seq +
                   HostileSmtp.SMUGGLED + ".\r\nNOOP\r\n")
            codes = [c.reply()[0] for _ in range(8)]
            self.assertEqual(codes, [250, 250, 250, 250, 354, 250, 250, 250], repr(seq))


if __name__ == "__main__":
    unittest.main()
