"""systemd/mailgate.service passes `systemd-analyze verify`, and
`mailgate serve` speaks the sd_notify protocol (READY, STOPPING)."""
import os, shutil, socket, subprocess, tempfile, unittest

from harness import MAILGATE, SOURCE, Mailgate, Workdir, wait_for


class SystemdUnit(unittest.TestCase):
    @unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze not installed")
    def test_unit_verifies(self):
        with open(os.path.join(SOURCE, "systemd", "mailgate.service")) as f:
            unit = f.read()
        self.assertIn("Type=notify", unit)
        self.assertIn("DynamicUser=yes", unit)
        # Issue 13: the kernel bounds memory, descriptors and tasks.
        settings = dict(l.split("=", 1) for l in unit.splitlines() if "=" in l and not l.startswith("#"))
        self.assertEqual(settings.get("MemoryMax"), "1G")
        self.assertGreaterEqual(int(settings.get("LimitNOFILE", "0")), 4096)
        self.assertGreaterEqual(int(settings.get("TasksMax", "0")), 16)
        self.assertIn("ExecStart=/usr/sbin/mailgate serve", unit)
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        # verify checks that ExecStart exists: point it at the built binary.
        path = os.path.join(d, "mailgate.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/sbin/mailgate", os.path.abspath(MAILGATE)))
        # verify runs `man` for each Documentation=man:... page: offer the
        # pages built next to the binary (build/man, from man/*.scd).
        built = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(MAILGATE))), "man")
        for page, section in (("mailgate.8", "man8"), ("mailgate.yaml.5", "man5")):
            os.makedirs(os.path.join(d, "man", section), exist_ok=True)
            shutil.copy(os.path.join(built, page), os.path.join(d, "man", section, page))
        env = dict(os.environ, MANPATH=os.path.join(d, "man"))
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, env=env)
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if "mailgate.service" in l and "Documentation" not in l]
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(problems, [])


class SdNotify(unittest.TestCase):
    def test_ready_and_stopping(self):
        work = Workdir()
        self.addCleanup(work.cleanup)
        sock_path = os.path.join(work.path, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(sock_path)
        s.settimeout(10)
        self.addCleanup(s.close)
        mg = Mailgate(work.path)
        env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="2000000")
        mg.log = open(mg.log_path, "a")
        mg.proc = subprocess.Popen([MAILGATE, "serve", "--config", mg.config], stderr=mg.log, env=env)
        self.addCleanup(mg.stop)
        got = []
        while not any("READY=1" in m for m in got):
            got.append(s.recv(4096).decode())
        while not any("WATCHDOG=1" in m for m in got):
            got.append(s.recv(4096).decode())
        mg.proc.terminate()
        while not any("STOPPING=1" in m for m in got):
            got.append(s.recv(4096).decode())
        self.assertEqual(mg.proc.wait(timeout=30), 0)


if __name__ == "__main__":
    unittest.main()
