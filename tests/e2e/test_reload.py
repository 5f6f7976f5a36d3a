"""SIGHUP (`systemctl reload`) on a running `mailgate serve`: what can change
without dropping a connection is applied — accept list, SMTP session
settings, ticket defaults, log format, Messenger credentials, IMAP mailboxes
added, removed and changed — by the same process; an invalid file changes
nothing and says why; what cannot change live (listen addresses, spool_dir)
is named as needing a restart and is not applied."""
import json, os, shutil, signal, smtplib, socket, ssl, subprocess, time, unittest, uuid

from harness import Dovecot, DovecotTestCase, FakeMessenger, Mailgate, Pki, SmtpConversation, Workdir, free_port, wait_for

USERS = ["added", "removed", "changed"]


def mail(subject, to="support@example.com"):
    return ("From: Customer <customer@example.org>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@reload.test>\r\n"
            "\r\nhello\r\n" % (to, subject, uuid.uuid4())).encode()


class Reload(DovecotTestCase):
    DOVECOT_USERS = USERS

    def setUp(self):
        super().setUp()
        self.m = None

    def tearDown(self):
        if self.m:
            self.assertEqual(self.m.stop(), 0, "mailgate did not exit cleanly after the reloads")
        self.fake.stop()

    # -- helpers --
    def start(self, **kw):
        self.m = Mailgate(self.dir, self.fake, self.pki, **kw).start()
        self.pid = self.m.proc.pid
        return self.m

    def edit(self, old, new):
        with open(self.m.config) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(self.m.config, "w") as f:
            f.write(text.replace(old, new, 1))

    def append_config(self, text):
        with open(self.m.config, "a") as f:
            f.write(text)

    def log_lines(self, event):
        """Every log line of `event`, text or JSON, as a dict of its fields."""
        out = []
        for line in self.m.log_text().splitlines():
            if line.startswith("{"):
                j = json.loads(line)
                if j.get("event") == event:
                    out.append(j)
            else:
                parts = line.split(" ")
                if len(parts) >= 2 and parts[1] == event:
                    out.append(dict(p.split("=", 1) for p in parts[2:] if "=" in p))
        return out

    def reload(self, event="serve.reloaded"):
        """SIGHUP, then wait for one more `event` line; returns it."""
        before = len(self.log_lines(event))
        self.m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(self.log_lines(event)) > before, 20, what=event)
        self.assertIsNone(self.m.proc.poll(), "mailgate exited on SIGHUP")
        self.assertEqual(self.m.proc.pid, self.pid)
        return self.log_lines(event)[-1]

    def tickets(self, title):
        return [t for t in self.fake.state()["tickets"] if t["title"] == title]

    def wait_ticket(self, title, timeout=60):
        wait_for(lambda: self.tickets(title), timeout, what="ticket " + title)
        return self.tickets(title)[0]

    def box(self, name, password=None, folder="INBOX"):
        path = os.path.join(self.dir, "pw-" + name)
        with open(path, "w") as f:
            f.write((password or "secret-" + name) + "\n")
        return self.dovecot.imap_yaml(name=name, user="%s@example.com" % name, password_file=path, folder=folder)

    # -- tests --
    def test_live_keys_apply_to_the_open_session_and_the_next_ticket(self):
        self.start(extra_yaml="tickets:\n  defaults:\n    source: 5\n")
        live = SmtpConversation(self.m.port)
        self.assertEqual(live.command("EHLO client.test")[0], 250)
        self.assertEqual(live.command("MAIL FROM:<customer@example.org>")[0], 250)
        self.assertEqual(live.command("RCPT TO:<support@example.com>")[0], 250)

        self.edit('accept: ["support@example.com", "@help.example.com"]',
                  'accept: ["support@example.com", "new@example.com"]')
        self.edit("hostname: mx.test", "hostname: mx2.test")
        self.edit("    source: 5\n", "    source: 7\n")
        self.append_config("log:\n  format: json\n")
        line = self.reload()
        changed = line["changed"].split(",")
        for key in ("smtp.accept", "smtp.hostname", "tickets.defaults", "log.format"):
            self.assertIn(key, changed)
        self.assertEqual(self.log_lines("serve.reload_needs_restart"), [])
        self.assertEqual(len(self.log_lines("serve.ready")), 1, "the daemon restarted")

        # The session opened before the reload goes on, under the new list.
        self.assertEqual(live.command("RCPT TO:<new@example.com>")[0], 250)
        self.assertEqual(live.command("DATA")[0], 354)
        live.send(mail("across the reload", "new@example.com") + b".\r\n")
        self.assertEqual(live.reply()[0], 250)
        live.command("QUIT")
        live.close()
        self.assertEqual(self.wait_ticket("across the reload").get("source"), 7)

        fresh = SmtpConversation(self.m.port)
        self.assertIn("mx2.test", fresh.greeting[1])
        fresh.command("EHLO client.test")
        fresh.command("MAIL FROM:<customer@example.org>")
        self.assertEqual(fresh.command("RCPT TO:<someone@help.example.com>")[0], 550)  # dropped from the list
        self.assertEqual(fresh.command("RCPT TO:<support@example.com>")[0], 250)
        fresh.command("QUIT")
        fresh.close()

    def test_an_invalid_file_changes_nothing_and_says_where(self):
        self.start()
        self.edit('accept: ["support@example.com", "@help.example.com"]', 'accept: ["other@example.com"]')
        self.edit("  hostname: mx.test\n", "  hostname: mx.test\n  no_such_key: 1\n")
        failed = self.reload("serve.reload_failed")
        self.assertRegex(failed["error"], r"mailgate\.yaml:\d+:\d+:")
        self.assertIn("no_such_key", self.m.log_text())
        self.assertEqual(self.log_lines("serve.reloaded"), [])
        c = SmtpConversation(self.m.port)
        c.command("EHLO client.test")
        c.command("MAIL FROM:<customer@example.org>")
        self.assertEqual(c.command("RCPT TO:<support@example.com>")[0], 250)  # the old list still holds
        self.assertEqual(c.command("RCPT TO:<other@example.com>")[0], 550)
        c.close()

    def test_listen_and_spool_dir_are_named_and_not_applied(self):
        self.start()
        other = free_port()
        self.edit('listen: ["127.0.0.1:%d"]' % self.m.port, 'listen: ["127.0.0.1:%d"]' % other)
        self.edit("spool_dir: %s" % self.m.spool, "spool_dir: %s-elsewhere" % self.m.spool)
        self.edit("hostname: mx.test", "hostname: mx3.test")
        line = self.reload()
        self.assertEqual(line["changed"], "smtp.hostname")
        restart = self.log_lines("serve.reload_needs_restart")
        self.assertEqual(len(restart), 1)
        self.assertEqual(sorted(restart[0]["keys"].split(",")), ["smtp.listen", "spool_dir"])
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", other), timeout=2).close()
        c = SmtpConversation(self.m.port)  # still on the old port
        self.assertIn("mx3.test", c.greeting[1])
        c.close()
        self.assertFalse(os.path.exists(self.m.spool + "-elsewhere"))
        # Reloaded again, the restart-only keys are still named: they still differ from what runs.
        self.edit("hostname: mx3.test", "hostname: mx4.test")
        self.reload()
        self.assertEqual(sorted(self.log_lines("serve.reload_needs_restart")[-1]["keys"].split(",")),
                         ["smtp.listen", "spool_dir"])

    def test_new_messenger_credentials_are_used_by_the_next_session(self):
        self.start()
        c = SmtpConversation(self.m.port)
        c.command("EHLO client.test")
        c.command("MAIL FROM:<customer@example.org>")
        c.command("RCPT TO:<support@example.com>")
        c.command("DATA")
        c.send(mail("before the key changed") + b".\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.close()
        self.wait_ticket("before the key changed")
        self.assertEqual(self.log_lines("api.auth_rejected"), [])
        # The token of the first session is still valid for 20 minutes: only
        # a dropped session makes the next call authenticate with the new key.
        self.edit("api_key: test-api-key", "api_key: revoked-api-key")
        line = self.reload()
        self.assertIn("messenger.api_key", line["changed"].split(","))
        c = SmtpConversation(self.m.port)
        c.command("EHLO client.test")
        c.command("MAIL FROM:<customer@example.org>")
        c.command("RCPT TO:<support@example.com>")
        c.command("DATA")
        c.send(mail("after the key changed") + b".\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.close()
        wait_for(lambda: self.log_lines("api.auth_rejected"), 30, what="the new key used and refused")
        self.assertEqual(self.tickets("after the key changed"), [])

    def served_certificate(self):
        """The certificate a new session's STARTTLS presents (DER)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.m.port, timeout=30) as s:
            s.starttls(context=ctx)
            return s.sock.getpeercert(binary_form=True)

    @staticmethod
    def der(path):
        with open(path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def test_a_renewed_certificate_is_taken_and_a_bad_one_refused(self):
        cert, key = os.path.join(self.dir, "smtp.pem"), os.path.join(self.dir, "smtp.key")
        shutil.copy(self.pki.cert, cert)
        shutil.copy(self.pki.key, key)
        self.start(smtp_yaml="  tls:\n    cert_file: %s\n    key_file: %s\n" % (cert, key))
        self.assertEqual(self.served_certificate(), self.der(self.pki.cert))
        # A TLS session open across both reloads.
        live = smtplib.SMTP("127.0.0.1", self.m.port, timeout=30)
        ctx = ssl.create_default_context(cafile=self.pki.ca)
        live.starttls(context=ctx)
        live.ehlo("client.test")

        # certbot renewed it in place: same paths, new key and certificate.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=renewed"],
                       check=True, capture_output=True)
        self.reload()
        self.assertEqual(self.served_certificate(), self.der(cert))
        self.assertNotEqual(self.der(cert), self.der(self.pki.cert))

        # A key file that holds no key: refused, together with the rest of the file.
        self.edit("key_file: %s" % key, "key_file: %s" % self.pki.ca)
        self.edit("hostname: mx.test", "hostname: mx5.test")
        failed = self.reload("serve.reload_failed")
        self.assertIn("smtp.tls", failed["error"])
        self.assertEqual(self.served_certificate(), self.der(cert))
        c = SmtpConversation(self.m.port)
        self.assertNotIn("mx5.test", c.greeting[1])
        c.close()
        self.assertEqual(live.noop()[0], 250)
        live.quit()

    def test_imap_mailboxes_added_changed_and_removed(self):
        self.start(imap_yaml=self.box("removed") + self.box("changed", password="wrong-password"))
        self.dovecot.append(mail("removed before"), user="removed@example.com")
        self.wait_ticket("removed before")
        self.dovecot.append(mail("changed mailbox"), user="changed@example.com")

        with open(self.m.config) as f:
            text = f.read()
        text = text[:text.index("imap:\n")] + "imap:\n" + self.box("added") + self.box("changed")
        with open(self.m.config, "w") as f:
            f.write(text)
        line = self.reload()
        self.assertEqual(sorted(line["changed"].split(",")),
                         ["imap.added(added)", "imap.changed(changed)", "imap.removed(removed)"])

        self.dovecot.append(mail("added after"), user="added@example.com")
        self.wait_ticket("added after")
        self.wait_ticket("changed mailbox")  # the new password logs in
        self.dovecot.append(mail("removed after"), user="removed@example.com")
        time.sleep(4)  # the removed mailbox polled every second: it would have taken it by now
        self.assertEqual(self.tickets("removed after"), [])
        flags = self.dovecot.flags(user="removed@example.com")
        self.assertEqual(len(flags), 2)
        self.assertNotIn("\\Seen", flags[max(flags)])


if __name__ == "__main__":
    unittest.main()
