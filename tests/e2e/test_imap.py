"""IMAP ingest against a real Dovecot on 127.0.0.1: mail in a mailbox →
`mailgate serve` → the fake Messenger. Each test uses its own Dovecot user
(mailbox), its own mailgate and its own fake, so they cannot see each other."""
import http.server, json, os, re, socket, subprocess, threading, time, unittest, urllib.parse, uuid

from harness import (Dovecot, FakeMessenger, Mailgate, Pki, Workdir, assert_golden_tickets, corpus, corpus_names,
                     wait_for)

USERS = ["corpus", "move", "delete", "idle", "seen", "tls", "starttls", "wrongca", "crash", "restart", "badpw",
         "good", "uidv", "drop", "full"]


def mail(subject, body="hello", size=0):
    mid = "<%s@imap.test>" % uuid.uuid4()
    text = ("From: Customer <customer@example.org>\r\nTo: support@example.com\r\nSubject: %s\r\n"
            "Message-ID: %s\r\n\r\n%s\r\n" % (subject, mid, body))
    if size:
        text += ("x" * 76 + "\r\n") * (size // 78)
    return text.encode()


class DropAfter:
    """A TCP proxy to Dovecot that cuts its first connection once `limit`
    bytes have come from the server: a connection dropped mid-FETCH."""
    def __init__(self, target_port, limit):
        self.target, self.limit, self.cut = target_port, limit, False
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            cut_this = not self.cut
            self.cut = True
            threading.Thread(target=self.pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, self.limit if cut_this else None),
                             daemon=True).start()

    @staticmethod
    def pipe(src, dst, limit):
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[:limit - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()


class ImapIngest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir()
        cls.pki = Pki(cls.work.path)
        cls.dovecot = Dovecot(cls.work.path, cls.pki,
                              users=[("%s@example.com" % u, "secret-" + u) for u in USERS]).start()

    @classmethod
    def tearDownClass(cls):
        cls.dovecot.stop()
        cls.work.cleanup()

    def setUp(self):
        self.dir = os.path.join(self.work.path, self.id().split(".")[-1])
        os.makedirs(self.dir)
        self.fake = FakeMessenger(self.pki)
        self.mailgates = []

    def tearDown(self):
        for m in self.mailgates:
            m.stop()
        self.fake.stop()

    # -- helpers --
    def user(self, name):
        return "%s@example.com" % name

    def password_file(self, name, password=None):
        path = os.path.join(self.dir, "pw-" + name)
        with open(path, "w") as f:
            f.write((password or "secret-" + name) + "\n")
        return path

    def box(self, name, **kw):
        if "password_file" not in kw:
            kw["password_file"] = self.password_file(name)
        return self.dovecot.imap_yaml(name=name, user=self.user(name), **kw)

    def start(self, imap_yaml, env=None, extra_yaml=""):
        m = Mailgate(self.dir, self.fake, self.pki, imap_yaml=imap_yaml, extra_yaml=extra_yaml)
        if env:
            old = dict(os.environ)
            os.environ.update(env)
            try:
                m.start()
            finally:
                os.environ.clear()
                os.environ.update(old)
        else:
            m.start()
        self.mailgates.append(m)
        return m

    def append(self, name, raw, folder="INBOX", flags=""):
        self.dovecot.append(raw, folder=folder, flags=flags, user=self.user(name))

    def tickets(self, title=None):
        ts = self.fake.state()["tickets"]
        return [t for t in ts if title is None or t["title"] == title]

    def wait_tickets(self, n, timeout=60):
        wait_for(lambda: len(self.tickets()) >= n, timeout, what="%d tickets" % n)
        time.sleep(0.5)  # nothing more may come
        return self.tickets()

    def folder_flags(self, name, folder="INBOX"):
        return self.dovecot.flags(folder=folder, user=self.user(name))

    # -- tests --
    def test_corpus_in_the_inbox_becomes_the_golden_tickets_once_and_is_marked_seen(self):
        names = corpus_names()
        for n in names:
            self.append("corpus", corpus(n))
        m = self.start(self.box("corpus"))
        expected = sum(1 for n in names if __import__("harness").golden(n)["ignored"] is None)
        self.wait_tickets(expected, timeout=120)
        wait_for(lambda: len(self.folder_flags("corpus")) == len(names) and
                 all("\\Seen" in f for f in self.folder_flags("corpus").values()), 30, what="all \\Seen")
        assert_golden_tickets(self, self.fake.state(), names)
        # A restart fetches nothing again: the UID mark is persistent.
        m.stop()
        m2 = self.start(self.box("corpus"))
        wait_for(lambda: "imap.selected mailbox=corpus" in m2.log_text().split("serve.stopped")[-1], 30)
        time.sleep(1)
        self.assertEqual(len(self.tickets()), expected)
        self.assertNotIn("imap.message", m2.log_text().split("serve.stopped")[-1])

    def test_after_import_move_creates_the_folder_and_empties_the_inbox(self):
        for i in range(3):
            self.append("move", mail("move %d" % i))
        m = self.start(self.box("move", after_import="move:Archive"))
        self.wait_tickets(3)
        wait_for(lambda: self.folder_flags("move") == {}, 30, what="an empty INBOX")
        self.assertEqual(len(self.folder_flags("move", folder="Archive")), 3)
        self.assertIn("imap.folder_created mailbox=move folder=Archive result=ok", m.log_text())

    def test_after_import_delete_empties_the_inbox(self):
        for i in range(3):
            self.append("delete", mail("delete %d" % i))
        self.start(self.box("delete", after_import="delete"))
        self.wait_tickets(3)
        wait_for(lambda: self.folder_flags("delete") == {}, 30, what="an empty INBOX")

    def test_idle_turns_a_new_message_into_a_ticket_within_two_seconds(self):
        m = self.start(self.box("idle", poll="300s"))
        wait_for(lambda: "imap.selected mailbox=idle" in m.log_text() and "idle=yes" in m.log_text(), 30)
        time.sleep(0.5)  # IDLE is running
        started = time.monotonic()
        self.append("idle", mail("idle arrival"))
        wait_for(lambda: self.tickets("idle arrival"), 10, interval=0.02)
        elapsed = time.monotonic() - started
        print("IDLE: appended → ticket in %.2fs" % elapsed)
        self.assertLess(elapsed, 2.0)

    def test_a_message_already_read_by_a_person_is_still_imported(self):
        self.append("seen", mail("read first"), flags="(\\Seen)")
        self.start(self.box("seen"))
        self.assertEqual(len(self.wait_tickets(1)), 1)

    def test_imaps_and_starttls_with_the_test_ca(self):
        self.append("tls", mail("over imaps"))
        self.append("starttls", mail("over starttls"))
        m = self.start(self.box("tls", security="tls", ca_file=self.pki.ca) +
                       self.box("starttls", security="starttls", ca_file=self.pki.ca))
        self.wait_tickets(2)
        with open(os.path.join(self.dovecot.dir, "dovecot.log")) as f:
            log = f.read()
        self.assertRegex(log, r"Login: user=<tls@example.com>.*TLS")
        self.assertRegex(log, r"Login: user=<starttls@example.com>.*TLS")
        self.assertIn("imap.logged_in mailbox=tls", m.log_text())

    def test_a_certificate_from_another_ca_refuses_to_log_in(self):
        other = os.path.join(self.dir, "other-ca")
        os.makedirs(other)
        other_pki = Pki(other)
        self.append("wrongca", mail("must not arrive"))
        m = self.start(self.box("wrongca", security="tls", ca_file=other_pki.ca))
        wait_for(lambda: "TLS handshake with localhost failed" in m.log_text(), 30)
        self.assertIn("unable to get local issuer certificate", m.log_text())
        with open(os.path.join(self.dovecot.dir, "dovecot.log")) as f:
            self.assertIn("alert unknown ca", f.read())
        self.assertNotIn("imap.logged_in", m.log_text())
        self.assertEqual(self.tickets(), [])

    def test_crash_between_spool_fsync_and_seen_makes_no_duplicate(self):
        for i in range(5):
            self.append("crash", mail("crash %d" % i))
        m = Mailgate(self.dir, self.fake, self.pki, imap_yaml=self.box("crash"))
        os.environ["MAILGATE_FAILPOINT"] = "imap_after_spool_commit"
        try:
            m.start()
        finally:
            del os.environ["MAILGATE_FAILPOINT"]
        wait_for(lambda: m.proc.poll() is not None, 30, what="the failpoint to kill mailgate")
        m.log.close()
        self.assertTrue(all("\\Seen" not in f for f in self.folder_flags("crash").values()))
        m2 = self.start(self.box("crash"))
        self.wait_tickets(5)
        wait_for(lambda: all("\\Seen" in f for f in self.folder_flags("crash").values()), 30)
        self.assertEqual(sorted(t["title"] for t in self.tickets()), ["crash %d" % i for i in range(5)])
        self.assertIn("result=duplicate", m2.log_text())

    def test_dovecot_restarting_under_mailgate(self):
        m = self.start(self.box("restart", poll="1s"))
        wait_for(lambda: "imap.selected mailbox=restart" in m.log_text(), 30)
        self.dovecot.stop()
        try:
            wait_for(lambda: "imap.error mailbox=restart" in m.log_text(), 30, what="the outage noticed")
        finally:
            self.dovecot.start()
        self.append("restart", mail("after the outage"))
        self.assertEqual(len(self.wait_tickets(1, timeout=90)), 1)

    def test_wrong_password_backs_off_while_another_mailbox_works(self):
        m = self.start(self.box("badpw", password_file=self.password_file("badpw", "wrong")) + self.box("good"))
        self.append("good", mail("good box works"))
        self.wait_tickets(1)
        time.sleep(6)
        log = m.log_text()
        failures = log.count("imap.auth_failed mailbox=badpw")
        self.assertIn("refused", log)
        # 1 s, 2 s, 4 s … with jitter: at most four attempts in ~7 s, not a tight loop.
        self.assertGreaterEqual(failures, 2)
        self.assertLessEqual(failures, 5)
        self.assertEqual([t["title"] for t in self.tickets()], ["good box works"])

    def test_uidvalidity_change_loses_nothing_and_duplicates_nothing(self):
        c = self.dovecot.client(self.user("uidv"))
        c.create("Support")
        c.logout()
        first = [mail("uidv %d" % i) for i in range(2)]
        for raw in first:
            self.append("uidv", raw, folder="Support")
        m = self.start(self.box("uidv", folder="Support", poll="1s", idle=False))
        self.wait_tickets(2)
        # The mailbox is deleted and recreated: new UIDVALIDITY, same mail, one new.
        c = self.dovecot.client(self.user("uidv"))
        c.delete("Support")
        c.create("Support")
        c.logout()
        for raw in first + [mail("uidv new")]:
            self.append("uidv", raw, folder="Support")
        wait_for(lambda: self.tickets("uidv new"), 60)
        time.sleep(1.5)
        self.assertEqual(sorted(t["title"] for t in self.tickets()), ["uidv 0", "uidv 1", "uidv new"])
        self.assertIn("imap.uidvalidity_changed mailbox=uidv", m.log_text())

    def test_a_spool_that_refuses_mail_leaves_it_unread_in_the_mailbox(self):
        for i in range(2):
            self.append("full", mail("full %d" % i))
        m = self.start(self.box("full"), extra_yaml="  max_size: 1\n")  # queue.max_size: nothing fits
        wait_for(lambda: "the spool refuses mail: spool queue full" in m.log_text(), 30)
        self.assertEqual(self.tickets(), [])
        self.assertTrue(all("\\Seen" not in f for f in self.folder_flags("full").values()))
        m.stop()
        self.start(self.box("full"))  # room again: both arrive, once
        self.assertEqual(sorted(t["title"] for t in self.wait_tickets(2)), ["full 0", "full 1"])

    def test_connection_dropped_mid_fetch_of_a_large_message(self):
        self.append("drop", mail("large one", size=3 * 1024 * 1024))
        proxy = DropAfter(self.dovecot.port, 1024 * 1024)
        try:
            m = self.start(self.box("drop", port=proxy.port))
            self.assertEqual(len(self.wait_tickets(1, timeout=60)), 1)
        finally:
            proxy.close()
        self.assertIn("imap.error mailbox=drop", m.log_text())
        self.assertEqual(os.listdir(os.path.join(m.spool, "tmp")), [])


class ScriptedImap:
    """A small IMAP server for what Dovecot never does: a body sent as a
    quoted string, and a UID FETCH answer that leaves out a message the
    SEARCH listed (a server fault, or an expunge between the two)."""
    def __init__(self, messages, omit_once=()):
        self.messages, self.omit = dict(messages), set(omit_once)
        self.stored = []  # the UID sets of every UID STORE
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    @staticmethod
    def uids_of(spec, known):
        out = []
        for part in spec.split(","):
            lo, _, hi = part.partition(":")
            top = max(known) if hi == "*" else int(hi or lo)
            out += [u for u in known if int(lo) <= u <= top]
        return out

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS] scripted\r\n")
        for line in f:
            tag, cmd, *rest = line.decode().strip().split(" ", 2)
            arg = rest[0] if rest else ""
            cmd = (cmd + " " + arg.split(" ")[0]).upper() if cmd.upper() == "UID" else cmd.upper()
            out = b""
            if cmd == "SELECT":
                out = b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % len(self.messages)
            elif cmd == "UID SEARCH":
                out = b"* SEARCH %s\r\n" % " ".join(map(str, self.uids_of(arg.split()[-1], sorted(self.messages)))).encode()
            elif cmd == "UID FETCH":
                for uid in self.uids_of(arg.split()[1], sorted(self.messages)):
                    if uid in self.omit:
                        self.omit.discard(uid)
                        continue
                    body = self.messages[uid]
                    value = b'"%s"' % body if b"\n" not in body else b"{%d}\r\n%s" % (len(body), body)
                    out += b"* %d FETCH (UID %d BODY[] %s)\r\n" % (uid, uid, value)
            elif cmd == "UID STORE":
                self.stored.append(arg.split()[1])
            elif cmd == "LOGOUT":
                conn.sendall(b"* BYE bye\r\n%s OK done\r\n" % tag.encode())
                break
            conn.sendall(out + b"%s OK done\r\n" % tag.encode())
        conn.close()

    def close(self):
        self.listener.close()


class ServerQuirks(unittest.TestCase):
    def test_quoted_bodies_are_imported_and_an_unreturned_uid_is_never_acknowledged(self):
        work = Workdir()
        quoted = b"Subject: a whole message on one line"
        server = ScriptedImap({1: quoted, 2: mail("second")}, omit_once={2})
        m = None
        try:
            pw = os.path.join(work.path, "pw")
            with open(pw, "w") as f:
                f.write("x\n")
            m = Mailgate(work.path, imap_yaml="  - {name: quirky, host: 127.0.0.1, port: %d, security: none, "
                         "username: u, password_file: %s, idle: false, poll_interval: 1s, after_import: delete}\n"
                         % (server.port, pw)).start()
            wait_for(lambda: server.stored == ["1", "2"], 30, what="UID 1, then UID 2 on the next session")
            log = m.log_text()
            self.assertIn("no body for UID 2", log)
            self.assertIn("imap.message mailbox=quirky uid=1", log)
            self.assertIn("imap.message mailbox=quirky uid=2", log)
            raws = []
            for state in ("queue", "done"):
                d = os.path.join(m.spool, state)
                for n in os.listdir(d):
                    if n.endswith(".eml"):
                        with open(os.path.join(d, n), "rb") as f:
                            raws.append(f.read())
            self.assertIn(quoted, raws)  # the quoted body, byte for byte
            self.assertEqual(len(raws), 2)
        finally:
            if m:
                m.stop()
            server.close()
            work.cleanup()


class TokenIntrospection(http.server.ThreadingHTTPServer):
    """What Dovecot's oauth2 passdb asks (RFC 7662 introspection): is this
    token active, and whose is it. Only tokens in `valid` are."""
    def __init__(self):
        self.valid, self.asked = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                token = urllib.parse.parse_qs(body).get("token", [""])[0]
                server.asked.append(token)
                out = json.dumps({"active": token in server.valid, "username": server.valid.get(token, "")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Xoauth2(unittest.TestCase):
    """AUTHENTICATE XOAUTH2 (Microsoft 365, Gmail) against Dovecot's oauth2
    passdb: the token comes from a file or a command, and a rejected token is
    read again at the next login — a refreshed one is picked up."""
    def test_a_rejected_token_is_read_again_and_the_new_one_logs_in(self):
        work = Workdir()
        pki = Pki(work.path)
        introspection = TokenIntrospection()
        dovecot = Dovecot(work.path, pki, users=[("file@example.com", "x"), ("cmd@example.com", "y")],
                          oauth2_introspection_url="http://127.0.0.1:%d/introspect" % introspection.server_port,
                          name="dovecot-oauth").start()
        fake = FakeMessenger(pki)
        m = None
        try:
            dovecot.append(mail("via token file"), user="file@example.com")
            dovecot.append(mail("via token command"), user="cmd@example.com")
            token_file = os.path.join(work.path, "token")
            with open(token_file, "w") as f:
                f.write("expired-token\n")
            cmd_token = os.path.join(work.path, "cmd-token")
            with open(cmd_token, "w") as f:
                f.write("cmd-token-1\n")
            introspection.valid["cmd-token-1"] = "cmd@example.com"
            boxes = ("  - {name: file, host: 127.0.0.1, port: %d, security: none, username: file@example.com, "
                     "auth: xoauth2, token_file: %s}\n"
                     "  - {name: cmd, host: 127.0.0.1, port: %d, security: none, username: cmd@example.com, "
                     "auth: xoauth2, token_command: 'cat %s'}\n" % (dovecot.port, token_file, dovecot.port, cmd_token))
            m = Mailgate(work.path, fake, pki, imap_yaml=boxes).start()
            wait_for(lambda: any(t["title"] == "via token command" for t in fake.state()["tickets"]), 30)
            wait_for(lambda: "imap.auth_failed mailbox=file" in m.log_text(), 30, what="the expired token refused")
            # The token is refreshed (as an OAuth helper would): the next login uses it.
            introspection.valid["fresh-token"] = "file@example.com"
            with open(token_file, "w") as f:
                f.write("fresh-token\n")
            wait_for(lambda: any(t["title"] == "via token file" for t in fake.state()["tickets"]), 60)
            self.assertIn("expired-token", introspection.asked)
            self.assertIn("fresh-token", introspection.asked)
            self.assertNotIn("fresh-token", m.log_text())  # tokens never reach the log
            self.assertNotIn("expired-token", m.log_text())
        finally:
            if m:
                m.stop()
            fake.stop()
            dovecot.stop()
            introspection.shutdown()
            work.cleanup()


if __name__ == "__main__":
    unittest.main()
