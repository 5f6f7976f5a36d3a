"""Threading end to end (design.md "Threading"): `mailgate serve` against
the fake Messenger. A customer's reply joins their ticket by In-Reply-To,
References or the subject tag; a stranger or an unknown ticket gets a new
one; closed tickets follow threading.closed; a reply is posted once across
kill -9; a thread imported from Dovecot in one batch stays one ticket."""
import json, os, re, smtplib, subprocess, time, unittest, uuid

from harness import MAILGATE, DovecotTestCase, FakeMessenger, Mailgate, Pki, Workdir, wait_for


def mail(subject, message_id, sender="Jane <jane@example.org>", headers=""):
    return ("From: %s\r\nTo: support@example.com\r\nSubject: %s\r\nMessage-ID: <%s>\r\n%s\r\n"
            "new text of %s\r\n\r\n> quoted history\r\n" % (sender, subject, message_id, headers, message_id)).encode()


def send(port, raw):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("sender@example.org", ["support@example.com"], raw)


def replies(fake, ticket_id):
    t = fake.ticket(ticket_id)
    return [r for r in (t or {}).get("replies", []) if r.get("type") == "reply"]


class Threading(unittest.TestCase):
    def setUp(self):
        self.work = Workdir()
        self.pki = Pki(self.work.path)
        self.fake = FakeMessenger(self.pki)
        self.mailgates = []

    def tearDown(self):
        for m in self.mailgates:
            m.stop()
        self.fake.stop()
        self.work.cleanup()

    def start(self, threading_yaml=""):
        d = os.path.join(self.work.path, "mg%d" % len(self.mailgates))
        os.makedirs(d)
        extra = "threading:\n" + threading_yaml if threading_yaml else ""
        m = Mailgate(d, self.fake, self.pki, extra_yaml=extra).start()
        self.mailgates.append(m)
        return m

    def tickets(self):
        return self.fake.state()["tickets"]

    def wait_done(self, mg, count):
        wait_for(lambda: mg.queue("list").stdout.count(" done ") >= count, 60, interval=0.2,
                 what="%d messages done" % count)

    def first_ticket(self, mg, root="root@t"):
        send(mg.port, mail("Printer on fire", root))
        wait_for(lambda: len(self.tickets()) == 1, 30, what="the first ticket")
        return self.tickets()[0]["id"]

    def test_replies_by_in_reply_to_references_subject_and_to_a_reply(self):
        mg = self.start()
        ticket = self.first_ticket(mg)
        send(mg.port, mail("Re: Printer on fire", "r1@t", headers="In-Reply-To: <root@t>\r\n"))
        wait_for(lambda: len(replies(self.fake, ticket)) == 1, 30, what="the reply by In-Reply-To")
        send(mg.port, mail("Re: Printer on fire", "r2@t", headers="References: <unknown@t> <root@t>\r\n"))
        wait_for(lambda: len(replies(self.fake, ticket)) == 2, 30, what="the reply by References")
        send(mg.port, mail("Re: [#%d] Printer on fire" % ticket, "r3@t"))
        wait_for(lambda: len(replies(self.fake, ticket)) == 3, 30, what="the reply by subject tag")
        send(mg.port, mail("Re: Re: Printer", "r4@t", headers="In-Reply-To: <r3@t>\r\nReferences: <r3@t>\r\n"))
        wait_for(lambda: len(replies(self.fake, ticket)) == 4, 30, what="the reply to a reply")
        self.assertEqual(len(self.tickets()), 1)
        texts = [r["message"] for r in replies(self.fake, ticket)]
        for i, text in enumerate(texts, 1):
            self.assertIn("new text of r%d@t" % i, text)
            self.assertNotIn("quoted history", text)  # threading.strip_quoted
        listing = mg.queue("list").stdout
        self.assertRegex(listing, r"reply \S+ on ticket %d \(by references\)" % ticket)
        self.assertRegex(listing, r"reply \S+ on ticket %d \(by subject\)" % ticket)
        # queue list --json names the ticket each message created or joined;
        # queue show says which ticket a reply joined, and how.
        rows = json.loads(mg.queue("list", "--json").stdout)
        self.assertEqual(len(rows), 5)
        self.assertEqual({row["ticket"] for row in rows}, {ticket})
        reply_row = next(row for row in rows if "by subject" in (mg.queue("show", row["id"]).stdout))
        shown = mg.queue("show", reply_row["id"]).stdout
        self.assertIn("joined_ticket: %d (by subject)" % ticket, shown)
        self.assertRegex(shown, r"\nreply: \d+")

    def preview(self, mg, raw, config=None):
        path = os.path.join(self.work.path, "preview.eml")
        with open(path, "wb") as f:
            f.write(raw)
        out = subprocess.run([MAILGATE, "preview", path, "--config", config or mg.config],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_preview_shows_the_reply_from_the_spools_index_and_creates_no_spool(self):
        mg = self.start()
        ticket = self.first_ticket(mg)
        self.wait_done(mg, 1)
        p = self.preview(mg, mail("Re: Printer", "p1@t", headers="References: <root@t>\r\n"))
        self.assertEqual(p["action"], "reply")
        self.assertEqual(p["thread"], {"by": "references", "ticket": ticket})
        self.assertEqual(p["reply"]["ticket"], ticket)
        self.assertIn("new text of p1@t", p["reply"]["message"])
        self.assertNotIn("quoted history", p["reply"]["message"])
        self.assertIsNone(p["ignored"])
        stranger = self.preview(mg, mail("Re: Printer", "p2@t", sender="mallory@example.org",
                                         headers="In-Reply-To: <root@t>\r\n"))
        self.assertIsNone(stranger["thread"])
        self.assertNotIn("reply", stranger)
        # A spool directory without a database: nothing is created, only the subject can thread.
        empty = os.path.join(self.work.path, "no-spool")
        config = os.path.join(self.work.path, "preview.yaml")
        with open(mg.config) as src, open(config, "w") as dst:
            dst.write(src.read().replace("spool_dir: %s" % mg.spool, "spool_dir: %s" % empty))
        p = self.preview(mg, mail("Re: [#42] Printer", "p3@t", headers="In-Reply-To: <root@t>\r\n"), config)
        self.assertEqual(p["thread"], {"by": "subject", "ticket": 42})
        self.assertFalse(os.path.exists(empty))

    def test_a_stranger_using_the_tag_and_an_unknown_ticket_get_new_tickets(self):
        mg = self.start()
        ticket = self.first_ticket(mg)
        send(mg.port, mail("Re: [#%d] Printer on fire" % ticket, "s1@t", sender="Mallory <mallory@example.org>"))
        send(mg.port, mail("Re: [#987654] lost ticket", "u1@t"))
        wait_for(lambda: len(self.tickets()) == 3, 30, what="two new tickets")
        self.assertEqual(replies(self.fake, ticket), [])
        log = mg.log_text()
        self.assertIn("sender not the ticket's creator", log)
        self.assertIn("the API does not know the ticket", log)

    def test_a_colleague_joins_with_allow_any(self):
        mg = self.start("  allow: any\n")
        ticket = self.first_ticket(mg)
        send(mg.port, mail("Re: [#%d] Printer" % ticket, "c1@t", sender="Bob <bob@example.org>"))
        wait_for(lambda: len(replies(self.fake, ticket)) == 1, 30, what="the colleague's reply")
        self.assertEqual(len(self.tickets()), 1)

    def test_closed_tickets_follow_the_closed_policy(self):
        for policy in ("reopen", "reply", "new_ticket"):
            with self.subTest(policy=policy):
                before = len(self.tickets())
                mg = self.start("  closed: %s\n" % policy)
                root = "root-%s@t" % policy
                send(mg.port, mail("Printer " + policy, root))
                wait_for(lambda: len(self.tickets()) == before + 1, 30, what="the ticket")
                ticket = self.tickets()[-1]["id"]
                self.fake.set_ticket_status(ticket, "closed")
                send(mg.port, mail("Re: Printer", "again-%s@t" % policy, headers="In-Reply-To: <%s>\r\n" % root))
                if policy == "new_ticket":
                    wait_for(lambda: len(self.tickets()) == before + 2, 30, what="the follow-up ticket")
                    follow_up = self.tickets()[-1]
                    self.assertIn("Follow-up to closed ticket #", follow_up["message"])
                    self.assertEqual(replies(self.fake, ticket), [])
                    self.assertEqual(self.fake.ticket(ticket)["status"], "closed")
                else:
                    wait_for(lambda: len(replies(self.fake, ticket)) == 1, 30, what="the reply")
                    self.assertEqual(len(self.tickets()), before + 1)
                    self.assertEqual(self.fake.ticket(ticket)["status"], "open" if policy == "reopen" else "closed")
                mg.stop()

    def test_killed_while_the_reply_is_posted_gives_exactly_one_reply(self):
        mg = self.start()
        ticket = self.first_ticket(mg)
        # The API adds the reply at once and answers 5 s later: the kill lands
        # after the reply exists and before mailgate has its id.
        self.fake.configure(fault_rate=1.0, faults=["slow-answer"], slow_ms=5000, fault_calls=["replies"])
        send(mg.port, mail("Re: Printer", "k1@t", headers="In-Reply-To: <root@t>\r\n"))
        wait_for(lambda: len(replies(self.fake, ticket)) == 1, 30, what="the reply at the API")
        mg.kill()
        self.fake.configure(fault_rate=0.0)
        mg.start()
        wait_for(lambda: re.search(r"reply \S+ on ticket", mg.queue("list").stdout), 30, interval=0.3,
                 what="the reply recorded after the restart")
        time.sleep(2)  # a wrong second POST would arrive within this
        self.assertEqual(len(replies(self.fake, ticket)), 1)
        self.assertIn("pipeline.reply_adopted", mg.log_text())


class ThreadFromImap(DovecotTestCase):
    DOVECOT_USERS = ("thread",)

    def tearDown(self):
        self.mg.stop()
        self.fake.stop()

    def test_a_thread_of_three_in_one_batch_is_one_ticket_and_two_replies_in_order(self):
        user = "thread@example.com"
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write("secret-thread\n")
        self.dovecot.append(mail("Printer", "a@imap"), user=user)
        self.dovecot.append(mail("Re: Printer", "b@imap", headers="In-Reply-To: <a@imap>\r\nReferences: <a@imap>\r\n"),
                            user=user)
        self.dovecot.append(mail("Re: Re: Printer", "c@imap",
                                 headers="In-Reply-To: <b@imap>\r\nReferences: <a@imap> <b@imap>\r\n"), user=user)
        self.mg = Mailgate(self.dir, self.fake, self.pki,
                           imap_yaml=self.dovecot.imap_yaml(name="support", user=user, password_file=pw)).start()
        wait_for(lambda: len(self.fake.state()["tickets"]) == 1 and
                 len(replies(self.fake, self.fake.state()["tickets"][0]["id"])) == 2, 60, interval=0.3,
                 what="one ticket and two replies")
        time.sleep(1)
        tickets = self.fake.state()["tickets"]
        self.assertEqual(len(tickets), 1)
        self.assertIn("new text of a@imap", tickets[0]["message"])
        texts = [r["message"] for r in replies(self.fake, tickets[0]["id"])]
        self.assertIn("new text of b@imap", texts[0])
        self.assertIn("new text of c@imap", texts[1])


if __name__ == "__main__":
    unittest.main()
