"""Starts real processes on 127.0.0.1 for the end-to-end tests: the fake
Messenger over TLS (with a test CA made by openssl), `mailgate serve` on a
generated config, and helpers to talk SMTP and to wait for tickets.
Paths come from the environment ctest sets: MAILGATE_BIN, FAKE_MESSENGER_BIN,
MAILGATE_SOURCE_DIR."""
import json, os, shutil, signal, socket, ssl, subprocess, tempfile, time, urllib.request

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

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Mailgate:
    """`mailgate serve` on a generated config; restartable (crash tests)."""
    def __init__(self, workdir, fake=None, pki=None, extra_yaml="", smtp_yaml="", protocol="smtp"):
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
