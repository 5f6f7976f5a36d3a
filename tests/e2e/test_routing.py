"""A support mailbox, not a ticket printer (design.md): the envelope kept with
each message, routes choosing ticket fields by recipient, policy holding or
ignoring mail, the flood limit, and the operator's `queue` commands
(list --held/--ignored/--json, release, retry) — over SMTP and LMTP, against
the fake Messenger."""
import json, os, re, signal, smtplib, subprocess, unittest, urllib.request, uuid

from harness import MAILGATE, DovecotTestCase, FakeMessenger, Mailgate, Pki, Workdir, free_port, wait_for

ROUTES_YAML = """routes:
  - name: billing
    match:
      recipient: ["billing@help.example.com"]
    action: ticket
    ticket: {queue: 3}
  - name: support
    match:
      recipient: ["support@example.com"]
    action: ticket
    ticket: {queue: 4}
policy:
  flood: {max: 20, per: 1h, action: hold}
"""

JSON_KEYS = ["id", "state", "received", "source", "mail_from", "recipients", "from", "subject", "reason", "ticket"]


def mail(sender, subject, extra_headers="", to="support@example.com"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@e2e.test>\r\n%s\r\nhello\r\n"
            % (sender, to, subject, uuid.uuid4(), extra_headers)).encode()


class MailgateCase(unittest.TestCase):
    """One fake and one mailgate per class; `protocol` and `extra_yaml` per subclass."""
    protocol = "smtp"
    extra_yaml = ""

    @classmethod
    def setUpClass(cls):
        cls.work = Workdir()
        cls.pki = Pki(cls.work.path)
        cls.fake = FakeMessenger(cls.pki)
        cls.metrics_port = free_port()
        cls.mailgate = Mailgate(cls.work.path, cls.fake, cls.pki, protocol=cls.protocol,
                                extra_yaml=cls.extra_yaml + 'metrics:\n  listen: "127.0.0.1:%d"\n' % cls.metrics_port
                                ).start()

    @classmethod
    def tearDownClass(cls):
        cls.mailgate.stop()
        cls.fake.stop()
        cls.work.cleanup()

    def send(self, raw, rcpts=("support@example.com",), mail_from="bounces@sender.example"):
        client = smtplib.LMTP if self.protocol == "lmtp" else smtplib.SMTP
        with client("127.0.0.1", self.mailgate.port, timeout=30) as s:  # LMTP: smtplib says LHLO
            s.ehlo()
            self.assertEqual(s.mail(mail_from)[0], 250)
            for r in rcpts:
                self.assertEqual(s.rcpt(r)[0], 250, r)
            code, text = s.data(raw)
            self.assertEqual(code, 250, text)
            # LMTP answers the end of data once per recipient (smtplib reads one).
            for _ in rcpts[1:] if self.protocol == "lmtp" else []:
                self.assertEqual(s.getreply()[0], 250)

    def listing(self, *filters):
        r = self.mailgate.queue("list", "--json", *filters)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def by_subject(self, subject, *filters):
        return [m for m in self.listing(*filters) if m["subject"] == subject]

    def wait_state(self, subject, state, count=1, timeout=60):
        return wait_for(lambda: len(self.by_subject(subject, "--" + state)) == count and
                        self.by_subject(subject, "--" + state), timeout,
                        what="%d message(s) '%s' %s" % (count, subject, state))

    def tickets(self, title):
        return [t for t in self.fake.state()["tickets"] if t["title"] == title]

    def wait_tickets(self, title, count, timeout=60):
        return wait_for(lambda: len(self.tickets(title)) == count and self.tickets(title), timeout,
                        what="%d ticket(s) '%s'" % (count, title))

    def creator_address(self, ticket):
        users = {u["id"]: u for u in self.fake.state()["users"]}
        return users[ticket["creator"]]["address"].lower()

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10) as r:
            return r.read().decode()


class RoutingOverSmtp(MailgateCase):
    """Routes and policy; needs the real Router (routes:, policy: in the config)."""
    extra_yaml = ROUTES_YAML

    def test_billing_and_support_reach_their_queues(self):
        tag = uuid.uuid4().hex[:8]
        self.send(mail("ann-%s@customer.example" % tag, "invoice " + tag, to="billing@help.example.com"),
                  rcpts=["billing@help.example.com"])
        self.send(mail("ann-%s@customer.example" % tag, "question " + tag), rcpts=["support@example.com"])
        [billing] = self.wait_tickets("invoice " + tag, 1)
        [support] = self.wait_tickets("question " + tag, 1)
        self.assertIs(type(billing["queue"]), int, "a number stays a number")
        self.assertEqual(billing["queue"], 3)
        self.assertEqual(support["queue"], 4)
        [listed] = self.wait_state("invoice " + tag, "done")
        self.assertEqual(listed["recipients"], ["billing@help.example.com"])
        self.assertEqual(listed["source"], self.protocol)
        self.assertEqual(listed["mail_from"], "bounces@sender.example")
        self.assertEqual(listed["ticket"], billing["id"])

    def test_one_mail_to_both_addresses_is_one_ticket_by_the_first_route(self):
        tag = uuid.uuid4().hex[:8]
        # RCPT order is support first; the routes' order (billing first) decides.
        self.send(mail("bob-%s@customer.example" % tag, "both " + tag), rcpts=["support@example.com",
                                                                               "billing@help.example.com"])
        [ticket] = self.wait_tickets("both " + tag, 1)
        self.assertEqual(ticket["queue"], 3)
        [listed] = self.wait_state("both " + tag, "done")
        self.assertEqual(listed["recipients"], ["support@example.com", "billing@help.example.com"])
        self.assertEqual(len(self.tickets("both " + tag)), 1)

    def test_an_untrusted_x_original_from_is_not_the_user(self):
        tag = uuid.uuid4().hex[:8]
        self.send(mail("mallory-%s@attacker.example" % tag, "spoof " + tag,
                       "X-Original-From: ceo@bigcustomer.example\r\n"))
        [ticket] = self.wait_tickets("spoof " + tag, 1)
        self.assertEqual(self.creator_address(ticket), "mallory-%s@attacker.example" % tag)

    def test_a_flood_is_held_beyond_the_limit_and_released_by_a_person(self):
        tag = uuid.uuid4().hex[:8]
        sender = "flood-%s@customer.example" % tag
        for i in range(25):
            self.send(mail(sender, "flood %s %d" % (tag, i)))
        held = wait_for(lambda: len([m for m in self.listing("--held") if m["subject"].startswith("flood " + tag)]) == 5
                        and [m for m in self.listing("--held") if m["subject"].startswith("flood " + tag)], 120,
                        what="5 held")
        wait_for(lambda: sum(t["title"].startswith("flood " + tag) for t in self.fake.state()["tickets"]) == 20, 120,
                 what="20 tickets")
        for m in held:
            self.assertEqual(m["from"], sender)
            self.assertIsNone(m["ticket"])
            self.assertTrue(m["reason"], "a held message says why")
        self.assertIn('mailgate_held_messages{reason="flood"} 5', self.metrics())
        for m in held:
            r = self.mailgate.queue("release", m["id"])
            self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: sum(t["title"].startswith("flood " + tag) for t in self.fake.state()["tickets"]) == 25, 120,
                 what="25 tickets after the releases")
        self.assertNotIn('mailgate_held_messages{reason="flood"}', self.metrics())

    def test_a_newsletter_is_held_then_released(self):
        tag = uuid.uuid4().hex[:8]
        self.send(mail("news-%s@shop.example" % tag, "news " + tag, "Precedence: bulk\r\n"))
        [held] = self.wait_state("news " + tag, "held")
        self.assertTrue(held["reason"])
        self.assertEqual(self.tickets("news " + tag), [])
        r = self.mailgate.queue("retry", held["id"])
        self.assertEqual(r.returncode, 1, "retry is not for held mail")
        self.assertIn("release", r.stderr)
        r = self.mailgate.queue("release", held["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_tickets("news " + tag, 1)
        [done] = self.wait_state("news " + tag, "done")
        self.assertIsInstance(done["ticket"], int)

    def test_our_own_address_is_ignored_then_retried_into_a_ticket(self):
        tag = uuid.uuid4().hex[:8]
        self.send(mail("support@example.com", "own " + tag))
        [ignored] = self.wait_state("own " + tag, "ignored")
        self.assertTrue(ignored["reason"])
        self.assertTrue(os.path.exists(os.path.join(self.mailgate.spool, "done", ignored["id"] + ".eml")))
        self.assertEqual(self.tickets("own " + tag), [])
        r = self.mailgate.queue("release", ignored["id"])
        self.assertEqual(r.returncode, 1, "release is for held mail")
        r = self.mailgate.queue("retry", ignored["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_tickets("own " + tag, 1)


class RoutingOverLmtp(RoutingOverSmtp):
    protocol = "lmtp"


class RoutingOverImap(DovecotTestCase):
    """IMAP has no envelope: the recipients come from Delivered-To (else
    X-Original-To, else To and Cc), and routes match them."""
    DOVECOT_USERS = ("routed",)

    def tearDown(self):
        self.fake.stop()

    def test_delivered_to_routes_imported_mail(self):
        pw = os.path.join(self.dir, "pw-routed")
        with open(pw, "w") as f:
            f.write("secret-routed\n")
        m = Mailgate(self.dir, self.fake, self.pki, extra_yaml=ROUTES_YAML,
                     imap_yaml=self.dovecot.imap_yaml(name="routed", user="routed@example.com", password_file=pw))
        self.dovecot.append(b"Delivered-To: billing@help.example.com\r\n" +
                            mail("ann@customer.example", "imap invoice", to="support@example.com"),
                            user="routed@example.com")
        m.start()
        self.addCleanup(m.stop)
        [ticket] = wait_for(lambda: [t for t in self.fake.state()["tickets"] if t["title"] == "imap invoice"], 60,
                            what="the imported mail's ticket")
        self.assertEqual(ticket["queue"], 3, "routed by Delivered-To, not by To")
        [listed] = json.loads(m.queue("list", "--json", "--done").stdout)
        self.assertEqual(listed["source"], "imap:routed")
        self.assertIsNone(listed["mail_from"], "IMAP has no MAIL FROM")
        self.assertEqual(listed["recipients"], ["billing@help.example.com"])


BAD_ROUTE_YAML = """routes:
  - name: broken
    match:
      subject: "(unclosed"
    action: hold
"""


class RoutesTheRouterRefuses(unittest.TestCase):
    """A pattern RE2 refuses: serve does not start (78, FILE:LINE:COL); a
    reload to it keeps the running routes."""

    def setUp(self):
        self.work = Workdir()
        self.addCleanup(self.work.cleanup)

    def test_serve_refuses_to_start(self):
        m = Mailgate(self.work.path, extra_yaml=BAD_ROUTE_YAML)
        r = subprocess.run([MAILGATE, "serve", "--config", m.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertRegex(r.stderr, re.escape(m.config) + r":\d+:\d+: ")

    def test_a_reload_to_a_bad_pattern_keeps_the_running_routes(self):
        pki = Pki(self.work.path)
        fake = FakeMessenger(pki)
        self.addCleanup(fake.stop)
        m = Mailgate(self.work.path, fake, pki, extra_yaml=ROUTES_YAML).start()
        self.addCleanup(m.stop)
        with open(m.config) as f:
            good = f.read()
        with open(m.config, "w") as f:
            f.write(good.replace(ROUTES_YAML, BAD_ROUTE_YAML))
        m.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "serve.reload_failed" in m.log_text(), 30, what="serve.reload_failed")
        with smtplib.SMTP("127.0.0.1", m.port, timeout=30) as s:
            s.sendmail("a@sender.example", ["billing@help.example.com"], mail("ann@customer.example", "after reload"))
        [ticket] = wait_for(lambda: [t for t in fake.state()["tickets"] if t["title"] == "after reload"], 60,
                            what="the ticket")
        self.assertEqual(ticket["queue"], 3, "the old routes still apply")


class QueueCommands(MailgateCase):
    """The operator's view (design.md): the JSON fields, the state filters,
    exit status 1 for an unknown id or a wrong state, the envelope of `deliver`."""

    def test_the_json_fields_are_exactly_the_contract(self):
        tag = uuid.uuid4().hex[:8]
        self.send(mail("Jane <jane-%s@customer.example>" % tag, "json " + tag))
        [m] = self.wait_state("json " + tag, "done")
        self.assertEqual(list(m.keys()), JSON_KEYS)
        self.assertEqual(m["state"], "done")
        self.assertRegex(m["received"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(m["source"], self.protocol)
        self.assertEqual(m["mail_from"], "bounces@sender.example")
        self.assertEqual(m["recipients"], ["support@example.com"])
        self.assertEqual(m["from"], "jane-%s@customer.example" % tag)
        self.assertIsNone(m["reason"])
        [ticket] = self.tickets("json " + tag)
        self.assertEqual(m["ticket"], ticket["id"])
        self.assertEqual([x["id"] for x in self.listing("--done") if x["subject"] == "json " + tag], [m["id"]])
        self.assertEqual([x for x in self.listing("--failed") if x["subject"] == "json " + tag], [])

    def test_an_auto_reply_is_ignored_kept_and_retried_into_a_ticket(self):
        tag = uuid.uuid4().hex[:8]
        self.send(mail("away-%s@customer.example" % tag, "away " + tag, "X-Autoreply: yes\r\n"))
        [m] = self.wait_state("away " + tag, "ignored")
        self.assertEqual(list(m.keys()), JSON_KEYS)
        self.assertTrue(m["reason"])
        self.assertIsNone(m["ticket"])
        self.assertIn(" ignored ", self.mailgate.queue("list", "--ignored").stdout)
        self.assertEqual(self.tickets("away " + tag), [])
        r = self.mailgate.queue("retry", m["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_tickets("away " + tag, 1)
        [done] = self.wait_state("away " + tag, "done")
        self.assertEqual(done["id"], m["id"])

    def test_unknown_ids_and_wrong_states_exit_1_with_a_message(self):
        for command in ("show", "retry", "release", "drop"):
            r = self.mailgate.queue(command, "no-such-id")
            self.assertEqual(r.returncode, 1, command)
            self.assertIn("no message no-such-id", r.stderr, command)
        tag = uuid.uuid4().hex[:8]
        self.send(mail("done-%s@customer.example" % tag, "state " + tag))
        [m] = self.wait_state("state " + tag, "done")
        for command in ("retry", "release"):
            r = self.mailgate.queue(command, m["id"])
            self.assertEqual(r.returncode, 1, command)
            self.assertIn("is done", r.stderr, command)
        r = self.mailgate.queue("list", "--held", "--done")
        self.assertNotEqual(r.returncode, 0, "one state filter at a time")

    def test_deliver_keeps_sender_and_recipients(self):
        tag = uuid.uuid4().hex[:8]
        r = subprocess.run([MAILGATE, "deliver", "--config", self.mailgate.config, "--sender", "mta@relay.example",
                            "--recipient", "support@example.com", "--recipient", "billing@help.example.com"],
                           input=mail("pipe-%s@customer.example" % tag, "pipe " + tag), capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        [m] = self.wait_state("pipe " + tag, "done")
        self.assertEqual(m["source"], "deliver")
        self.assertEqual(m["mail_from"], "mta@relay.example")
        self.assertEqual(m["recipients"], ["support@example.com", "billing@help.example.com"])
        show = self.mailgate.queue("show", m["id"]).stdout
        self.assertIn("mail_from: <mta@relay.example>", show)
        self.assertIn("recipient: support@example.com\nrecipient: billing@help.example.com\n", show)


class QueueCommandsOverLmtp(QueueCommands):
    protocol = "lmtp"


if __name__ == "__main__":
    unittest.main()
