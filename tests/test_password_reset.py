"""Password reset: forgot mails a link that reveals nothing, reset spends it."""

from datetime import timedelta

from sqlalchemy import update

from app.extensions import db
from app.models import MailToken, OutboxMail, User
from app.models.base import utcnow
from tests.helpers import (
    CONCURRENT,
    PASSWORD,
    RATELIMIT_TEST_PREFIX,
    APITestCase,
    MailTestCase,
    bearer,
    captured_statements,
)
from tests.smtp_sink import token_in

FORGOT = {"success": True, "message": "If that address has an account, a reset link is on its way"}
RESET = "Password has been reset"
INVALID = "Invalid or expired token"
NEW_PASSWORD = "a brand new password"


class ForgotTests(MailTestCase):
    def forgot(self, address):
        answer = self.client.post("/v1/auth/password/forgot", json={"email": address})
        self.assertEqual(answer.status_code, 202, answer.json)
        self.assertEqual(answer.json, FORGOT)
        return answer

    def test_a_known_address_is_mailed_a_reset_link(self):
        address = self.new_address()
        self.register(address)
        self.forgot(address.upper())  # addresses are compared as people read them
        mails = self.mails_to(address, 2)
        reset = [message for message in mails if message["Subject"] == "Reset your password"]
        self.assertEqual(len(reset), 1)
        self.assertIn("/reset-password?token=", reset[0].get_content())

    def test_unknown_and_external_addresses_get_the_same_answer_and_no_mail(self):
        unknown = self.new_address()
        external = self.new_address()
        db.session.add(User(external_id="auth0|someone", external_email=external))
        db.session.commit()
        self.forgot(unknown)
        self.forgot(external)
        known = self.new_address()
        self.register(known)
        self.forgot(known)
        self.mails_to(known, 2)
        self.wait_until(lambda: db.session.rollback() or db.session.query(OutboxMail).count() == 0)
        self.assertEqual(self.sink.to(unknown) + self.sink.to(external), [])

    def test_at_most_three_mails_an_hour_per_address_and_the_same_answer_after(self):
        address = self.new_address()
        self.register(address)
        for _ in range(5):
            self.forgot(address)
        self.assertEqual(db.session.query(MailToken).filter_by(purpose="reset").count(), 3)
        self.mails_to(address, 4)  # the verification mail and three reset mails
        db.session.execute(update(MailToken).values(created_at=utcnow() - timedelta(hours=1, seconds=1)))
        db.session.commit()
        self.forgot(address)
        self.mails_to(address, 5)

    def test_any_form_of_the_address_finds_the_account(self):
        self.register("reset-me@bücher.example")
        self.forgot("RESET-ME@BÜCHER.EXAMPLE")
        self.forgot("reset-me@xn--bcher-kva.example")
        self.assertEqual(db.session.query(MailToken).filter_by(purpose="reset").count(), 2)
        self.assertEqual(len(self.mails_to("reset-me@xn--bcher-kva.example", 3)), 3)

    def test_a_malformed_address_is_a_validation_error(self):
        for body in (
            {},
            {"email": "not an address"},
            {"email": "a@localhost"},  # what cannot be a mailbox, as at register
            {"email": 5},
            {"email": "a@example.com", "x": 1},
        ):
            with self.subTest(body=body):
                self.assertError(self.client.post("/v1/auth/password/forgot", json=body), 422)

    def test_known_and_unknown_addresses_run_the_same_statements(self):
        """The timing promise, by construction: the same SQL, in the same order, on both paths."""
        known = self.new_address()
        self.register(known)
        self.mails_to(known)
        paths = {}
        for name, address in (("known", known), ("unknown", self.new_address())):
            with captured_statements() as statements:
                self.forgot(address)
            paths[name] = [sql for sql, _ in statements]
        self.assertEqual(paths["known"], paths["unknown"])
        self.assertTrue(any(sql.startswith("INSERT INTO mail_outbox") for sql in paths["known"]))
        self.assertTrue(any(sql.startswith("INSERT INTO mail_tokens") for sql in paths["known"]))


class ResetTests(MailTestCase):
    def reset_link(self, address):
        """Register `address`, ask for a reset: the registration's answer and the mailed token."""
        body = self.register(address)
        self.client.post("/v1/auth/password/forgot", json={"email": address})
        mails = self.mails_to(address, 2)
        reset = next(message for message in mails if message["Subject"] == "Reset your password")
        return body, token_in(reset)

    def reset(self, token, password=NEW_PASSWORD):
        return self.client.post("/v1/auth/password/reset", json={"token": token, "new_password": password})

    def test_the_mailed_link_sets_a_new_password(self):
        address = self.new_address()
        body, token = self.reset_link(address)
        answer = self.reset(token)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(answer.json, {"success": True, "message": RESET})
        self.assertEqual(
            self.client.post("/v1/auth/login", json={"email": address, "password": PASSWORD}).status_code, 401
        )
        login = self.client.post("/v1/auth/login", json={"email": address, "password": NEW_PASSWORD})
        self.assertEqual(login.status_code, 200)

    def test_a_reset_ends_every_token_issued_before_and_verifies_the_address(self):
        address = self.new_address()
        body, token = self.reset_link(address)
        old = bearer(body["auth_token"])
        self.reset(token)
        self.assertError(self.client.get("/v1/auth/me", headers=old), 401)
        refresh = self.client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        self.assertError(refresh, 401)
        login = self.client.post("/v1/auth/login", json={"email": address, "password": NEW_PASSWORD}).json
        me = self.client.get("/v1/auth/me", headers=bearer(login["auth_token"])).json["user"]
        self.assertIs(me["email_verified"], True)
        sessions = self.client.get("/v1/auth/sessions", headers=bearer(login["auth_token"])).json["sessions"]
        self.assertEqual([s["current"] for s in sessions], [True], "only the login after the reset lives")

    def test_a_token_works_once_and_unknown_altered_expired_ones_are_400(self):
        _, token = self.reset_link(self.new_address())
        self.assertEqual(self.reset(token).status_code, 200)
        self.assertError(self.reset(token), 400, INVALID)
        _, token = self.reset_link(self.new_address())
        self.assertError(self.reset(token[:-2] + "zz"), 400, INVALID)
        self.assertError(self.reset("x" * 43), 400, INVALID)
        db.session.execute(update(MailToken).values(expires_at=utcnow()))
        db.session.commit()
        self.assertError(self.reset(token), 400, INVALID)

    def test_a_verification_token_is_no_reset_token(self):
        address = self.new_address()
        self.register(address)
        verification = token_in(self.mails_to(address)[0])
        self.assertError(self.reset(verification), 400, INVALID)

    def test_a_refused_new_password_leaves_the_token_usable(self):
        _, token = self.reset_link(self.new_address())
        for bad in ("short", "é" * 40, ""):
            with self.subTest(password=bad):
                self.assertFieldError(self.reset(token, bad), "new_password")
        self.assertFieldError(self.client.post("/v1/auth/password/reset", json={"token": token}), "new_password")
        self.assertEqual(self.reset(token).status_code, 200)

    def test_a_later_reset_or_password_change_voids_the_links_sent_before(self):
        address = self.new_address()
        body, first = self.reset_link(address)
        self.client.post("/v1/auth/password/forgot", json={"email": address})
        second = token_in(self.mails_to(address, 3)[2])
        self.assertEqual(self.reset(second).status_code, 200)
        self.assertError(self.reset(first), 400, INVALID)

        self.client.post("/v1/auth/password/forgot", json={"email": address})
        third = token_in(self.mails_to(address, 4)[3])
        login = self.client.post("/v1/auth/login", json={"email": address, "password": NEW_PASSWORD}).json
        change = {"current_password": NEW_PASSWORD, "new_password": "yet another password"}
        answer = self.client.put("/v1/auth/password", headers=bearer(login["auth_token"]), json=change)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertError(self.reset(third), 400, INVALID)


class ForgotAtOnceTests(APITestCase):
    app_overrides = CONCURRENT

    def test_concurrent_requests_for_one_address_mail_at_most_three_links(self):
        # Each request counts the links sent lately and then stores one: on PostgreSQL (READ
        # COMMITTED) requests at once all counted the same rows, and eight links went out.
        address = "many-at-once@example.com"
        self.register(address)
        forgot = {"email": address}
        answers = self.concurrently(12, lambda client, _: client.post("/v1/auth/password/forgot", json=forgot))
        self.assertEqual([answer.status_code for answer in answers], [202] * 12)
        self.assertEqual(db.session.query(MailToken).filter_by(purpose="reset").count(), 3)


class ForgotRateLimitTests(MailTestCase):
    mail_settings = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": RATELIMIT_TEST_PREFIX,
        "RATELIMIT_PASSWORD_FORGOT": "3 per minute",
    }

    def test_past_the_client_address_limit_forgot_is_429_with_retry_after(self):
        answers = [self.client.post("/v1/auth/password/forgot", json={"email": "a@example.com"}) for _ in range(4)]
        self.assertEqual([a.status_code for a in answers], [202, 202, 202, 429])
        self.assertError(answers[3], 429)
        self.assertGreater(int(answers[3].headers["Retry-After"]), 0)
