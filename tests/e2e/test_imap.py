"""IMAP ingest against a real Dovecot on 127.0.0.1: mail in a mailbox →
`mailgate serve` → the fake Messenger. Each test uses its own Dovecot user
(mailbox), its own mailgate and its own fake, so they cannot see each other."""
import http.server, json, os, re, socket, subprocess, threading, time, unittest, urllib.parse, uuid

from harness import (Dovecot, DovecotTestCase, FakeMessenger, Mailgate, Pki, Workdir, assert_golden_tickets, corpus, corpus_names,
                     free_port, wait_for)

USERS = ["corpus", "move", "delete", "idle", "seen", "tls", "starttls", "wrongca", "crash", "restart", "badpw",
         "good", "uidv", "drop", "full", "big", "bigmove", "notmail"]


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
        DropAfter.close_both(src, dst)

    @staticmethod
    def close_both(*sockets):
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()


class ImapIngest(DovecotTestCase):
    DOVECOT_USERS = USERS

    def setUp(self):
        super().setUp()
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
        # The mailbox is replaced, as when restored from a backup: new UIDVALIDITY, same mail, one new.
        # The replacement is filled first and renamed into place: Dovecot's maildir can refuse an APPEND
        # into a just-recreated folder while mailgate's session still has the old one selected
        # ("Mailbox was deleted under us"), a race of the server's, not of what is tested here.
        c = self.dovecot.client(self.user("uidv"))
        c.create("Replacement")
        c.logout()
        for raw in first + [mail("uidv new")]:
            self.append("uidv", raw, folder="Replacement")
        c = self.dovecot.client(self.user("uidv"))
        try:
            self.assertEqual(c.delete("Support")[0], "OK")
            self.assertEqual(c.rename("Replacement", "Support")[0], "OK")
        finally:
            c.logout()
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

    def test_a_message_over_max_message_size_is_skipped_left_unread_and_recorded(self):
        self.append("big", mail("small before"))
        self.append("big", mail("too large", size=300 * 1024))
        self.append("big", mail("small after"))
        m = self.start(self.box("big", extra="    max_message_size: 100KB\n"))
        self.assertEqual(sorted(t["title"] for t in self.wait_tickets(2)), ["small after", "small before"])
        wait_for(lambda: sorted("\\Seen" in f for f in self.folder_flags("big").values()) == [False, True, True], 30,
                 what="the two small ones \\Seen, the large one untouched")
        self.assertIn("imap.message_too_large mailbox=big uid=2", m.log_text())
        self.assertIn("action=kept", m.log_text())
        self.assertEqual(spool_db(m, "SELECT uid, reason FROM imap_skipped WHERE mailbox='big'"),
                         [(2, "larger than max_message_size")])
        # The mailbox moved on: a restart neither fetches nor reports it again.
        m.stop()
        m2 = self.start(self.box("big", extra="    max_message_size: 100KB\n"))
        self.append("big", mail("later"))
        self.wait_tickets(3)
        after = m2.log_text().split("serve.stopped")[-1]
        self.assertNotIn("imap.message_too_large", after)
        self.assertIn("imap.message mailbox=big uid=4", after)

    def test_an_oversized_message_can_be_moved_to_its_own_folder(self):
        self.append("bigmove", mail("fits"))
        self.append("bigmove", mail("does not fit", size=300 * 1024))
        m = self.start(self.box("bigmove", extra="    max_message_size: 100KB\n    oversized: move:Oversized\n"))
        self.assertEqual([t["title"] for t in self.wait_tickets(1)], ["fits"])
        wait_for(lambda: len(self.folder_flags("bigmove")) == 1, 30, what="the large one moved out of the INBOX")
        self.assertEqual(len(self.folder_flags("bigmove", folder="Oversized")), 1)
        self.assertIn("action=moved:Oversized", m.log_text())

    def test_a_non_mail_between_two_mails_is_kept_in_failed_with_its_reason_and_marked_seen(self):
        # SMTP refuses such input (554 5.6.0) and deliver exits 65; IMAP has
        # no one to refuse it to, so it is spooled and acknowledged like any
        # message, and the pipeline's classify_mail sends it to failed/.
        non_mail = b"just some text\r\nno header here\r\n"
        self.append("notmail", mail("before the non-mail"))
        self.append("notmail", non_mail)
        self.append("notmail", mail("after the non-mail"))
        m = self.start(self.box("notmail"))
        spool_id = wait_for(lambda: re.search(r"imap.message mailbox=notmail uid=2 spool_id=(\S+) result=queued",
                                              m.log_text()), 30, what="the non-mail spooled").group(1)
        failed = wait_for(lambda: json.loads(m.queue("list", "--failed", "--json").stdout), 60,
                          what="the non-mail failed")
        self.assertEqual([(f["id"], f["source"]) for f in failed], [(spool_id, "imap:notmail")])
        self.assertIn("not an email message: no RFC 5322 header fields", failed[0]["reason"])
        kept = os.path.join(m.spool, "failed", spool_id + ".eml")
        wait_for(lambda: os.path.exists(kept), 30, what="the file moved to failed/")  # moved after the row changes
        with open(kept, "rb") as f:
            self.assertEqual(f.read(), non_mail)
        self.assertIn('warn pipeline.not_a_mail spool_id=%s reason="not an email message: no RFC 5322 header fields'
                      % spool_id, m.log_text())
        self.assertEqual(sorted(t["title"] for t in self.wait_tickets(2)),
                         ["after the non-mail", "before the non-mail"])
        # Acknowledged and passed by the mark like its neighbours: never fetched again.
        wait_for(lambda: ["\\Seen" in f for _, f in sorted(self.folder_flags("notmail").items())] == [True] * 3, 30,
                 what="all three \\Seen")
        wait_for(lambda: spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='notmail'") == [(3,)], 30,
                 what="the mark at UID 3")
        self.assertEqual(m.log_text().count("imap.message mailbox=notmail uid=2 "), 1)


class ScriptedImap:
    """A small IMAP server for what Dovecot never does: a body sent as a
    quoted string, a UID FETCH answer that leaves out a message the SEARCH
    listed (a server fault, or an expunge between the two), and the hostile
    or broken servers of issue 13: floods of untagged data, bodies nobody
    asked for, UIDs beyond 32 bits, a size that lies, a connection dropped
    at the STORE. Each behaviour is a keyword; sessions are counted."""
    def __init__(self, messages, omit_once=(), search_flood=None, extra_uids_once=(), unsolicited=0,
                 drop_store_once=False, fail_body_fetch=False, size_lie=False, duplicate_bodies=False):
        self.messages, self.omit = dict(messages), set(omit_once)
        self.search_flood = search_flood  # bytes of one untagged line, sent forever after UID SEARCH
        self.extra_uids_once = list(extra_uids_once)  # listed and "returned" in the first session only
        self.unsolicited = unsolicited  # bodies for UIDs never asked for, with each body FETCH
        self.drop_store_once, self.fail_body_fetch = drop_store_once, fail_body_fetch
        self.size_lie, self.duplicate_bodies = size_lie, duplicate_bodies
        self.stored = []  # the UID sets of every UID STORE
        self.sessions = 0
        self.floods = []  # bytes of untagged flood sent in each session before the client hung up
        self.flood_ended = threading.Event()
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
            self.sessions += 1
            threading.Thread(target=self.session, args=(conn, self.sessions), daemon=True).start()

    @staticmethod
    def uids_of(spec, known):
        out = []
        for part in spec.split(","):
            lo, _, hi = part.partition(":")
            top = max(known) if hi == "*" else int(hi or lo)
            out += [u for u in known if int(lo) <= u <= top]
        return out

    def flood(self, conn):
        line = b"* SEARCH " + b" ".join(b"%d" % (i % 1000 + 1) for i in range(self.search_flood // 5)) + b"\r\n"
        if self.search_flood < 64:
            line = b"* 1 EXISTS\r\n"
        chunk = line * max(1, 65536 // len(line))
        sent = 0
        try:
            while True:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:
            self.floods.append(sent)
            self.flood_ended.set()

    def session(self, conn, number):
        f = conn.makefile("rb")
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS] scripted\r\n")
        messages = dict(self.messages)
        if number == 1:
            messages.update({u: mail("extra %d" % u) for u in self.extra_uids_once})
        for line in f:
            tag, cmd, *rest = line.decode().strip().split(" ", 2)
            arg = rest[0] if rest else ""
            cmd = (cmd + " " + arg.split(" ")[0]).upper() if cmd.upper() == "UID" else cmd.upper()
            out = b""
            if cmd == "SELECT":
                out = b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % len(messages)
            elif cmd == "UID SEARCH" and self.search_flood:
                self.flood(conn)
                break
            elif cmd == "UID SEARCH":
                found = self.uids_of(arg.split()[-1], sorted(messages)) if messages else []
                out = b"* SEARCH %s\r\n" % " ".join(map(str, found)).encode()
            elif cmd == "UID FETCH" and "RFC822.SIZE" in arg:
                for uid in self.uids_of(arg.split()[1], sorted(messages)):
                    size = 100 if self.size_lie else len(messages[uid])
                    out += b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (uid, uid, size)
            elif cmd == "UID FETCH" and self.fail_body_fetch:
                out = b"* BAD the message cannot be read\r\n"
                conn.sendall(out + b"%s NO [SERVERBUG] cannot read\r\n" % tag.encode())
                continue
            elif cmd == "UID FETCH":
                for uid in self.uids_of(arg.split()[1], sorted(messages)):
                    if uid in self.omit:
                        self.omit.discard(uid)
                        continue
                    body = messages[uid]
                    value = b'"%s"' % body if b"\n" not in body else b"{%d}\r\n%s" % (len(body), body)
                    out += b"* %d FETCH (UID %d BODY[] %s)\r\n" % (uid, uid, value)
                    if self.duplicate_bodies:  # the same UID again, other bytes: never imported
                        other = mail("second body for %d" % uid)
                        out += b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (uid, uid, len(other), other)
                for i in range(self.unsolicited):
                    body = mail("never asked for %d" % i)
                    if i % 2:  # the UID after the literal: known only once the body is read
                        out += b"* %d FETCH (BODY[] {%d}\r\n%s UID %d)\r\n" % (5000 + i, len(body), body, 5000 + i)
                    else:
                        out += b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (5000 + i, 5000 + i, len(body), body)
            elif cmd == "UID STORE":
                self.stored.append(arg.split()[1])
                if self.drop_store_once:
                    self.drop_store_once = False
                    conn.close()  # the STORE never answered: a crash or a cut connection
                    return
            elif cmd == "LOGOUT":
                conn.sendall(b"* BYE bye\r\n%s OK done\r\n" % tag.encode())
                break
            try:
                conn.sendall(out + b"%s OK done\r\n" % tag.encode())
            except OSError:
                break
        conn.close()

    def close(self):
        self.listener.close()


def spooled(m):
    """The raw messages in the spool (queued or done)."""
    raws = []
    for state in ("queue", "done"):
        d = os.path.join(m.spool, state)
        for n in os.listdir(d) if os.path.isdir(d) else []:
            if n.endswith(".eml"):
                with open(os.path.join(d, n), "rb") as f:
                    raws.append(f.read())
    return raws


def spool_db(m, query, *args):
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(m.spool, "state.sqlite"), uri=True, timeout=10)
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


class ServerQuirks(unittest.TestCase):
    def setUp(self):
        self.work = Workdir()
        self.servers, self.mailgates = [], []

    def tearDown(self):
        for m in self.mailgates:
            m.stop()
        for s in self.servers:
            s.close()
        self.work.cleanup()

    def server(self, messages, **kw):
        s = ScriptedImap(messages, **kw)
        self.servers.append(s)
        return s

    def start(self, server, box_extra="", extra_yaml="", after_import="delete", nofile=None):
        pw = os.path.join(self.work.path, "pw")
        with open(pw, "w") as f:
            f.write("x\n")
        m = Mailgate(self.work.path, extra_yaml=extra_yaml,
                     imap_yaml="  - {name: quirky, host: 127.0.0.1, port: %d, security: none, username: u, "
                     "password_file: %s, idle: false, poll_interval: 1s, after_import: %s%s}\n"
                     % (server.port, pw, after_import, box_extra))
        if nofile:  # inherited by mailgate: its open files are counted by the kernel
            import resource
            old = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, old[1]))
            try:
                m.start()
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, old)
        else:
            m.start()
        self.mailgates.append(m)
        return m

    def test_quoted_bodies_are_imported_and_an_unreturned_uid_is_never_acknowledged(self):
        quoted = b"Subject: a whole message on one line"
        server = self.server({1: quoted, 2: mail("second")}, omit_once={2})
        m = self.start(server)
        wait_for(lambda: server.stored == ["1", "2"], 30, what="UID 1, then UID 2 on the next session")
        log = m.log_text()
        self.assertIn("no body for UID 2", log)
        self.assertIn("imap.message mailbox=quirky uid=1", log)
        self.assertIn("imap.message mailbox=quirky uid=2", log)
        raws = spooled(m)
        self.assertIn(quoted, raws)  # the quoted body, byte for byte
        self.assertEqual(len(raws), 2)

    def test_an_endless_search_answer_ends_the_session_with_bounded_memory(self):
        server = self.server({1: mail("one")}, search_flood=64 * 1024)
        # ASan's quarantine holds up to 256 MB of freed memory: keep it small so
        # that RSS shows what mailgate holds, not what the sanitizer does.
        asan = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
        try:
            m = self.start(server)
        finally:
            if asan is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = asan
        peak = 0
        deadline = time.monotonic() + 90
        while not server.flood_ended.is_set() and time.monotonic() < deadline:
            peak = max(peak, rss_mb(m.proc.pid))
            time.sleep(0.1)
        self.assertTrue(server.flood_ended.is_set(), "mailgate kept reading the flood")
        wait_for(lambda: "bytes of untagged data for one command" in m.log_text(), 10)
        self.assertLess(server.floods[0], 128 << 20)  # the 64 MB budget (plus socket buffers)
        print("flood: %d MB read, peak RSS %.0f MB" % (server.floods[0] >> 20, peak))
        self.assertLess(peak, 250, "RSS %.0f MB while reading the flood" % peak)
        self.assertIsNone(m.proc.poll())  # still serving

    def test_an_endless_stream_of_short_untagged_responses_is_cut_by_count(self):
        server = self.server({1: mail("one")}, search_flood=1)
        m = self.start(server)
        self.assertTrue(server.flood_ended.wait(90), "mailgate kept reading the flood")
        wait_for(lambda: "untagged responses for one command" in m.log_text(), 10)
        self.assertIsNone(m.proc.poll())

    def test_bodies_never_asked_for_are_discarded_one_spool_file_at_a_time(self):
        server = self.server({1: mail("the one asked for")}, unsolicited=600, duplicate_bodies=True)
        # 600 bodies, and room for far fewer open files: they must not be open at once.
        m = self.start(server, nofile=256)
        wait_for(lambda: server.stored, 60, what="UID 1 acknowledged")
        self.assertEqual(server.stored[0], "1")
        raws = spooled(m)
        self.assertEqual(len(raws), 1, "only the requested message, once")
        self.assertIn(b"Subject: the one asked for", raws[0])
        log = m.log_text()
        self.assertIn("imap.unrequested_bodies mailbox=quirky count=601", log)  # 600 strangers + the second copy
        self.assertNotIn("Too many open files", log)
        self.assertEqual(os.listdir(os.path.join(m.spool, "tmp")), [])
        wait_for(lambda: spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'") == [(1,)], 30,
                 what="the mark at UID 1")

    def test_a_uid_beyond_32_bits_is_a_protocol_error_and_never_becomes_the_mark(self):
        server = self.server({1: mail("one"), 2: mail("two")}, extra_uids_once=[2 ** 64 - 1])
        m = self.start(server)
        wait_for(lambda: len(spooled(m)) == 2 and "2" in ",".join(server.stored), 60, what="UIDs 1 and 2 imported")
        log = m.log_text()
        self.assertIn("the server sent UID 18446744073709551615", log)
        self.assertNotIn("extra 18446744073709551615", "".join(r.decode(errors="replace") for r in spooled(m)))
        wait_for(lambda: spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'") == [(2,)], 30,
                 what="the mark at UID 2")

    def test_a_mark_poisoned_by_an_old_version_is_repaired(self):
        # Before the fix a UID of 2^64-1 became the mark and nothing was ever
        # imported again; such a saved mark now means a rescan.
        server = self.server({})
        m = self.start(server)
        wait_for(lambda: spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'") == [(0,)], 30)
        m.stop()
        import sqlite3
        db = sqlite3.connect(os.path.join(m.spool, "state.sqlite"))
        db.execute("UPDATE imap_marks SET last_uid=-1 WHERE mailbox='quirky'")  # 2^64-1 as SQLite stores it
        db.commit()
        db.close()
        server.messages[1] = mail("after the repair")
        m2 = self.start(server)
        wait_for(lambda: len(spooled(m2)) == 1, 30, what="the message imported")
        self.assertIn("imap.mark_out_of_range mailbox=quirky last_uid=18446744073709551615", m2.log_text())

    def test_a_body_larger_than_its_announced_size_is_skipped_and_recorded(self):
        big = mail("too big after all", size=200 * 1024)
        server = self.server({1: mail("small one"), 2: big, 3: mail("small two")}, size_lie=True)
        m = self.start(server, box_extra=", max_message_size: 100KB")
        wait_for(lambda: len(spooled(m)) == 2 and server.stored, 60, what="the small ones imported")
        wait_for(lambda: spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'") == [(3,)], 30)
        self.assertEqual(server.stored, ["1,3"])  # the big one is not deleted: after_import is for imported mail
        self.assertIn("imap.message_too_large mailbox=quirky uid=2", m.log_text())
        self.assertEqual(spool_db(m, "SELECT uid FROM imap_skipped WHERE mailbox='quirky'"), [(2,)])

    def test_a_session_failing_after_select_still_backs_off(self):
        server = self.server({1: mail("unreadable")}, fail_body_fetch=True)
        m = self.start(server)
        time.sleep(8)
        # 0.5–1 s, 1–2 s, 2–4 s, 4–8 s: at most five sessions in 8 s; a reset after
        # every SELECT would reconnect about every second.
        self.assertGreaterEqual(server.sessions, 2)
        self.assertLessEqual(server.sessions, 5, m.log_text())
        self.assertIn("attempt=3", m.log_text())

    def test_a_refused_message_is_never_passed_by_the_mark(self):
        # Issue 15, mutant (a): the spool refuses UID 2 (larger than the whole
        # queue may hold) but takes UID 3. Only UID 1 may be acknowledged and
        # marked; UID 2 arrives once there is room, UID 3 is not doubled.
        big = mail("big", size=120 * 1024)
        server = self.server({1: mail("small one"), 2: big, 3: mail("small two")})
        m = self.start(server, extra_yaml="  max_size: 100KB\n", after_import="seen")
        wait_for(lambda: m.log_text().count("the spool refuses mail: spool queue full (UID 2)") >= 2, 60, what="UID 2 refused twice")
        self.assertEqual(set(server.stored), {"1"})
        self.assertEqual(spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'"), [(1,)])
        m.stop()
        m2 = self.start(server, after_import="seen")  # room again
        wait_for(lambda: "2:3" in server.stored, 60, what="UIDs 2 and 3 acknowledged")
        self.assertEqual(sorted(r.split(b"Subject: ")[1].split(b"\r\n")[0] for r in spooled(m2)),
                         [b"big", b"small one", b"small two"])
        # The mark moves once the STORE is answered (the server records it before answering).
        wait_for(lambda: spool_db(m2, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'") == [(3,)], 30,
                 what="the mark at UID 3")

    def test_a_connection_dropped_at_the_store_is_acknowledged_on_the_next_session(self):
        # Issue 15, mutant (b): the mark moves only after after_import. The
        # server drops the connection when asked to STORE \Seen: the next
        # session fetches both again (the spool recognises them) and
        # acknowledges them then.
        server = self.server({1: mail("one"), 2: mail("two")}, drop_store_once=True)
        m = self.start(server, after_import="seen")
        wait_for(lambda: len(server.stored) >= 2, 60, what="a second STORE after the dropped one")
        self.assertEqual(server.stored, ["1:2", "1:2"])
        wait_for(lambda: spool_db(m, "SELECT last_uid FROM imap_marks WHERE mailbox='quirky'") == [(2,)], 30)
        self.assertEqual(len(spooled(m)), 2)  # each exactly once
        self.assertEqual(m.log_text().count("result=duplicate"), 2)

    def test_queue_output_and_logs_escape_what_a_hostile_message_carries(self):
        # Issue 13 item 8: terminal escapes (OSC title, clear screen, a C1 CSI)
        # in a Message-ID reach `mailgate queue` and the log only escaped.
        hostile = (b"From: a@example.org\r\nTo: support@example.com\r\nSubject: \x1b[31mred\r\n"
                   b"Message-ID: <evil\x1b]0;owned\x07\x1b[2J\xc2\x9b@x>\r\n\r\nbody\r\n")
        server = self.server({1: hostile})
        m = self.start(server)
        wait_for(lambda: server.stored, 30, what="the message imported")
        spool_id = re.search(r"imap.message mailbox=quirky uid=1 spool_id=(\S+)", m.log_text()).group(1)
        shown = subprocess.run([os.environ["MAILGATE_BIN"], "queue", "show", spool_id, "--config", m.config],
                               capture_output=True).stdout
        listed = subprocess.run([os.environ["MAILGATE_BIN"], "queue", "list", "--config", m.config],
                                capture_output=True).stdout
        for out in (shown, listed, m.log_text().encode()):
            for raw in (b"\x1b", b"\x07", b"\xc2\x9b"):
                self.assertNotIn(raw, out)
        self.assertIn(b"message_id: evil\\x1b]0;owned\\x07\\x1b[2J\\u009B@x\n", shown)

    def test_log_format_json_writes_one_object_per_line(self):
        server = self.server({1: mail("json one")})
        m = self.start(server, extra_yaml="log:\n  format: json\n")
        wait_for(lambda: server.stored, 30, what="the message imported")
        events = [json.loads(line) for line in m.log_text().splitlines() if line.strip()]
        imported = [e for e in events if e["event"] == "imap.message"]
        self.assertEqual(len(imported), 1)
        self.assertEqual((imported[0]["level"], imported[0]["mailbox"], imported[0]["uid"]), ("info", "quirky", "1"))


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



class Throttle(DropAfter):
    """A TCP proxy to Dovecot that passes the server's bytes at about
    `rate` bytes per second: an import that takes seconds on any machine."""
    def __init__(self, target_port, rate):
        self.rate = rate
        super().__init__(target_port, None)

    def pipe(self, src, dst, limit):
        try:
            while True:
                data = src.recv(16384)
                if not data:
                    break
                dst.sendall(data)
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        self.close_both(src, dst)


class ImportProgress(unittest.TestCase):
    """A first import of a big mailbox shows its progress: imap.progress
    lines (done/total, rate, ETA) every progress_interval and at the end,
    and /metrics' backlog, imported and last-sync series."""
    MESSAGES = 400
    MESSAGE_SIZE = 10_000
    RATE = 1_000_000  # bytes/s from the server: the 4 MB backlog takes about 4 s, several progress_intervals

    def metrics(self, port):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'(mailgate_imap_\w+)\{mailbox="progress"\} (\S+)$', line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def test_a_backlog_logs_progress_at_a_steady_interval_and_metrics_follow_it(self):
        work = Workdir()
        pki = Pki(work.path)
        dovecot = Dovecot(work.path, pki, users=[("progress@example.com", "secret-progress")]).start()
        fake = FakeMessenger(pki)
        m = proxy = None
        try:
            c = dovecot.client("progress@example.com")
            for i in range(self.MESSAGES):
                typ, data = c.append("INBOX", None, None, mail("backlog %d" % i, size=self.MESSAGE_SIZE))
                self.assertEqual(typ, "OK", data)
            c.logout()
            pw = os.path.join(work.path, "pw")
            with open(pw, "w") as f:
                f.write("secret-progress\n")
            metrics_port = free_port()
            proxy = Throttle(dovecot.port, self.RATE)
            box = dovecot.imap_yaml(name="progress", user="progress@example.com", password_file=pw,
                                    port=proxy.port, extra="    progress_interval: 1s\n")
            started = time.time()
            m = Mailgate(work.path, fake, pki, imap_yaml=box,
                         extra_yaml='metrics:\n  listen: "127.0.0.1:%d"\nlog:\n  format: json\n' % metrics_port).start()
            # Watch the log and /metrics as the import runs: when each line appeared, the backlog gauge.
            seen, backlog_samples = {}, []
            deadline = time.time() + 300
            while time.time() < deadline:
                now = time.time()
                for line in m.log_text().splitlines():
                    if '"imap.progress"' in line and line not in seen:
                        seen[line] = now
                try:
                    backlog_samples.append(self.metrics(metrics_port).get("mailgate_imap_backlog_messages"))
                except OSError:
                    pass
                if any('"backlog imported"' in l for l in seen):
                    break
                self.assertIsNone(m.proc.poll(), "mailgate exited:\n" + m.log_text()[-3000:])
                time.sleep(0.1)
            lines = sorted(((t, json.loads(l)) for l, t in seen.items()), key=lambda x: int(x[1]["done"]))
            self.assertTrue(lines, "no imap.progress line:\n" + m.log_text()[-3000:])
            final = lines[-1][1]
            self.assertEqual((final["mailbox"], final["done"], final["total"], final["eta_s"], final["note"]),
                             ("progress", str(self.MESSAGES), str(self.MESSAGES), "0", "backlog imported"))
            steps = [(t, e) for t, e in lines if "note" not in e]
            self.assertTrue(steps, "the import took %.1fs but logged no progress on the way: %s"
                            % (lines[-1][0] - started, [e for _, e in lines]))
            for t, e in steps:
                self.assertEqual(e["total"], str(self.MESSAGES), e)
                self.assertTrue(0 < int(e["done"]) < self.MESSAGES, e)
                self.assertGreater(float(e["rate_per_s"]), 0, e)
                self.assertTrue(e["eta_s"].isdigit(), e)
            # A steady interval: never two lines within much less than progress_interval (1s).
            times = [t for t, _ in steps]
            for a, b in zip(times, times[1:]):
                self.assertGreater(b - a, 0.5, "progress lines closer than the interval: %s" % steps)
            # /metrics: the backlog was visible during the import, and is 0 after it.
            self.assertTrue(any(v and 0 < v < self.MESSAGES for v in backlog_samples), backlog_samples)
            after = self.metrics(metrics_port)
            self.assertEqual(after["mailgate_imap_backlog_messages"], 0)
            self.assertEqual(after["mailgate_imap_messages_imported_total"], self.MESSAGES)
            self.assertGreaterEqual(after["mailgate_imap_last_sync_timestamp_seconds"], started - 1)
            self.assertLessEqual(after["mailgate_imap_last_sync_timestamp_seconds"], time.time() + 1)
        finally:
            if m:
                m.stop()
            if proxy:
                proxy.close()
            fake.stop()
            dovecot.stop()
            work.cleanup()


if __name__ == "__main__":
    unittest.main()
