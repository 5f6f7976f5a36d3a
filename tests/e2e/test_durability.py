"""The README's first promise, observed from outside the process: `250` only
after the message file is on disk, renamed into queue/, the queue/ directory
fsync'd and the record committed to SQLite. A SIGKILL keeps the page cache,
so a crash test cannot see a missing sync; strace can. The daemon runs under
`strace -f -y` and, for every accepted message, the test finds in the trace:

    write of the file ... fsync(tmp/ID.tmp) or syncfs   (data on disk)
    rename(tmp/ID.tmp → queue/ID.eml)                    (visible)
    fsync(queue/)                                        (the rename on disk)
    fsync/fdatasync(state.sqlite-wal)                    (the record on disk)
    write/sendmsg of "250 … queued as ID" to the socket  (the promise)

each completed before the next begins. Also here: queue.min_free_space
against the real disk answers 452 at MAIL FROM."""
import os, re, shutil, signal, socket, subprocess, threading, unittest, uuid

from harness import MAILGATE, Mailgate, SmtpConversation, Workdir, wait_for

TRACED = "fsync,fdatasync,syncfs,rename,renameat,renameat2,write,writev,pwrite64,sendto,sendmsg"
SYNCS = ("fsync", "fdatasync", "syncfs")
RENAMES = ("rename", "renameat", "renameat2")
WRITES = ("write", "writev", "pwrite64", "sendto", "sendmsg")


def message(tag):
    mid = "<%s-%s@durability.test>" % (tag, uuid.uuid4().hex[:8])
    return ("From: D <d@example.org>\r\nTo: support@example.com\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\n"
            "durable body %s\r\n" % (tag, mid, tag)).encode()


def send_and_read_250(port, raw):
    """One SMTP transaction; returns the reply to the final dot."""
    c = SmtpConversation(port, timeout=60)
    try:
        assert c.command("EHLO client.test")[0] == 250
        assert c.command("MAIL FROM:<d@example.org>")[0] == 250
        assert c.command("RCPT TO:<support@example.com>")[0] == 250
        assert c.command("DATA")[0] == 354
        c.send(raw + b".\r\n")
        return c.reply()
    finally:
        c.close()


class Syscall:
    __slots__ = ("pid", "name", "args", "start", "end")

    def __init__(self, pid, name, args, start, end):
        self.pid, self.name, self.args, self.start, self.end = pid, name, args, start, end

    def fd_path(self):
        """The first argument's path as `strace -y` prints it: 7</x/queue> → /x/queue."""
        m = re.match(r"\s*-?\d+<(.*?)>\s*[,)]", self.args)
        return m.group(1) if m else ""

    def __repr__(self):
        return "%s(%s) [lines %d..%d]" % (self.name, self.args[:160], self.start, self.end)


LINE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+\s+(.*)$")


def parse_trace(path):
    """Every traced call with the line numbers where it began and where it
    returned. `strace -f` splits a call interrupted by another thread into
    `<unfinished ...>` and `<... NAME resumed>`; those are joined."""
    calls, pending = [], {}
    with open(path, errors="replace") as f:
        for n, line in enumerate(f):
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            resumed = re.match(r"<\.\.\. (\w+) resumed>(.*)$", rest)
            if resumed:
                if pid in pending:
                    name, args, start = pending.pop(pid)
                    calls.append(Syscall(pid, name, args + resumed.group(2), start, n))
                continue
            call = re.match(r"(\w+)\((.*)$", rest)
            if not call:
                continue
            name, args = call.group(1), call.group(2)
            if args.endswith("<unfinished ...>"):
                pending[pid] = (name, args[: -len("<unfinished ...>")].rstrip(), n)
            else:
                calls.append(Syscall(pid, name, args, n, n))
    return calls


class TracedMailgate(Mailgate):
    """`mailgate serve` as a child of strace, which writes every traced call
    to trace.txt with the descriptor's path (-y) and thread id (-f)."""

    def start(self):
        self.trace = os.path.join(self.workdir, "trace.txt")
        self.log = open(self.log_path, "a")
        # LeakSanitizer cannot run under ptrace and would abort the daemon at
        # exit; leaks are the other tests' business, the sync order is this one's.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"]))
        self.proc = subprocess.Popen(["strace", "-f", "-qq", "-y", "-tt", "-s", "256", "-e", "signal=none",
                                      "-e", "trace=" + TRACED, "-o", self.trace,
                                      MAILGATE, "serve", "--config", self.config], stderr=self.log, env=env)
        def up_or_exited():
            if self.proc.poll() is not None:
                return True
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(up_or_exited, 60, what="mailgate under strace to listen")
        if self.proc.poll() is not None:  # e.g. ptrace not permitted in this container
            raise AssertionError("strace/mailgate exited with %s before listening: %s"
                                 % (self.proc.returncode, self.log_text()[-2000:]))
        return self

    def stop(self):
        # SIGTERM to mailgate itself (strace's only child), so it shuts down
        # as it would under systemd and strace writes out the whole trace.
        if self.proc and self.proc.poll() is None:
            try:
                with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                    children = [int(pid) for pid in f.read().split()]
            except OSError:
                children = []
            for child in children:
                os.kill(child, signal.SIGTERM)
            if not children:
                self.proc.terminate()
            self.proc.wait(timeout=60)
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode if self.proc else None


class DurabilityOrder(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(shutil.which("strace"), "strace is missing: scripts/install-deps.sh installs it")
        self.work = Workdir()
        self.addCleanup(self.work.cleanup)
        self.mg = TracedMailgate(self.work.path).start()
        self.addCleanup(self.mg.stop)

    def assert_durable_before_250(self, calls, spool_id):
        spool = os.path.realpath(self.mg.spool)
        tmp_file = "%s/tmp/%s.tmp" % (spool, spool_id)
        queued_file = "%s/queue/%s.eml" % (spool, spool_id)
        # On failure, the calls that matter (the workdir and its trace are removed).
        relevant = [c for c in calls if spool_id in c.args or c.name in SYNCS or c.name in RENAMES]
        where = "message %s; its calls and every sync/rename:\n%s\n" % (
            spool_id, "\n".join("  tid %d %s" % (c.pid, c) for c in relevant))

        replies = [c for c in calls if c.name in WRITES and ("queued as " + spool_id) in c.args
                   and re.match(r"\s*\d+<(socket|TCP|TCPv6):", c.args)]
        self.assertEqual(len(replies), 1, "the 250 for %s written to the client socket once" % where)
        reply = replies[0].start
        self.assertIn("250 2.0.0 Ok: queued as " + spool_id, replies[0].args)

        renames = [c for c in calls if c.name in RENAMES and tmp_file in c.args and queued_file in c.args]
        self.assertEqual(len(renames), 1, "one rename tmp/ → queue/ of " + where)
        rename = renames[0]
        self.assertLess(rename.end, reply, "the rename into queue/ returned before the 250 of " + where)

        writes = [c for c in calls if c.name in WRITES and c.fd_path() == tmp_file]
        self.assertTrue(writes, "the message's bytes were written to tmp/ (" + where + ")")
        last_write = max(c.end for c in writes)
        file_syncs = [c for c in calls
                      if (c.name in ("fsync", "fdatasync") and c.fd_path() == tmp_file)
                      or (c.name == "syncfs" and c.fd_path().startswith(spool + "/"))]
        self.assertTrue(any(last_write < c.start and c.end < rename.start for c in file_syncs),
                        "the file's data synced (fsync or syncfs) after its last write and before the rename "
                        "of %s; syncs seen: %r" % (where, file_syncs))

        dir_syncs = [c for c in calls if c.name in ("fsync", "fdatasync") and c.fd_path() == spool + "/queue"]
        dir_synced = [c for c in dir_syncs if rename.end < c.start and c.end < reply]
        self.assertTrue(dir_synced, "the queue/ directory fsync'd after the rename and before the 250 of %s; "
                                    "queue/ syncs seen: %r" % (where, dir_syncs))

        # The transaction that records this message runs on the thread that
        # renamed it; the processor's own later commits (other threads) must
        # not stand in for it.
        db_syncs = [c for c in calls if c.name in ("fsync", "fdatasync") and c.pid == rename.pid
                    and re.fullmatch(re.escape(spool) + r"/state\.sqlite(-wal|-journal)?", c.fd_path())]
        first_dir_sync = min(c.end for c in dir_synced)
        self.assertTrue(any(first_dir_sync < c.start and c.end < reply for c in db_syncs),
                        "the SQLite commit synced after the queue/ fsync (a durable row must never point at a "
                        "rename that is not) and before the 250 of %s; database syncs seen: %r" % (where, db_syncs))

    def accepted_id(self, reply):
        code, text = reply
        self.assertEqual(code, 250, text)
        m = re.search(r"queued as (\S+)", text)
        self.assertTrue(m, text)
        return m.group(1)

    def test_one_message_is_synced_renamed_dir_synced_and_committed_before_250(self):
        spool_id = self.accepted_id(send_and_read_250(self.mg.port, message("one")))
        self.assertEqual(self.mg.stop(), 0)
        self.assert_durable_before_250(parse_trace(self.mg.trace), spool_id)

    def test_a_group_commit_syncs_every_message_before_its_250(self):
        # Sessions that end their DATA together share a batch (one syncfs,
        # one fsync of queue/, one transaction); each 250 must still follow
        # the syncs that cover its own message.
        replies, errors = [], []
        barrier = threading.Barrier(8)

        def client(i):
            try:
                c = SmtpConversation(self.mg.port, timeout=60)
                try:
                    for cmd in ("EHLO c%d.test" % i, "MAIL FROM:<d@example.org>", "RCPT TO:<support@example.com>"):
                        assert c.command(cmd)[0] == 250, cmd
                    assert c.command("DATA")[0] == 354
                    barrier.wait(timeout=60)
                    c.send(message("batch-%d" % i) + b".\r\n")
                    replies.append(c.reply())
                finally:
                    c.close()
            except Exception as e:  # reported by the main thread
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(errors, [])
        ids = [self.accepted_id(r) for r in replies]
        self.assertEqual(len(set(ids)), 8)
        self.assertEqual(self.mg.stop(), 0)
        calls = parse_trace(self.mg.trace)
        for spool_id in ids:
            self.assert_durable_before_250(calls, spool_id)


class MinFreeSpace(unittest.TestCase):
    """queue.min_free_space against the real disk: above what statvfs says is
    free, MAIL FROM answers 452 and nothing is written; below, mail flows."""

    def test_more_than_the_free_space_answers_452_at_mail_from(self):
        work = Workdir()
        self.addCleanup(work.cleanup)
        v = os.statvfs(work.path)
        free_gb = v.f_bavail * v.f_frsize // (1024 ** 3)
        mg = Mailgate(work.path)
        with open(mg.config) as f:
            cfg = f.read()
        self.assertIn("min_free_space: 1MB\n", cfg)
        with open(mg.config, "w") as f:
            f.write(cfg.replace("min_free_space: 1MB\n", "min_free_space: %dGB\n" % (free_gb + 1024)))
        mg.start()
        try:
            c = SmtpConversation(mg.port)
            try:
                self.assertEqual(c.command("EHLO client.test")[0], 250)
                code, text = c.command("MAIL FROM:<d@example.org>")
                self.assertEqual(code, 452, text)
                self.assertIn("4.3.1", text)
                self.assertIn("disk", text)
            finally:
                c.close()
        finally:
            mg.stop()
        self.assertEqual(os.listdir(os.path.join(mg.spool, "queue")), [])
        self.assertEqual(os.listdir(os.path.join(mg.spool, "tmp")), [])

        # The same daemon with a limit the disk satisfies accepts the mail:
        # the 452 came from the free-space limit, nothing else.
        with open(mg.config, "w") as f:
            f.write(cfg.replace("min_free_space: 1MB\n", "min_free_space: %dMB\n" % max(1, free_gb * 1024 // 4)))
        mg.start()
        try:
            code, text = send_and_read_250(mg.port, message("roomy"))
            self.assertEqual(code, 250, text)
        finally:
            mg.stop()


if __name__ == "__main__":
    unittest.main()
