"""E-mail verification: the mail sent at registration, its link, the re-send, and REQUIRE_VERIFIED_EMAIL."""

from datetime import timedelta

from sqlalchemy import update

from app.extensions import db
from app.models import MailToken, User
from app.models.base import utcnow
from tests.helpers import CONCURRENT, PASSWORD, APITestCase, MailTestCase, bearer
from tests.smtp_sink import token_in

VERIFIED = "E-mail verified"
INVALID = "Invalid or expired token"
VERIFY_FIRST = "Verify your e-mail address first"


class VerificationTests(MailTestCase):
    def registered(self):
        address = self.new_address()
        body = self.register(address)
        return address, body, token_in(self.mails_to(address)[0])

    def test_the_link_mailed_at_registration_verifies_the_address(self):
        address, body, token = self.registered()
        self.assertIs(body["user"]["email_verified"], False)
        headers = bearer(body["auth_token"])
        self.assertIs(self.client.get("/v1/auth/me", headers=headers).json["user"]["email_verified"], False)

        answer = self.client.post("/v1/auth/email/verify", json={"token": token})
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(answer.json["message"], VERIFIED)
        self.assertEqual(answer.json["user"]["email"], address)
        self.assertIs(answer.json["user"]["email_verified"], True)
        self.assertIs(self.client.get("/v1/auth/me", headers=headers).json["user"]["email_verified"], True)

    def test_a_token_works_once(self):
        _, _, token = self.registered()
        self.assertEqual(self.client.post("/v1/auth/email/verify", json={"token": token}).status_code, 200)
        self.assertError(self.client.post("/v1/auth/email/verify", json={"token": token}), 400, INVALID)

    def test_unknown_altered_and_expired_tokens_are_400(self):
        _, _, token = self.registered()
        altered = token[:-1] + ("A" if token[-1] != "A" else "B")
        for bad in (altered, "", "not a token", token + "x", "é" * 50):
            with self.subTest(token=bad):
                self.assertError(self.client.post("/v1/auth/email/verify", json={"token": bad}), 400, INVALID)
        db.session.execute(update(MailToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        self.assertError(self.client.post("/v1/auth/email/verify", json={"token": token}), 400, INVALID)

    def test_a_missing_or_mistyped_token_is_a_validation_error(self):
        self.assertFieldError(self.client.post("/v1/auth/email/verify", json={}), "token")
        self.assertFieldError(self.client.post("/v1/auth/email/verify", json={"token": 12}), "token")
        self.assertFieldError(self.client.post("/v1/auth/email/verify", json={"token": "x", "extra": 1}), "extra")

    def test_the_token_is_stored_only_as_its_hash(self):
        _, _, token = self.registered()
        stored = db.session.scalars(db.select(MailToken.token_hash)).all()
        self.assertEqual(len(stored), 1)
        self.assertNotIn(token, stored[0])
        self.assertEqual(len(stored[0]), 64)

    def test_a_new_link_on_request_and_409_once_verified(self):
        address, body, first = self.registered()
        headers = bearer(body["auth_token"])
        answer = self.client.post("/v1/auth/email/verify/request", headers=headers)
        self.assertEqual(answer.status_code, 202, answer.json)
        self.assertEqual(answer.json, {"success": True, "message": "Verification e-mail sent"})
        second = token_in(self.mails_to(address, 2)[1])
        self.assertNotEqual(first, second)
        self.assertEqual(self.client.post("/v1/auth/email/verify", json={"token": second}).status_code, 200)
        self.assertError(self.client.post("/v1/auth/email/verify", json={"token": first}), 400, INVALID)
        again = self.client.post("/v1/auth/email/verify/request", headers=headers)
        self.assertError(again, 409, "E-mail already verified")

    def test_at_most_three_verification_mails_an_hour_and_the_answer_stays_202(self):
        address, body, _ = self.registered()  # the first of three
        headers = bearer(body["auth_token"])
        for _ in range(4):
            self.assertEqual(self.client.post("/v1/auth/email/verify/request", headers=headers).status_code, 202)
        self.mails_to(address, 3)
        self.assertEqual(db.session.query(MailToken).count(), 3)
        db.session.execute(update(MailToken).values(created_at=utcnow() - timedelta(hours=1, seconds=1)))
        db.session.commit()
        self.assertEqual(self.client.post("/v1/auth/email/verify/request", headers=headers).status_code, 202)
        self.mails_to(address, 4)

    def test_the_request_needs_a_token(self):
        self.assertError(self.client.post("/v1/auth/email/verify/request"), 401)

    def test_a_verified_address_shows_in_the_admin_views(self):
        _, body, token = self.registered()
        _, admin = self.account("admin")
        path = f"/v1/users/{body['user']['id']}"
        etag = self.client.get(path, headers=admin).headers["ETag"]
        self.client.post("/v1/auth/email/verify", json={"token": token})
        answer = self.client.get(path, headers=admin)
        self.assertIs(answer.json["user"]["email_verified"], True)
        self.assertNotEqual(answer.headers["ETag"], etag, "the representation changed, so does its ETag")


class VerificationAtOnceTests(APITestCase):
    app_overrides = CONCURRENT

    def test_concurrent_requests_mail_at_most_three_links_an_hour(self):
        headers = self.headers_for()  # its registration mailed the first
        path = "/v1/auth/email/verify/request"
        answers = self.concurrently(12, lambda client, _: client.post(path, headers=headers))
        self.assertEqual([answer.status_code for answer in answers], [202] * 12)
        self.assertEqual(db.session.query(MailToken).filter_by(purpose="verify").count(), 3)


class OperatorAccountTests(APITestCase):
    def test_accounts_made_by_the_command_line_count_as_verified(self):
        from app.commands import create_user

        result = self.app.test_cli_runner().invoke(create_user, ["boss@example.com", "--password", PASSWORD])
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIsNotNone(db.session.scalar(db.select(User.email_verified_at)))


class RequireVerifiedEmailTests(MailTestCase):
    mail_settings = {"REQUIRE_VERIFIED_EMAIL": True}

    def test_an_unverified_account_may_only_do_what_the_contract_lists(self):
        address = self.new_address()
        body = self.register(address)
        headers = bearer(body["auth_token"])
        self.assertEqual(self.client.get("/v1/auth/me", headers=headers).status_code, 200)
        login = self.client.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
        self.assertEqual(login.status_code, 200)
        form = {"grant_type": "password", "username": address, "password": PASSWORD}
        self.assertEqual(self.client.post("/v1/auth/token", data=form).status_code, 200)
        refreshed = self.client.post("/v1/auth/refresh", json={"refresh_token": login.json["refresh_token"]})
        self.assertEqual(refreshed.status_code, 200)
        self.assertEqual(self.client.post("/v1/auth/email/verify/request", headers=headers).status_code, 202)

        for method, path in (("GET", "/v1/buckets"), ("POST", "/v1/buckets"), ("GET", "/v1/images")):
            with self.subTest(path=path):
                self.assertError(self.client.open(path, method=method, headers=headers, json={}), 403, VERIFY_FIRST)
        change = {"current_password": PASSWORD, "new_password": "another password"}
        self.assertError(self.client.put("/v1/auth/password", headers=headers, json=change), 403, VERIFY_FIRST)

        self.client.post("/v1/auth/email/verify", json={"token": token_in(self.mails_to(address)[0])})
        self.assertEqual(self.client.get("/v1/buckets", headers=headers).status_code, 200)
        logout = self.client.post("/v1/auth/logout", headers=bearer(refreshed.json["auth_token"]))
        self.assertEqual(logout.status_code, 200)

    def test_an_unverified_account_may_see_and_end_its_sessions_and_leave_but_not_export(self):
        address = self.new_address()
        headers = bearer(self.register(address)["auth_token"])
        other = self.client.post("/v1/auth/login", json={"email": address, "password": PASSWORD}).json
        sessions = self.client.get("/v1/auth/sessions", headers=headers)
        self.assertEqual(sessions.status_code, 200, sessions.json)
        ended = [s["id"] for s in sessions.json["sessions"] if not s["current"]][0]
        self.assertEqual(self.client.delete(f"/v1/auth/sessions/{ended}", headers=headers).status_code, 200)
        self.assertError(self.client.get("/v1/auth/me", headers=bearer(other["auth_token"])), 401)
        self.assertError(self.client.get("/v1/auth/me/export", headers=headers), 403, VERIFY_FIRST)
        gone = self.client.delete("/v1/auth/me", headers=headers, json={"password": PASSWORD})
        self.assertEqual(gone.status_code, 200, gone.json)

    def test_an_unverified_account_may_log_out(self):
        body = self.register(self.new_address())
        self.assertEqual(self.client.post("/v1/auth/logout", headers=bearer(body["auth_token"])).status_code, 200)

    def test_a_bad_token_is_still_401_first(self):
        self.assertError(self.client.get("/v1/buckets", headers=bearer("garbage")), 401)
