"""What an admin gets besides the binary: man pages that render and agree
with `mailgate --help`, the README and the reference config; the install
layout the Debian package is built from; a Grafana dashboard whose queries
parse and name only mailgate's metrics.

Environment (set by tests/CMakeLists.txt): MAILGATE_BIN, MAILGATE_BUILD_DIR,
MAILGATE_SOURCE_DIR."""
import gzip, json, os, re, shutil, subprocess, tempfile, unittest

MAILGATE = os.environ.get("MAILGATE_BIN", "build/bin/mailgate")
BUILD = os.environ.get("MAILGATE_BUILD_DIR", "build")
SOURCE = os.environ.get("MAILGATE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

# Metrics mailgate exports (daemon/metrics_server.cpp) and those announced in
# issue 14 for the API, IMAP, SMTP and policy parts. The dashboard and the
# alerts may use these and nothing else, so a renamed metric fails here
# instead of leaving an empty panel or an alert that can never fire.
KNOWN_METRICS = {
    "mailgate_messages", "mailgate_queue_bytes", "mailgate_queue_deferred",
    "mailgate_queue_oldest_age_seconds", "mailgate_start_time_seconds",
    "mailgate_api_requests_total", "mailgate_api_request_duration_seconds_bucket",
    "mailgate_api_rate_limit_usage_ratio", "mailgate_api_paused",
    "mailgate_tickets_created_total", "mailgate_media_uploaded_bytes_total",
    "mailgate_imap_last_sync_timestamp_seconds", "mailgate_imap_messages_imported_total",
    "mailgate_smtp_sessions_total", "mailgate_smtp_replies_total",
    "mailgate_held_messages", "mailgate_spool_free_bytes",
}


def render(page):
    """The page as `man -l` shows it, and groff's warnings (what lintian
    reports as groff-message)."""
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MAN_KEEP_FORMATTING="")
    r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", page],
                       capture_output=True, text=True, env=env, timeout=60)
    return r.returncode, re.sub(r".\x08", "", r.stdout), r.stderr


def help_text():
    return subprocess.run([MAILGATE, "--help"], capture_output=True, text=True, check=True, timeout=30).stdout


def help_commands(text):
    """Commands in --help's "Commands:" section: `  serve --config FILE ...`."""
    section = text.split("Commands:", 1)[1].split("Options:", 1)[0]
    return {m.group(1) for m in re.finditer(r"^  ([a-z][a-z-]+)\b", section, re.M)}


def section(text, name):
    """One top-level section of a rendered man page."""
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)" % re.escape(name), text, re.M | re.S)
    return m.group(1) if m else ""


@unittest.skipUnless(shutil.which("man"), "man (man-db) not installed")
class ManPages(unittest.TestCase):
    def page(self, name):
        path = os.path.join(BUILD, "man", name)
        self.assertTrue(os.path.exists(path), path + " was not built (scdoc missing?)")
        return path

    def test_pages_render_without_warnings(self):
        for name, title in (("mailgate.8", "mailgate(8)"), ("mailgate.yaml.5", "mailgate.yaml(5)")):
            with self.subTest(page=name):
                rc, out, err = render(self.page(name))
                self.assertEqual(rc, 0, err)
                self.assertEqual(err.strip(), "", "groff warnings in " + name)
                self.assertIn(title, out.splitlines()[0])
                for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
                    self.assertIn("\n" + s + "\n", out)
                with gzip.open(self.page(name) + ".gz", "rt") as z, open(self.page(name)) as f:
                    self.assertEqual(z.read(), f.read(), "the installed .gz is the same page")

    def test_help_and_man_page_list_the_same_commands_and_options(self):
        text = help_text()
        _, man, _ = render(self.page("mailgate.8"))
        synopsis = section(man, "SYNOPSIS")
        man_commands = set(re.findall(r"^\s*mailgate ([a-z][a-z-]+)", synopsis, re.M))
        self.assertEqual(help_commands(text), man_commands,
                         "mailgate --help and mailgate(8)'s SYNOPSIS disagree on the commands")
        commands = section(man, "COMMANDS")
        for c in man_commands:
            self.assertRegex(commands, r"(?m)^\s{7}%s\b" % re.escape(c), c + " has no entry in COMMANDS")
        help_options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
        man_options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", synopsis + section(man, "OPTIONS")))
        self.assertEqual(help_options, man_options, "options in --help vs mailgate(8)'s SYNOPSIS and OPTIONS")
        # Sub-commands of queue (list|show ID|...) as --help shows them.
        queue_help = re.search(r"^  queue ([a-z|A-Z ]+?)\s+--config", text, re.M).group(1)
        self.assertIn(queue_help.strip(), re.sub(r"\s+", " ", synopsis))

    def test_exit_statuses_of_help_are_in_the_man_page(self):
        text = help_text()
        _, man, _ = render(self.page("mailgate.8"))
        exit_section = section(man, "EXIT STATUS")
        for code in re.findall(r"\b(\d\d?) [a-z]", text.split("Exit status", 1)[1]):
            self.assertRegex(exit_section, r"(?m)^\s+%s\n" % code, "exit status %s of --help" % code)

    def test_every_config_key_is_documented(self):
        # The keys the loader knows: every expect_mapping(node, where, {...})
        # list in lib/config (an unknown key is an error there, so this is
        # the complete set).
        with open(os.path.join(SOURCE, "lib", "config", "src", "config.cpp")) as f:
            loader = f.read()
        keys = set()
        for known in re.findall(r"expect_mapping\([^{;]*\{([^}]*)\}", loader):
            keys.update(re.findall(r'"([a-z_]+)"', known))
        self.assertGreater(len(keys), 40, keys)
        _, man, _ = render(self.page("mailgate.yaml.5"))
        missing = sorted(k for k in keys if not re.search(r"(?<![\w])%s:" % re.escape(k), man))
        self.assertEqual(missing, [], "keys lib/config accepts that mailgate.yaml(5) does not document")

    def test_readme_lists_the_commands_of_help(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            readme = f.read()
        for c in help_commands(help_text()):
            self.assertRegex(readme, r"mailgate %s\b" % re.escape(c), c + " is not in the README")
        self.assertIn("mailgate(8)", readme)


class InstallLayout(unittest.TestCase):
    """`cmake --install` into a staging root: the files and paths the .deb
    carries (CPack packs the same install rules)."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp()
        env = dict(os.environ, DESTDIR=cls.root)
        r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"],
                           capture_output=True, text=True, env=env, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed:\n" + r.stdout + r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def test_files_are_where_debian_expects_them(self):
        for p in ("/usr/sbin/mailgate", "/lib/systemd/system/mailgate.service", "/etc/mailgate/mailgate.yaml",
                  "/usr/share/man/man8/mailgate.8.gz", "/usr/share/man/man5/mailgate.yaml.5.gz",
                  "/usr/share/doc/mailgate/README.Debian", "/usr/share/doc/mailgate/copyright",
                  "/usr/share/doc/mailgate/changelog.gz", "/usr/share/doc/mailgate/mailgate.example.yaml",
                  "/usr/share/doc/mailgate/examples/mailgate.json", "/usr/share/doc/mailgate/examples/alerts.yml"):
            self.assertTrue(os.path.isfile(self.path(p)), p)
        self.assertTrue(os.access(self.path("/usr/sbin/mailgate"), os.X_OK))
        self.assertFalse(os.path.exists(self.path("/usr/bin")), "nothing but the daemon is installed")

    def test_unit_runs_the_installed_binary(self):
        with open(self.path("/lib/systemd/system/mailgate.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/sbin/mailgate serve --config /etc/mailgate/mailgate.yaml", unit)

    def test_packaged_config_is_dry_run_in_the_state_directory_and_valid(self):
        conf = self.path("/etc/mailgate/mailgate.yaml")
        with open(conf) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^spool_dir: /var/lib/mailgate$")
        self.assertRegex(text, r"(?m)^  mode: dry-run$")
        # check-config reads it as the daemon would (the spool path need not exist).
        r = subprocess.run([MAILGATE, "check-config", "--config", conf], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("dry-run", r.stdout)

    def test_changelog_names_this_version(self):
        version = subprocess.run([MAILGATE, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
        with gzip.open(self.path("/usr/share/doc/mailgate/changelog.gz"), "rt") as f:
            self.assertTrue(f.readline().startswith("mailgate (%s) " % version))


class Dashboard(unittest.TestCase):
    def exprs(self):
        with open(os.path.join(SOURCE, "contrib", "grafana", "mailgate.json")) as f:
            dash = json.load(f)
        self.assertEqual(dash["uid"], "mailgate")
        out = []
        for p in dash["panels"]:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
        return out

    def metric_names(self, expr):
        # Identifiers followed by a selector, a range or the end of a call
        # argument, minus PromQL's own words.
        names = set(re.findall(r"\b(mailgate_[a-z_]+|up)\b", expr))
        return names

    def test_dashboard_and_alerts_use_only_mailgate_metrics(self):
        exprs = self.exprs()
        self.assertGreaterEqual(len(exprs), 15)
        with open(os.path.join(SOURCE, "contrib", "prometheus", "alerts.yml")) as f:
            alerts = f.read()
        used = set()
        for _, e in exprs:
            used |= self.metric_names(e)
        used |= set(re.findall(r"\b(mailgate_[a-z_]+)\b", alerts))
        self.assertEqual(sorted(used - KNOWN_METRICS), [])
        # Every metric has a panel.
        self.assertEqual(sorted(KNOWN_METRICS - used), [])

    @unittest.skipUnless(shutil.which("promtool"), "promtool not installed (Debian package prometheus)")
    def test_every_panel_query_parses(self):
        # promtool parses PromQL in rule files: one recording rule per panel
        # query, Grafana's variables replaced by what it would substitute.
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": "dashboard:query%d" % i,
             "expr": e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")}
            for i, (_, e) in enumerate(self.exprs())]}]}
        path = os.path.join(d, "dashboard-rules.yml")
        with open(path, "w") as f:
            json.dump(rules, f)  # JSON is YAML
        r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
