"""`mailgate check-config --connect` against the fake Messenger and a real
Dovecot: one line per check, ✓ or ✗ with the reason and the fix, exit 0
only when every check passes (69 otherwise)."""
import os, subprocess, time, unittest

from harness import MAILGATE, Dovecot, FakeMessenger, Pki, Workdir, free_port

EX_UNAVAILABLE = 69
OK, FAIL = "\u2713 ", "\u2717 "


class CheckConnect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir()
        cls.pki = Pki(cls.work.path)
        cls.fake = FakeMessenger(cls.pki)
        cls.dovecot = Dovecot(cls.work.path, cls.pki, users=[("support@example.com", "right-password")]).start()
        cls.dovecot.append(b"From: a@example.org\r\nSubject: one\r\n\r\nhello\r\n")
        cls.dovecot.append(b"From: a@example.org\r\nSubject: two\r\n\r\nhello\r\n")

    @classmethod
    def tearDownClass(cls):
        cls.dovecot.stop()
        cls.fake.stop()
        cls.work.cleanup()

    def setUp(self):
        self.dir = os.path.join(self.work.path, self.id().split(".")[-1])
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.spool)

    def secret_file(self, name, value):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(value + "\n")
        return path

    def config(self, api_key="test-api-key", secret="test-secret", mode="live", password="right-password",
               folder="INBOX", tls_key=None, spool=None, messenger_extra=""):
        messenger = ("messenger:\n  mode: %s\n  api_key: %s\n  secret_file: %s\n  auth_url: %s\n  ca_file: %s\n%s"
                     % (mode, api_key, self.secret_file("api-secret", secret), self.fake.auth_url, self.pki.ca,
                        messenger_extra))
        if mode == "dry-run" and not api_key:
            messenger = "messenger:\n  mode: dry-run\n"
        imap = self.dovecot.imap_yaml(name="support", password_file=self.secret_file("imap-pw", password),
                                      folder=folder)
        path = os.path.join(self.dir, "mailgate.yaml")
        with open(path, "w") as f:
            f.write("spool_dir: %s\n%s" % (spool or self.spool, messenger))
            f.write('smtp:\n  listen: ["127.0.0.1:%d"]\n  hostname: mx.test\n  accept: ["support@example.com"]\n'
                    '  tls:\n    cert_file: %s\n    key_file: %s\n' % (free_port(), self.pki.cert, tls_key or self.pki.key))
            f.write("imap:\n" + imap)
        return path

    def check(self, path):
        r = subprocess.run([MAILGATE, "check-config", "--connect", "--config", path], capture_output=True,
                           text=True, timeout=120)
        lines = r.stdout.splitlines()
        for line in lines[:-1] if r.returncode else lines:
            self.assertTrue(line.startswith((OK, FAIL, "- ")), "not a check line: %r\n%s" % (line, r.stdout))
        return r.returncode, lines, r.stdout + r.stderr

    def line(self, lines, prefix):
        found = [l for l in lines if l[2:].startswith(prefix) or l.startswith("- " + prefix)]
        self.assertEqual(len(found), 1, "one line for %r in %s" % (prefix, lines))
        return found[0]

    def assert_passed(self, lines, prefix):
        self.assertTrue(self.line(lines, prefix).startswith(OK), lines)

    def assert_failed(self, lines, prefix, reason, fix):
        """`✗ name: reason — fix`, with the reason and the fix given."""
        l = self.line(lines, prefix)
        self.assertTrue(l.startswith(FAIL), l)
        head, _, tail = l.partition(" \u2014 ")
        self.assertIn(reason, head)
        self.assertIn(fix, tail)

    # -- tests --
    def test_everything_reachable_passes_and_creates_nothing(self):
        before = len(self.fake.state()["tickets"])
        rc, lines, out = self.check(self.config())
        self.assertEqual(rc, 0, out)
        for prefix in ("configuration", "spool_dir " + self.spool, "smtp.tls " + self.pki.cert,
                       "messenger.ca_file " + self.pki.ca, "messenger " + self.fake.auth_url,
                       "imap support support@example.com@127.0.0.1:%d folder INBOX" % self.dovecot.port):
            self.assert_passed(lines, prefix)
        self.assertIn("2 messages in the folder", self.line(lines, "imap support"))
        self.assertEqual(len(self.fake.state()["tickets"]), before, "a check creates no ticket")
        self.assertFalse([f for f in os.listdir(self.spool)], "the spool check leaves nothing behind")
        # The IMAP check is read-only: nothing became \Seen.
        self.assertTrue(all("\\Seen" not in f for f in self.dovecot.flags().values()), self.dovecot.flags())

    def test_a_wrong_api_key_fails_with_its_fix(self):
        rc, lines, out = self.check(self.config(api_key="wrong-key"))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "messenger " + self.fake.auth_url, "HTTP 403", "check messenger.api_key")
        self.assert_passed(lines, "imap support")  # the other checks still run
        self.assertIn("1 check failed", lines[-1])

    def test_a_wrong_api_secret_fails_with_its_fix(self):
        rc, lines, out = self.check(self.config(secret="wrong-secret"))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "messenger " + self.fake.auth_url, "HTTP 400", "the secret")

    def test_an_unreachable_api_fails_within_its_bound(self):
        path = self.config()
        closed = "https://localhost:%d/v1" % free_port()
        with open(path) as f:
            text = f.read().replace(self.fake.auth_url, closed)
        with open(path, "w") as f:
            f.write(text)
        started = time.monotonic()
        rc, lines, out = self.check(path)
        self.assertLess(time.monotonic() - started, 60, "the API check is bounded (20 s of retries)")
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "messenger " + closed, "temporary", "that the API is reachable")
        self.assert_passed(lines, "imap support")

    def test_dry_run_without_credentials_skips_the_api_and_with_them_checks_it(self):
        rc, lines, out = self.check(self.config(mode="dry-run", api_key=""))
        self.assertEqual(rc, 0, out)
        self.assertIn("skipped", self.line(lines, "messenger"))
        # Credentials set in dry-run are checked: switching to live must be safe.
        rc, lines, out = self.check(self.config(mode="dry-run", api_key="wrong-key"))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "messenger " + self.fake.auth_url, "HTTP 403", "check messenger.api_key")

    def test_a_wrong_imap_password_fails_with_its_fix(self):
        rc, lines, out = self.check(self.config(password="wrong-password"))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "imap support", "refused", "password_file")
        self.assert_passed(lines, "messenger " + self.fake.auth_url)

    def test_a_missing_imap_folder_fails_with_its_fix(self):
        rc, lines, out = self.check(self.config(folder="Tickets"))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "imap support", "cannot select Tickets", "check folder")

    def test_a_key_of_another_certificate_fails(self):
        other = os.path.join(self.dir, "other.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-out", other], check=True, capture_output=True)
        rc, lines, out = self.check(self.config(tls_key=other))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "smtp.tls " + self.pki.cert, "does not belong to the certificate",
                           "smtp.tls.key_file")
        self.assert_passed(lines, "messenger.ca_file " + self.pki.ca)  # the other files are still checked

    def test_a_spool_dir_that_is_not_a_directory_fails(self):
        not_dir = self.secret_file("not-a-dir", "x")
        rc, lines, out = self.check(self.config(spool=not_dir))
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assert_failed(lines, "spool_dir " + not_dir, "not a directory", "writable by the user")

    def test_an_invalid_file_is_a_configuration_error_and_contacts_nothing(self):
        path = os.path.join(self.dir, "bad.yaml")
        with open(path, "w") as f:
            f.write("spool_dir: [\n")
        r = subprocess.run([MAILGATE, "check-config", "--connect", "--config", path], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 78, r.stdout + r.stderr)
        self.assertNotIn(OK, r.stdout)


if __name__ == "__main__":
    unittest.main()
