"""A real Postfix (private config and queue directories) in front of
mailgate: once relaying over SMTP, once delivering over LMTP. Mail submitted
to Postfix must come out as tickets (dry-run files here)."""
import glob, json, os, shutil, smtplib, subprocess, unittest, uuid

from harness import Mailgate, Workdir, free_port, wait_for, wait_port


def postfix_available():
    return shutil.which("postfix") and os.path.exists("/etc/postfix/master.cf") or os.path.exists(
        "/usr/share/postfix/master.cf.dist")


class PrivatePostfix:
    def __init__(self, directory, transport_lines):
        self.dir = directory
        self.port = free_port()
        q, d = os.path.join(directory, "queue"), os.path.join(directory, "data")
        os.makedirs(q)
        os.makedirs(d)
        shutil.chown(d, "postfix")
        self.log = os.path.join(directory, "postfix.log")
        with open(os.path.join(directory, "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6",
                "queue_directory = " + q,
                "data_directory = " + d,
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "inet_interfaces = 127.0.0.1",
                "inet_protocols = ipv4",
                "mydestination =",
                "myhostname = postfix.test",
                "mynetworks = 127.0.0.0/8",
                "relay_domains = example.com",
                "alias_maps =",
                "alias_database =",
                "smtputf8_enable = no",
                "maillog_file = " + self.log,
                "maillog_file_prefixes = " + directory,
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "maximal_backoff_time = 2s",
            ] + transport_lines) + "\n")
        src = "/etc/postfix/master.cf" if os.path.exists("/etc/postfix/master.cf") else "/usr/share/postfix/master.cf.dist"
        with open(src) as f:
            master = f.read().splitlines()
        out = []
        for line in master:
            if line.startswith("smtp ") and " inet " in line:
                line = "127.0.0.1:%d inet n - n - - smtpd" % self.port
            out.append(line)
        with open(os.path.join(directory, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")

    def start(self):
        r = subprocess.run(["script", "-qc", "postfix -c %s start" % self.dir, "/dev/null"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise AssertionError("postfix did not start: " + r.stdout + r.stderr + self.log_text())
        wait_port(self.port, timeout=20)

    def stop(self):
        subprocess.run(["postfix", "-c", self.dir, "stop"], capture_output=True)

    def log_text(self):
        if not os.path.exists(self.log):
            return ""
        with open(self.log) as f:
            return f.read()


@unittest.skipUnless(postfix_available(), "postfix not installed")
class PostfixInFront(unittest.TestCase):
    def through_postfix(self, protocol, transport_lines):
        work = Workdir()
        self.addCleanup(work.cleanup)
        mg = Mailgate(work.path, protocol=protocol).start()
        self.addCleanup(mg.stop)
        pf = PrivatePostfix(os.path.join(work.path, "postfix"),
                            [line % mg.port for line in transport_lines])
        pf.start()
        self.addCleanup(pf.stop)
        subject = "via postfix %s %s" % (protocol, uuid.uuid4().hex[:8])
        with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as s:
            s.ehlo("client.test")
            s.sendmail("customer@example.org", ["support@example.com"],
                       ("From: Customer <customer@example.org>\r\nTo: support@example.com\r\nSubject: %s\r\n\r\n"
                        "hello through Postfix\r\n" % subject).encode())

        def ticket():
            for path in glob.glob(os.path.join(mg.spool, "dry-run", "*.json")):
                with open(path) as f:
                    j = json.load(f)
                if j["ticket"]["title"] == subject:
                    return j
            return None
        try:
            j = wait_for(ticket, timeout=60, what="the relayed mail's ticket")
        except AssertionError:
            raise AssertionError("no ticket; postfix log:\n" + pf.log_text()[-3000:])
        self.assertEqual(j["user"]["address"], "customer@example.org")
        self.assertIn("status=sent", pf.log_text())

    def test_relay_over_smtp(self):
        self.through_postfix("smtp", ["relayhost = [127.0.0.1]:%d"])

    def test_lmtp_transport(self):
        self.through_postfix("lmtp", ["relay_transport = lmtp:inet:127.0.0.1:%d",
                                      "default_transport = lmtp:inet:127.0.0.1:%d"])


if __name__ == "__main__":
    unittest.main()
