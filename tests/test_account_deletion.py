"""DELETE /v1/auth/me: an account leaves, with its password (an external account has none)."""

import io
import time

from sqlalchemy import func, select

from app.extensions import db
from app.models import Bucket, DeletedExternalAccount, Image, Item, User, UserSession
from tests import test_oidc
from tests.helpers import CONCURRENT, PASSWORD, APITestCase, bearer, image_bytes
from tests.test_oidc import OIDCTestCase

MSG_INVALID = "Invalid token. Please log in again."
INCORRECT = {"password": ["Incorrect password."]}


def setUpModule():
    test_oidc.setUpModule()  # the JWKS server the external accounts' tokens come from


def tearDownModule():
    test_oidc.tearDownModule()


class LeavingTests(APITestCase):
    def setUp(self):
        super().setUp()
        self.email = "leaver@example.com"
        self.tokens = self.register(self.email)
        self.user_id = self.tokens["user"]["id"]
        self.headers = bearer(self.tokens["auth_token"])

    def leave(self, body=None, headers=None, **kwargs):
        return self.client.delete("/v1/auth/me", json=body, headers=headers or self.headers, **kwargs)

    def test_leaving_deletes_the_account_and_answers_its_id(self):
        # There is no admin at all here: the last-admin rule has nothing to keep.
        response = self.leave({"password": PASSWORD})
        self.assertEqual(response.status_code, 200, response.json)
        self.assertEqual(response.json, {"success": True, "deleted": self.user_id})
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        self.assertIsNone(db.session.get(User, self.user_id))

    def test_buckets_items_and_sessions_go_and_every_token_stops(self):
        other_device = self.client.post("/v1/auth/login", json={"email": self.email, "password": PASSWORD}).json
        for n in range(2):
            bucket = self.client.post("/v1/buckets", json={"name": f"b{n}"}, headers=self.headers).json["bucket"]
            self.client.post(f"/v1/buckets/{bucket['id']}/items", json={"name": "i"}, headers=self.headers)
        self.assertEqual(self.leave({"password": PASSWORD}).status_code, 200)
        for count in (Bucket, Item, UserSession):
            self.assertEqual(db.session.scalar(select(func.count()).select_from(count)), 0, count)
        for tokens in (self.tokens, other_device):
            self.assertError(self.client.get("/v1/auth/me", headers=bearer(tokens["auth_token"])), 401, MSG_INVALID)
            refresh = self.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            self.assertError(refresh, 401, MSG_INVALID)

    def test_a_wrong_or_missing_password_is_422_and_deletes_nothing(self):
        for body in ({"password": "wrong password"}, {}, None, {"password": ""}, {"password": PASSWORD + " "}):
            with self.subTest(body=body):
                response = self.leave(body)
                error = self.assertError(response, 422, "Password is incorrect")
                self.assertEqual(error["errors"], INCORRECT)
        self.assertIsNotNone(db.session.get(User, self.user_id))

    def test_a_null_password_is_missing_and_one_that_cannot_be_it_is_wrong(self):
        # They were refused as malformed (422 `Validation failed`, "Field may not be null.",
        # "Longer than maximum length 1024.", "Must not contain NUL characters.").
        for password in (None, "x" * 1025, PASSWORD + "\x00", "\x00"):
            with self.subTest(password=password and password[:12]):
                error = self.assertError(self.leave({"password": password}), 422, "Password is incorrect")
                self.assertEqual(error["errors"], INCORRECT)
        self.assertIsNotNone(db.session.get(User, self.user_id))

    def test_a_body_that_is_not_the_schema_is_refused_as_everywhere(self):
        self.assertFieldError(self.leave({"password": PASSWORD, "id": 1}), "id")
        self.assertFieldError(self.leave({"password": 12345678}), "password")
        as_text = {**self.headers, "Content-Type": "text/plain"}
        self.assertError(self.client.delete("/v1/auth/me", data="password", headers=as_text), 415)
        self.assertIsNotNone(db.session.get(User, self.user_id))

    def test_without_a_token_it_is_401(self):
        self.assertError(self.client.delete("/v1/auth/me", json={"password": PASSWORD}), 401)

    def test_the_last_admin_cannot_leave_another_can(self):
        admin_id, admin = self.account("admin", email="boss@example.com")
        response = self.leave({"password": PASSWORD}, headers=admin)
        self.assertError(response, 409, "Cannot delete the last admin")
        self.assertIsNotNone(db.session.get(User, admin_id))
        self.account("admin", email="second@example.com")
        self.assertEqual(self.leave({"password": PASSWORD}, headers=admin).status_code, 200)

    def test_images_it_uploaded_stay_with_no_owner(self):
        admin_id, admin = self.account("admin", email="uploader@example.com")
        self.account("admin", email="keeper@example.com")
        upload = self.client.post(
            "/v1/images",
            data={"images": [(io.BytesIO(image_bytes()), "a.png")], "title": "kept"},
            headers=admin,
            content_type="multipart/form-data",
        )
        self.assertEqual(upload.status_code, 201, upload.json)
        image_id = upload.json["images"][0]["id"]
        self.assertEqual(self.leave({"password": PASSWORD}, headers=admin).status_code, 200)
        image = db.session.get(Image, image_id)
        self.assertIsNotNone(image)
        self.assertIsNone(image.owner_id)
        shown = self.client.get(f"/v1/images/{image_id}", headers=self.headers)
        self.assertEqual(shown.status_code, 200)
        self.assertIsNone(shown.json["image"]["owner_id"])
        self.assertEqual(self.client.get(f"/v1/images/{image_id}/file", headers=self.headers).status_code, 200)

    def test_the_address_registers_again_and_no_old_token_fits_the_new_account(self):
        self.assertEqual(self.leave({"password": PASSWORD}).status_code, 200)
        again = self.register(self.email)  # SQLite may give it the same id
        self.assertEqual(again["user"]["email"], self.email)
        self.assertEqual(self.client.get("/v1/auth/me", headers=bearer(again["auth_token"])).status_code, 200)
        self.assertError(self.client.get("/v1/auth/me", headers=self.headers), 401)
        refresh = self.client.post("/v1/auth/refresh", json={"refresh_token": self.tokens["refresh_token"]})
        self.assertError(refresh, 401)
        sessions = self.client.get("/v1/auth/sessions", headers=bearer(again["auth_token"])).json["sessions"]
        self.assertEqual(len(sessions), 1)


class ExternalLeavingTests(OIDCTestCase):
    def test_an_external_account_leaves_without_a_password_and_its_earlier_tokens_stay_out(self):
        earlier = self.external(sub="auth0|leaver")
        user_id = self.me(earlier).json["user"]["id"]
        self.assertEqual(self.client.post("/v1/buckets", json={"name": "mine"}, headers=earlier).status_code, 201)
        other_earlier = self.external(sub="auth0|leaver")
        response = self.client.delete("/v1/auth/me", headers=earlier)
        self.assertEqual(response.status_code, 200, response.json)
        self.assertEqual(response.json, {"success": True, "deleted": user_id})
        self.assertEqual(db.session.scalar(select(func.count()).select_from(Bucket)), 0)
        for headers in (earlier, other_earlier):
            self.assertError(self.me(headers), 401, MSG_INVALID)
        self.assertEqual(db.session.scalar(select(func.count()).select_from(User)), 0)  # none was made again
        later = self.external(sub="auth0|leaver", iat=int(time.time()) + 2)
        fresh = self.me(later)
        self.assertEqual(fresh.status_code, 200, fresh.json)
        self.assertEqual(self.client.get("/v1/buckets", headers=later).json["buckets"], [])
        self.assertError(self.me(earlier), 401, MSG_INVALID)  # not even now that the sub has an account again

    def test_a_password_an_external_account_sends_is_ignored(self):
        headers = self.external(sub="auth0|ignored")
        self.me(headers)
        self.assertEqual(self.client.delete("/v1/auth/me", json={"password": "x"}, headers=headers).status_code, 200)

    def test_an_admin_deleting_an_external_account_keeps_its_earlier_tokens_out_too(self):
        earlier = self.external(sub="github|7")
        user_id = self.me(earlier).json["user"]["id"]
        admin = self.headers_for("admin")
        self.assertEqual(self.client.delete(f"/v1/users/{user_id}", headers=admin).status_code, 200)
        self.assertError(self.me(earlier), 401, MSG_INVALID)
        self.assertIsNotNone(db.session.get(DeletedExternalAccount, "github|7"))


class LeavingWhileCreatingTests(APITestCase):
    """The race on the database under test (SQLite too), through threads; the live-server version on
    PostgreSQL is tests/races/test_account_races.py."""

    app_overrides = CONCURRENT

    def test_leaving_while_buckets_and_items_are_created_leaves_no_orphans(self):
        for round_ in range(3):
            tokens = self.register(f"racer{round_}@example.com")
            headers = bearer(tokens["auth_token"])
            bucket_id = self.client.post("/v1/buckets", json={"name": "first"}, headers=headers).json["bucket"]["id"]
            requests = [("DELETE", "/v1/auth/me", {"password": PASSWORD})]
            requests += [("POST", "/v1/buckets", {"name": f"b{n}"}) for n in range(4)]
            requests += [("POST", f"/v1/buckets/{bucket_id}/items", {"name": "i"}) for n in range(2)]
            answers = self.at_once(requests, headers)
            self.assertEqual(answers[0].status_code, 200, answers[0].json)
            for answer in answers[1:]:
                self.assertIn(answer.status_code, (201, 401, 404), answer.json)
                self.assertEqual(answer.mimetype, "application/json")
            self.assertNoOrphans()

    def at_once(self, requests, headers):
        """(method, path, json) requests with `headers`, sent at once (helpers' `concurrently`)."""

        def send(client, index):
            method, path, body = requests[index]
            return client.open(path, method=method, json=body, headers=headers)

        return self.concurrently(len(requests), send)

    def assertNoOrphans(self):
        db.session.expire_all()
        orphan_buckets = select(func.count()).select_from(Bucket).outerjoin(User, User.id == Bucket.owner_id)
        self.assertEqual(db.session.scalar(orphan_buckets.where(User.id.is_(None))), 0)
        orphan_items = select(func.count()).select_from(Item).outerjoin(Bucket, Bucket.id == Item.bucket_id)
        self.assertEqual(db.session.scalar(orphan_items.where(Bucket.id.is_(None))), 0)
        self.assertEqual(db.session.scalar(select(func.count()).select_from(Bucket)), 0)
