"""The SMTP server goes away while mails are requested, then comes back: every mail arrives, once.

On both databases through the test client, and on PostgreSQL against a live gunicorn that is
restarted during the outage.
"""

import collections
import uuid

from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxMail
from tests.helpers import PASSWORD, MailTestCase
from tests.liveserver import LiveServerTestCase
from tests.smtp_sink import SmtpSink

REQUESTED = 20


def duplicates(messages):
    """Message-IDs (and recipients with subjects) that arrived more than once."""
    seen = collections.Counter((m["Message-ID"], m["To"], m["Subject"]) for m in messages)
    return {key: count for key, count in seen.items() if count > 1}


class OutageTests(MailTestCase):
    def test_mails_requested_while_smtp_is_down_all_arrive_once_it_is_back(self):
        self.sink.stop()
        try:
            addresses = [self.new_address() for _ in range(REQUESTED // 2)]
            for address in addresses:  # a verification mail, then a reset mail, each
                self.register(address)
                self.client.post("/v1/auth/password/forgot", json={"email": address})
            self.wait_until(lambda: db.session.rollback() or self.tried_all(REQUESTED))
        finally:
            self.sink.start()
        messages = self.sink.wait_for(REQUESTED, timeout=30)
        self.wait_until(lambda: db.session.rollback() or db.session.scalar(select(func.count(OutboxMail.id))) == 0)
        self.assertEqual(len(self.sink.messages), REQUESTED)
        self.assertEqual(duplicates(messages), {})
        for address in addresses:
            self.assertEqual(
                sorted(m["Subject"] for m in self.sink.to(address)),
                ["Reset your password", "Verify your e-mail address"],
            )

    def tried_all(self, count):
        """Every mail was tried and refused at least once (the outage really was seen)."""
        return db.session.scalar(select(func.count(OutboxMail.id)).where(OutboxMail.attempts >= 1)) == count


class LiveOutageTests(LiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink().start()
        cls.server_env = {"SMTP_URL": cls.sink.url, "MAIL_RETRY_SECONDS": "0.5"}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.sink.stop()

    def test_an_api_restarted_during_the_outage_still_delivers_every_mail_once(self):
        self.sink.stop()
        try:
            addresses = [f"{uuid.uuid4().hex[:12]}@example.com" for _ in range(REQUESTED)]
            answers = [
                self.server.request("POST", "/v1/auth/register", {"email": a, "password": PASSWORD}) for a in addresses
            ]
            self.assertStatuses(answers, {201})
            self.assertEqual(self.server.scalar("SELECT count(*) FROM mail_outbox WHERE failed_at IS NULL"), REQUESTED)
            self.server.restart()
        finally:
            self.sink.start()
        messages = self.sink.wait_for(REQUESTED, timeout=60)
        self.assertEqual(sorted(m["To"] for m in messages), sorted(addresses))
        self.assertEqual(duplicates(messages), {})
        self.assertNotIn("Traceback", self.server.log())
        print(
            f"\nSMTP outage with an API restart: {REQUESTED} mails requested, {len(messages)} delivered, "
            f"{len(duplicates(messages))} duplicates"
        )
