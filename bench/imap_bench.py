"""IMAP import rate: a private Dovecot mailbox of SMALL small (2 KB) and
LARGE large (1 MB) messages, imported by `mailgate serve` (dry-run: into the
spool) and by getmail6 (into a Maildir), in one run; then mailgate's peak RSS
on a mailbox a fifth of the size, to show it does not grow with the mailbox.
   usage: python3 bench/imap_bench.py MAILGATE_BIN [SMALL] [LARGE]"""
import os, re, resource, shutil, subprocess, sys, time, uuid

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(root, "tests", "e2e"))
os.environ.setdefault("MAILGATE_SOURCE_DIR", root)
os.environ["MAILGATE_BIN"] = sys.argv[1]
import harness  # noqa: E402
from harness import Dovecot, Pki, Workdir, wait_for  # noqa: E402

small_n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
large_n = int(sys.argv[3]) if len(sys.argv) > 3 else 200


def message(i, size):
    head = ("From: Customer %d <c%d@example.org>\r\nTo: support@example.com\r\nSubject: bench %d\r\n"
            "Message-ID: <%s@bench>\r\n\r\n" % (i, i % 100, i, uuid.uuid4()))
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    return (head + line * max(1, (size - len(head)) // len(line))).encode()


def fill_maildir(dovecot, user, small, large):
    """Writes the messages straight into the user's Maildir (faster than APPEND)."""
    new = os.path.join(dovecot.dir, "mail", user, "new")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(dovecot.dir, "mail", user, sub), exist_ok=True)
    for i in range(small + large):
        with open(os.path.join(new, "%d.M%dP1.bench" % (1700000000 + i, i)), "wb") as f:
            f.write(message(i, 1024 * 1024 if i % max(1, (small + large) // max(1, large)) == 0 and large else 2048))
    subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(dovecot.dir, "mail")], check=True)
    c = dovecot.client(user)  # let Dovecot index the mailbox before timing
    typ, data = c.select("INBOX")
    c.logout()
    return int(data[0])


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def run_mailgate(work, dovecot, user, total):
    d = os.path.join(work, "mg-" + user.split("@")[0])
    os.makedirs(d)
    pw = os.path.join(d, "pw")
    with open(pw, "w") as f:
        f.write(dovecot.passwords[user] + "\n")
    m = harness.Mailgate(d, imap_yaml=dovecot.imap_yaml(name="bench", user=user, password_file=pw))
    os.environ["MAILGATE_LOG"] = "info"
    start = time.time()
    m.start()
    wait_for(lambda: m.log_text().count("imap.message mailbox=bench") >= total, timeout=1800, interval=0.2,
             what="mailgate to import %d messages" % total)
    elapsed = time.time() - start
    rss = peak_rss_kb(m.proc.pid)
    m.stop()
    return elapsed, rss


# getmail6 6.18.11 (Debian 12) forks a child per delivered message and only
# then installs its SIGCHLD handler; a child that exits first (a small message
# on a fast disk) is never noticed and the parent waits out its timeout, then
# aborts the run with "operation error (waiting child pid N timed out)". The
# benchmark measures getmail6's work, not that race: this wrapper runs the
# same getmail with forkchild reaping its child by waitpid — same fork, same
# delivery, same files (with Debian's python3, which has getmailcore).
GETMAIL_WITHOUT_SIGCHLD_RACE = r"""
import os, runpy, sys
from getmailcore import baseclasses
from getmailcore.exceptions import getmailOperationError

def forkchild(self, childfun, with_out=True):
    self.child = child = baseclasses.Namespace()
    child.stdout = baseclasses.TemporaryFile23()
    child.stderr = baseclasses.TemporaryFile23()
    child.childpid = os.fork()
    if child.childpid == 0:
        childfun(child.stdout, child.stderr)
        os._exit(0)
    _, status = os.waitpid(child.childpid, 0)
    if not os.WIFEXITED(status):
        raise getmailOperationError("child pid %d ended by signal %d" % (child.childpid, os.WTERMSIG(status)))
    child.exitcode = os.WEXITSTATUS(status)
    child.stderr.seek(0)
    child.err = child.stderr.read().strip().decode()
    child.stdout.seek(0)
    if with_out:
        child.out = child.stdout.read().strip()
    return child

baseclasses.ForkingBase.forkchild = forkchild
sys.argv = ["getmail"] + sys.argv[1:]
runpy.run_path("/usr/bin/getmail", run_name="__main__")
"""

GETMAIL_TIMEOUT = 3600  # seconds; a hung peer ends the benchmark's wait, not the run


def run_getmail(work, dovecot, user):
    """(elapsed, fetched, peak RSS KB, None), or (None, fetched, None, why)
    when getmail6 did not finish: the reason is one line for the report."""
    d = os.path.join(work, "getmail")
    maildir = os.path.join(d, "Maildir")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    rc = os.path.join(d, "getmailrc")
    with open(rc, "w") as f:
        f.write("[retriever]\ntype = SimpleIMAPRetriever\nserver = 127.0.0.1\nport = %d\nusername = %s\n"
                "password = %s\nmailboxes = (\"INBOX\",)\n\n[destination]\ntype = Maildir\npath = %s/\n\n"
                "[options]\nread_all = true\ndelete = false\nverbose = 0\n" % (dovecot.port, user,
                                                                              dovecot.passwords[user], maildir))
    subprocess.run(["chown", "-R", "nobody:nogroup", d], check=True)
    command = ["/usr/bin/python3", "-c", GETMAIL_WITHOUT_SIGCHLD_RACE, "--getmaildir", d, "--rcfile", rc]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--"] + command  # getmail refuses to deliver as root
    start = time.time()
    try:
        r = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=GETMAIL_TIMEOUT)
        failure = None if r.returncode == 0 else "exit %d: %s" % (r.returncode, last_line(r.stderr or r.stdout))
    except subprocess.TimeoutExpired:
        failure = "no result after %d s" % GETMAIL_TIMEOUT
    except OSError as e:
        failure = "could not run: %s" % e
    elapsed = time.time() - start
    got = len(os.listdir(os.path.join(maildir, "new")))
    if failure:
        return None, got, None, failure
    return elapsed, got, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, None


def last_line(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def main():
    work = Workdir()
    try:
        pki = Pki(work.path)
        users = [("mailgate@example.com", "pw1"), ("getmail@example.com", "pw2"), ("fifth@example.com", "pw3")]
        dovecot = Dovecot(work.path, pki, users=users).start()
        total = fill_maildir(dovecot, "mailgate@example.com", small_n, large_n)
        fill_maildir(dovecot, "getmail@example.com", small_n, large_n)
        fifth = fill_maildir(dovecot, "fifth@example.com", small_n // 5, large_n // 5)
        g_time, g_count, g_rss, g_failure = run_getmail(work.path, dovecot, "getmail@example.com")
        m_time, m_rss = run_mailgate(work.path, dovecot, "mailgate@example.com", total)
        f_time, f_rss = run_mailgate(work.path, dovecot, "fifth@example.com", fifth)
        dovecot.stop()
        print("IMAP import of %d messages (%d × 2 KB, %d × 1 MB) from Dovecot on 127.0.0.1:" % (total, small_n, large_n))
        print("  mailgate (into the spool, fsync'd): %6.1f s  %7.0f msgs/s  peak RSS %6.1f MB"
              % (m_time, total / m_time, m_rss / 1024))
        if g_failure:
            print("  getmail6 (into a Maildir):          not measured: getmail6 failed (%s); %d of %d fetched"
                  % (g_failure, g_count, total))
        else:
            print("  getmail6 (into a Maildir):          %6.1f s  %7.0f msgs/s  peak RSS %6.1f MB  (%d fetched)"
                  % (g_time, g_count / g_time, g_rss / 1024, g_count))
            print("  ratio mailgate/getmail6: %.1fx" % ((total / m_time) / (g_count / g_time)))
        print("  mailgate on a mailbox of %d messages: peak RSS %.1f MB (vs %.1f MB for %d)"
              % (fifth, f_rss / 1024, m_rss / 1024, total))
    finally:
        work.cleanup()


main()
