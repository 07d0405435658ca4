"""Races of the mailed tokens and the outbox, on PostgreSQL against live gunicorns."""

import collections
import time
import uuid

from tests.liveserver import PASSWORD, LiveServer, LiveServerTestCase, bearer, stop_shared_server
from tests.smtp_sink import SmtpSink, token_in

NEW_PASSWORD = "a brand new password"


def tearDownModule():
    stop_shared_server()


class MailedServer(LiveServerTestCase):
    """A live server that mails to a sink of the class's own."""

    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink().start()
        cls.server_env = {"SMTP_URL": cls.sink.url, "MAIL_RETRY_SECONDS": "0.5"}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.sink.stop()

    def wait_for_mail(self, address, subject, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.sink.to(address):
                if message["Subject"] == subject:
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no {subject!r} mail reached {address}")

    def reset_token(self):
        """A new account and the token of the reset link mailed to it: (address, token)."""
        address = f"{uuid.uuid4().hex[:12]}@example.com"
        self.server.request("POST", "/v1/auth/register", {"email": address, "password": PASSWORD})
        self.server.request("POST", "/v1/auth/password/forgot", {"email": address})
        return address, token_in(self.wait_for_mail(address, "Reset your password"))


class ResetTokenRaces(MailedServer):
    def test_twenty_uses_of_one_reset_token_give_exactly_one_200(self):
        address, token = self.reset_token()
        body = {"token": token, "new_password": NEW_PASSWORD}
        answers = self.server.fire(20, "POST", "/v1/auth/password/reset", json=body)
        self.assertStatuses(answers, {200, 400})
        self.assertEqual([a.status for a in answers].count(200), 1)
        self.assertEqual({a.message for a in answers if a.status == 400}, {"Invalid or expired token"})
        login = self.server.request("POST", "/v1/auth/login", {"email": address, "password": NEW_PASSWORD})
        self.assertEqual(login.status, 200)

    def test_no_token_got_with_the_old_password_outlives_a_reset_it_raced(self):
        for _ in range(3):
            address, token = self.reset_token()
            old = {"email": address, "password": PASSWORD}
            requests = [("POST", "/v1/auth/login", {"json": old}) for _ in range(8)]
            requests.insert(
                4, ("POST", "/v1/auth/password/reset", {"json": {"token": token, "new_password": NEW_PASSWORD}})
            )
            answers = self.server.at_once(requests)
            self.assertStatuses(answers, {200, 401})
            self.assertEqual(answers[4].status, 200)
            for answer in answers[:4] + answers[5:]:
                if answer.status == 200:  # logged in before the reset committed: its tokens died with it
                    me = self.server.request("GET", "/v1/auth/me", headers=bearer(answer.json["auth_token"]))
                    self.assertEqual(me.status, 401)
                    refresh = self.server.request(
                        "POST", "/v1/auth/refresh", {"refresh_token": answer.json["refresh_token"]}
                    )
                    self.assertEqual(refresh.status, 401)
            new = self.server.request("POST", "/v1/auth/login", {"email": address, "password": NEW_PASSWORD})
            self.assertEqual(new.status, 200)


class TwoInstancesDrainOneOutbox(MailedServer):
    def test_two_instances_on_one_database_never_send_a_mail_twice(self):
        other = LiveServer(self.server_env, database_of=self.server).start()
        self.addCleanup(other.stop)
        count = 40
        self.sink.stop()
        try:
            addresses = [f"{uuid.uuid4().hex[:12]}@example.com" for _ in range(count)]
            for index, address in enumerate(addresses):
                server = (self.server, other)[index % 2]
                answer = server.request("POST", "/v1/auth/register", {"email": address, "password": PASSWORD})
                self.assertEqual(answer.status, 201)
            time.sleep(1)  # every sender of both instances has tried and been refused
        finally:
            self.sink.start()
        messages = self.sink.wait_for(count, timeout=60)
        time.sleep(2)  # room for a second copy to show up
        copies = collections.Counter(message["To"] for message in self.sink.messages)
        self.assertEqual(set(copies), set(addresses))
        self.assertEqual([a for a, n in copies.items() if n > 1], [])
        self.assertEqual(len(self.sink.messages), count, messages)
        self.assertEqual(self.server.scalar("SELECT count(*) FROM mail_outbox"), 0)
        self.assertNotIn("Traceback", self.server.log() + other.log())
