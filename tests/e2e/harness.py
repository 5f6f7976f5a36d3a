"""Starts real processes on 127.0.0.1 for the end-to-end tests: the fake
Messenger over TLS (with a test CA made by openssl), `mailgate serve` on a
generated config, and helpers to talk SMTP and to wait for tickets.
Paths come from the environment ctest sets: MAILGATE_BIN, FAKE_MESSENGER_BIN,
MAILGATE_SOURCE_DIR."""
import json, os, shutil, signal, socket, ssl, subprocess, tempfile, time, unittest, urllib.request

MAILGATE = os.environ.get("MAILGATE_BIN", "build/bin/mailgate")
FAKE = os.environ.get("FAKE_MESSENGER_BIN", "build/bin/fake-messenger")
SOURCE = os.environ.get("MAILGATE_SOURCE_DIR", os.getcwd())
CORPUS = os.path.join(SOURCE, "tests", "corpus")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))

def wait_port(port, timeout=10.0):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_for(up, timeout, what="port %d" % port)

class Pki:
    """A test CA and a certificate for localhost/127.0.0.1."""
    def __init__(self, directory):
        self.dir = directory
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        def run(*args):
            subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
        run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=mailgate e2e CA")
        run("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
        with open(os.path.join(directory, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
        self.ca = os.path.join(directory, "ca.pem")
        self.cert = os.path.join(directory, "server.pem")
        self.key = os.path.join(directory, "server.key")

class FakeMessenger:
    def __init__(self, pki, token_lifetime=1200):
        self.pki = pki
        self.proc = subprocess.Popen([FAKE, "--cert", pki.cert, "--key", pki.key,
                                      "--token-lifetime", str(token_lifetime)],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "listening", "fake-messenger did not start"
        self.port = int(line[1])
        self.auth_url = "https://localhost:%d/v1" % self.port
        self.ctx = ssl.create_default_context(cafile=pki.ca)

    def _url(self, path):
        return "https://localhost:%d%s" % (self.port, path)

    def state(self):
        with urllib.request.urlopen(self._url("/_fake/state"), context=self.ctx, timeout=10) as r:
            return json.load(r)

    def configure(self, **settings):
        req = urllib.request.Request(self._url("/_fake/config"), data=json.dumps(settings).encode(), method="POST")
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            return json.load(r)

    def set_ticket_status(self, ticket_id, status):
        """As an agent would: e.g. close ticket 1000 so that the next reply finds it closed."""
        return self.configure(ticket_status={"id": str(ticket_id), "status": status})

    def add_agent_answer(self, ticket_id, message):
        """An agent's answer (type "answer") on the ticket; returns its id."""
        return self.configure(agent_answer={"ticket_id": str(ticket_id), "message": message})["answer_id"]

    def ticket(self, ticket_id):
        """The ticket as /_fake/state shows it (with status and replies), or None."""
        for t in self.state()["tickets"]:
            if str(t["id"]) == str(ticket_id):
                return t
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)

class Mailgate:
    """`mailgate serve` on a generated config; restartable (crash tests)."""
    def __init__(self, workdir, fake=None, pki=None, extra_yaml="", smtp_yaml="", protocol="smtp", imap_yaml=""):
        self.workdir = workdir
        self.port = free_port()
        self.spool = os.path.join(workdir, "spool")
        self.config = os.path.join(workdir, "mailgate.yaml")
        self.log_path = os.path.join(workdir, "mailgate.log")
        secret = os.path.join(workdir, "secret")
        with open(secret, "w") as f:
            f.write("test-secret\n")
        if fake:
            messenger = ('messenger:\n  api_key: test-api-key\n  secret_file: %s\n  auth_url: %s\n  ca_file: %s\n'
                         % (secret, fake.auth_url, pki.ca))
        else:
            messenger = "messenger:\n  mode: dry-run\n"
        with open(self.config, "w") as f:
            f.write("spool_dir: %s\n%s" % (self.spool, messenger))
            f.write('smtp:\n  listen: ["127.0.0.1:%d"]\n  protocol: %s\n  hostname: mx.test\n'
                    '  accept: ["support@example.com", "@help.example.com"]\n%s' % (self.port, protocol, smtp_yaml))
            f.write("queue:\n  min_free_space: 1MB\n" + extra_yaml)
            if imap_yaml:
                f.write("imap:\n" + imap_yaml)
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([MAILGATE, "serve", "--config", self.config], stderr=self.log)
        wait_port(self.port)
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=40)
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode

    def queue(self, *args):
        return subprocess.run([MAILGATE, "queue", *args, "--config", self.config],
                              capture_output=True, text=True)

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

def corpus(name):
    with open(os.path.join(CORPUS, name + ".eml"), "rb") as f:
        return f.read()

def golden(name):
    with open(os.path.join(CORPUS, name + ".json")) as f:
        return json.load(f)

def corpus_names():
    return sorted(n[:-4] for n in os.listdir(CORPUS) if n.endswith(".eml"))

def assert_golden_tickets(tc, state, names):
    """Every corpus mail in `names` became exactly its golden ticket (user,
    attachments by SHA-256, message with real UUIDs); ignored ones none."""
    users = {u["id"]: u for u in state["users"]}
    media = {m["id"]: m for m in state["media"]}
    tickets_by_title = {}
    for t in state["tickets"]:
        tickets_by_title.setdefault(t["title"], []).append(t)
    expected = 0
    for name in names:
        g = golden(name)
        found = tickets_by_title.get(g["ticket"]["title"], [])
        if g["ignored"] is not None:
            tc.assertEqual(found, [], "%s is ignored (%s) but became a ticket" % (name, g["ignored"]))
            continue
        expected += 1
        raw = corpus(name)
        if b"\n" in raw.replace(b"\r\n", b""):
            # SMTP (RFC 5321 §2.3.8) and IMAP APPEND carry lines as CRLF:
            # clients convert bare LF, so a 7-bit part's bytes change in
            # transit. Expect what the transported message previews to.

            canonical = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            g = json.loads(subprocess.run([MAILGATE, "preview", "-"], input=canonical, capture_output=True,
                                          check=True).stdout)
        tc.assertEqual(len(found), 1, "%s: %d tickets" % (name, len(found)))
        t = found[0]
        tc.assertEqual(users[t["creator"]]["address"].lower(), g["user"]["address"].lower(), name)
        tc.assertEqual(users[t["creator"]]["name"], g["user"]["name"], name)
        tc.assertEqual([media[a]["sha256"] for a in t["attachments"]], [m["sha256"] for m in g["media"]], name)
        tc.assertEqual([media[a]["name"] for a in t["attachments"]], [m["name"] for m in g["media"]], name)
        message = g["ticket"]["message"]
        for ref, uuid_ in zip(g["ticket"]["attachments"], t["attachments"]):
            message = message.replace('"att:%s"' % ref, '"att:%s"' % uuid_)
        tc.assertEqual(t["message"], message, name)
    tc.assertEqual(len(state["tickets"]), expected)

class SmtpConversation:
    """A raw SMTP client for hostile tests: send bytes, read replies."""
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """One (possibly multi-line) reply: (code, text); (None, '') at EOF."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return (None, b"".join(lines).decode(errors="replace"))
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line + b"\n")
            if len(line) < 4 or line[3:4] != b"-":
                return (int(line[:3]), b"".join(lines).decode(errors="replace"))

    def command(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def close(self):
        self.sock.close()

class Workdir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="mailgate-e2e-")
        os.chmod(self.path, 0o755)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)

class Dovecot:
    """A private Dovecot on 127.0.0.1 (recipe in ../shared/peers.md): plain
    IMAP with STARTTLS on `port`, IMAPS on `tls_port`, users from a
    passwd-file. Restartable, to test mailgate across server outages."""
    def __init__(self, workdir, pki, users=(("support@example.com", "secret"),), oauth2_introspection_url=None,
                 name="dovecot"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "mail"), exist_ok=True)
        for d in (workdir, self.dir):
            os.chmod(d, 0o755)
        shutil.chown(os.path.join(self.dir, "mail"), "nobody", "nogroup")
        self.port, self.tls_port = free_port(), free_port()
        self.passwords = dict(users)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for user, password in users:
                f.write("%s:{PLAIN}%s\n" % (user, password))
        self.conf = os.path.join(self.dir, "dovecot.conf")
        d = self.dir
        oauth2 = ""
        if oauth2_introspection_url:
            # XOAUTH2: Dovecot asks this URL whether a token is active and whose it is.
            with open(os.path.join(d, "oauth2.conf"), "w") as f:
                f.write("introspection_mode = post\nintrospection_url = %s\nusername_attribute = username\n"
                        "active_attribute = active\nactive_value = true\n" % oauth2_introspection_url)
            oauth2 = "passdb {\n  driver = oauth2\n  args = %s/oauth2.conf\n}\n" % d
        with open(self.conf, "w") as f:
            f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/run/state
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{pki.cert}
ssl_key = <{pki.key}
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2" if oauth2_introspection_url else ""}
mail_location = maildir:{d}/mail/%u
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
{oauth2}userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
""")
        for path in (pki.cert, pki.key):
            os.chmod(path, 0o644)

    def start(self):
        # The daemon keeps its inherited descriptors: no pipes, or run() waits forever.
        subprocess.run(["/usr/sbin/dovecot", "-c", self.conf], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        wait_port(self.tls_port)
        return self

    def stop(self):
        pid_file = os.path.join(self.dir, "run", "master.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
            wait_for(lambda: not os.path.exists(pid_file), timeout=20, what="dovecot to stop")

    def client(self, user="support@example.com"):
        import imaplib
        c = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        c.login(user, self.passwords[user])
        return c

    def append(self, raw, folder="INBOX", flags="", user="support@example.com"):
        c = self.client(user)
        try:
            typ, data = c.append(folder, flags or None, None, raw)
            assert typ == "OK", data
        finally:
            c.logout()

    def flags(self, folder="INBOX", user="support@example.com"):
        """{uid: flags-string} of the folder."""
        import re
        c = self.client(user)
        try:
            c.select(folder)
            typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
            out = {}
            for item in data:
                if not item:
                    continue
                text = item.decode() if isinstance(item, bytes) else item[0].decode()
                m = re.search(r"UID (\d+)", text)
                f = re.search(r"FLAGS \(([^)]*)\)", text)
                if m and f:
                    out[int(m.group(1))] = f.group(1)
            return out
        finally:
            c.logout()

    def imap_yaml(self, name="support", security="none", port=None, folder="INBOX", after_import="seen",
                  password_file=None, idle=True, poll="1s", ca_file=None, user="support@example.com", extra=""):
        return ("  - name: %s\n    host: %s\n    port: %d\n    security: %s\n    username: %s\n"
                "    password_file: %s\n    folder: %s\n    after_import: %s\n    idle: %s\n"
                "    poll_interval: %s\n%s%s" % (
                    name, "localhost" if security != "none" else "127.0.0.1",
                    port or (self.tls_port if security == "tls" else self.port), security, user,
                    password_file, folder, after_import, "true" if idle else "false", poll,
                    "    ca_file: %s\n" % ca_file if ca_file else "", extra))


class DovecotTestCase(unittest.TestCase):
    """One private Dovecot for the whole class, with a user NAME@example.com
    (password secret-NAME) for each of the class's DOVECOT_USERS; each test
    gets its own directory and fake Messenger."""
    DOVECOT_USERS = ()

    @classmethod
    def setUpClass(cls):
        cls.work = Workdir()
        cls.pki = Pki(cls.work.path)
        cls.dovecot = Dovecot(cls.work.path, cls.pki,
                              users=[("%s@example.com" % u, "secret-" + u) for u in cls.DOVECOT_USERS]).start()

    @classmethod
    def tearDownClass(cls):
        cls.dovecot.stop()
        cls.work.cleanup()

    def setUp(self):
        self.dir = os.path.join(self.work.path, self.id().split(".")[-1])
        os.makedirs(self.dir)
        self.fake = FakeMessenger(self.pki)
