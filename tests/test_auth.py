from datetime import datetime, timedelta, timezone
from unittest import mock

import jwt
from sqlalchemy import select

from app.auth import ACCESS, REFRESH, revoke
from app.extensions import db
from app.models import RevokedToken, User, UserSession
from app.services import accounts
from tests.helpers import PASSWORD, RATELIMIT_TEST_PREFIX, APITestCase, bearer

SECRET_KEY_CLAIMS = ("sub", "iat", "exp", "jti", "type", "ver")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


class RegisterTests(APITestCase):
    def test_register_answers_tokens_and_user(self):
        response = self.client.post("/v1/auth/register", json={"email": "New@Example.COM", "password": PASSWORD})
        self.assertEqual(response.status_code, 201)
        body = response.json
        self.assertEqual(body["message"], "Successfully registered")
        self.assertTrue(body["success"])
        self.assertEqual(body["user"]["email"], "new@example.com")
        self.assertEqual(body["user"]["role"], "user")
        self.assertEqual(body["user"]["permissions"], ["get:images"])
        self.assertRegex(body["user"]["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(body["expires_in"], 15 * 60)
        self.assertEqual(response.headers["Location"], "/v1/auth/me")
        self.assertNotIn("password", str(body))
        stored = db.session.scalars(select(User)).one()
        self.assertEqual(stored.email, "new@example.com")
        self.assertTrue(stored.password_hash.startswith("$2b$"))
        self.assertNotEqual(stored.password_hash, PASSWORD)

    def test_duplicate_email_is_409_whatever_the_case(self):
        self.register("dup@example.com")
        response = self.client.post("/v1/auth/register", json={"email": " DUP@example.com ", "password": PASSWORD})
        self.assertError(response, 409, "Email already registered")
        self.assertEqual(db.session.query(User).count(), 1)

    def test_bad_registrations_are_422(self):
        cases = [
            ({}, "email"),
            ({"email": "a@example.com"}, "password"),
            ({"password": PASSWORD}, "email"),
            ({"email": "not-an-email", "password": PASSWORD}, "email"),
            ({"email": "", "password": PASSWORD}, "email"),
            ({"email": "   ", "password": PASSWORD}, "email"),
            ({"email": 12, "password": PASSWORD}, "email"),
            ({"email": None, "password": PASSWORD}, "email"),
            ({"email": ["a@example.com"], "password": PASSWORD}, "email"),
            ({"email": "a" * 300 + "@example.com", "password": PASSWORD}, "email"),
            ({"email": "a@example.com", "password": "short"}, "password"),
            ({"email": "a@example.com", "password": "x" * 73}, "password"),
            ({"email": "a@example.com", "password": "é" * 37}, "password"),  # 74 bytes
            ({"email": "a@example.com", "password": 12345678}, "password"),
            ({"email": "a@example.com", "password": "pass\x00word1"}, "password"),
            ({"email": "a@example.com", "password": PASSWORD, "role": "admin"}, "role"),
            ({"email": "a@example.com", "password": PASSWORD, "id": 1}, "id"),
        ]
        for body, field in cases:
            with self.subTest(body=str(body)[:80]):
                self.assertFieldError(self.client.post("/v1/auth/register", json=body), field)
        self.assertEqual(db.session.query(User).count(), 0)

    def test_one_account_per_mailbox(self):
        """Addresses compare as people read them: the domain by IDNA, the address NFKC and case-folded."""
        for first, stored, same in (
            ("u@bücher.example", "u@xn--bcher-kva.example", ("u@xn--bcher-kva.example", "U@BÜCHER.example")),
            ("\ufb01le@example.com", "file@example.com", ("file@example.com", "ＦＩＬＥ@example.com")),
            ("Straße@Example.com", "strasse@example.com", ("STRASSE@example.com",)),
            ("σίσυφος@example.com", "σίσυφοσ@example.com", ("ΣΊΣΥΦΟΣ@example.com",)),
        ):
            with self.subTest(first=first):
                self.assertEqual(self.register(first)["user"]["email"], stored)
                for other in same:
                    response = self.client.post("/v1/auth/register", json={"email": other, "password": PASSWORD})
                    self.assertError(response, 409, "Email already registered")
                    login = self.client.post("/v1/auth/login", json={"email": other, "password": PASSWORD})
                    self.assertEqual(login.status_code, 200, other)
                form = {"grant_type": "password", "username": same[-1], "password": PASSWORD}
                self.assertEqual(self.client.post("/v1/auth/token", data=form).status_code, 200)
        self.assertEqual(db.session.query(User).count(), 4)

    def test_what_cannot_be_a_mailbox_is_422(self):
        for email in (
            "a@localhost",
            "a..b@example.com",
            "a@[127.0.0.1]",
            '"quoted"@example.com',
            "a@-bad-.example.com",
            "a b@example.com",
            "@example.com",
            "a@",
            "a@example..com",
        ):
            with self.subTest(email=email):
                response = self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
                body = self.assertFieldError(response, "email")
                self.assertTrue(body["errors"]["email"][0])
                login = self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
                self.assertError(login, 401, "Invalid email or password")
        self.assertEqual(db.session.query(User).count(), 0)

    def test_password_of_72_bytes_is_accepted(self):
        self.register("long@example.com", password="é" * 36)
        response = self.client.post("/v1/auth/login", json={"email": "long@example.com", "password": "é" * 36})
        self.assertEqual(response.status_code, 200)

    def test_unicode_email_local_part_is_kept(self):
        body = self.register("josé@example.com")
        self.assertEqual(body["user"]["email"], "josé@example.com")

    def test_body_must_be_a_json_object(self):
        self.assertError(
            self.client.post("/v1/auth/register", data="{bad", content_type="application/json"),
            400,
            "Request body is not valid JSON",
        )
        self.assertError(self.client.post("/v1/auth/register", json=["a"]), 400, "Request body must be a JSON object")
        self.assertError(self.client.post("/v1/auth/register", json="text"), 400)
        self.assertError(
            self.client.post("/v1/auth/register", data="email=a", content_type="application/x-www-form-urlencoded"), 415
        )
        self.assertError(
            self.client.post("/v1/auth/register", data="x" * (2 * 1024 * 1024), content_type="application/json"), 413
        )


class LoginTests(APITestCase):
    def test_login_answers_bearer_tokens(self):
        self.register("log@example.com")
        response = self.client.post("/v1/auth/login", json={"email": "LOG@example.com", "password": PASSWORD})
        self.assertEqual(response.status_code, 200)
        body = response.json
        self.assertEqual(body["message"], "Successfully logged in")
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 900)
        me = self.client.get("/v1/auth/me", headers=bearer(body["auth_token"]))
        self.assertEqual(me.json["user"]["email"], "log@example.com")

    def test_your_account_answers_with_its_etag_like_any_single_user(self):
        headers = bearer(self.register("tagged@example.com")["auth_token"])
        me = self.client.get("/v1/auth/me", headers=headers)
        self.assertTrue(me.headers["ETag"].startswith('"'), me.headers)
        again = self.client.get("/v1/auth/me", headers={**headers, "If-None-Match": me.headers["ETag"]})
        self.assertEqual((again.status_code, again.data), (304, b""))
        self.assertEqual(again.headers["Cache-Control"], "no-store")

    def test_wrong_password_and_unknown_email_answer_alike(self):
        self.register("who@example.com")
        wrong = self.client.post("/v1/auth/login", json={"email": "who@example.com", "password": "wrong password"})
        unknown = self.client.post("/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
        for response in (wrong, unknown):
            self.assertError(response, 401, "Invalid email or password")
            self.assertEqual(response.headers["WWW-Authenticate"], "Bearer")
        self.assertEqual(wrong.json, unknown.json)

    def test_overlong_password_is_just_wrong(self):
        self.register("who@example.com")
        response = self.client.post(
            "/v1/auth/login", json={"email": "who@example.com", "password": PASSWORD + "x" * 100}
        )
        self.assertError(response, 401, "Invalid email or password")

    def test_bad_login_bodies(self):
        self.assertFieldError(self.client.post("/v1/auth/login", json={"email": "a@example.com"}), "password")
        self.assertFieldError(self.client.post("/v1/auth/login", json={"password": "x"}), "email")
        self.assertFieldError(self.client.post("/v1/auth/login", json={"email": 1, "password": "x"}), "email")
        self.assertFieldError(
            self.client.post("/v1/auth/login", json={"email": "a@example.com", "password": "x", "remember": True}),
            "remember",
        )
        self.assertError(self.client.post("/v1/auth/login", data="nope", content_type="application/json"), 400)


class TokenTests(APITestCase):
    def setUp(self):
        super().setUp()
        body = self.register("tok@example.com")
        self.user_id = body["user"]["id"]
        self.access = body["auth_token"]
        self.refresh_token = body["refresh_token"]

    def _claims(self, **changes):
        now = datetime.now(timezone.utc)
        claims = {
            "sub": str(self.user_id),
            "iat": now,
            "exp": now + timedelta(minutes=5),
            "jti": "j" * 32,
            "type": ACCESS,
            "ver": db.session.get(User, self.user_id).token_version,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def _token(self, key=None, algorithm="HS256", **changes):
        return jwt.encode(self._claims(**changes), key or self.app.config["SECRET_KEY"], algorithm=algorithm)

    def me(self, headers):
        return self.client.get("/v1/auth/me", headers=headers)

    def test_claims_are_all_present(self):
        claims = jwt.decode(self.access, self.app.config["SECRET_KEY"], algorithms=["HS256"])
        for claim in SECRET_KEY_CLAIMS:
            self.assertIn(claim, claims)
        self.assertEqual(claims["type"], "access")
        self.assertEqual(jwt.get_unverified_header(self.access)["alg"], "HS256")

    def test_header_messages(self):
        self.assertError(self.me({}), 401, "Provide an authorization header")
        self.assertError(self.me({"Authorization": ""}), 401, "Provide an authorization header")
        self.assertError(self.me({"Authorization": self.access}), 401, "Malformed authorization header")
        self.assertError(self.me({"Authorization": f"Token {self.access}"}), 401, "Malformed authorization header")
        self.assertError(self.me({"Authorization": "Bearer"}), 401, "Malformed authorization header")
        self.assertError(
            self.me({"Authorization": f"Bearer {self.access} extra"}), 401, "Malformed authorization header"
        )
        response = self.me({})
        self.assertEqual(response.headers["WWW-Authenticate"], "Bearer")

    def test_lowercase_bearer_is_accepted(self):
        self.assertEqual(self.me({"Authorization": f"bearer {self.access}"}).status_code, 200)

    def test_invalid_tokens(self):
        invalid = "Invalid token. Please log in again."
        now = datetime.now(timezone.utc)
        cases = {
            "garbage": "not.a.token",
            "random": "abc",
            "other key": self._token(key="another-secret-key-that-is-long-enough-to-use"),
            "alg none": jwt.encode(self._claims(), None, algorithm="none"),
            "HS512": self._token(algorithm="HS512"),
            "no exp": self._token(exp=None),
            "no jti": self._token(jti=None),
            "no type": self._token(type=None),
            "no sub": self._token(sub=None),
            "no iat": self._token(iat=None),
            "no ver": self._token(ver=None),
            "refresh as access": self.refresh_token,
            "wrong type": self._token(type="id"),
            "non-numeric sub": self._token(sub="abc"),
            "superscript sub": self._token(sub="²"),
            "arabic-indic digits sub": self._token(sub=str(self.user_id).translate(ARABIC_INDIC)),
            "fullwidth digits sub": self._token(sub=str(self.user_id).translate(FULLWIDTH)),
            "signed sub": self._token(sub=f"+{self.user_id}"),
            "integer sub": self._token(sub=self.user_id),
            "sub past the id range": self._token(sub="99999999999"),
            "unknown user": self._token(sub="999999"),
            "tampered": self.access[:-4] + ("AAAA" if not self.access.endswith("AAAA") else "BBBB"),
            "future iat": self._token(iat=now + timedelta(hours=1)),
        }
        for name, token in cases.items():
            with self.subTest(name):
                self.assertError(self.me(bearer(token)), 401, invalid)

    def test_expired_token(self):
        past = datetime.now(timezone.utc) - timedelta(hours=1)
        token = self._token(iat=past, exp=past + timedelta(minutes=1))
        self.assertError(self.me(bearer(token)), 401, "Signature expired. Please log in again.")

    def test_a_token_accepted_before_is_refused_once_it_expires(self):
        now = datetime.now(timezone.utc)
        token = self._token(iat=now - timedelta(minutes=1), exp=now + timedelta(minutes=1))
        self.assertEqual(self.me(bearer(token)).status_code, 200)
        later = (now + timedelta(minutes=1)).timestamp()
        with mock.patch("app.auth.time.time", return_value=later), mock.patch("jwt.api_jwt.datetime") as clock:
            clock.now.return_value = datetime.fromtimestamp(later, timezone.utc)
            self.assertError(self.me(bearer(token)), 401, "Signature expired. Please log in again.")

    def test_token_lifetime_follows_the_setting(self):
        claims = jwt.decode(self.access, self.app.config["SECRET_KEY"], algorithms=["HS256"])
        self.assertEqual(claims["exp"] - claims["iat"], self.app.config["ACCESS_TOKEN_MINUTES"] * 60)

    def test_token_issued_a_lifetime_ago_has_expired(self):
        lifetime = timedelta(minutes=self.app.config["ACCESS_TOKEN_MINUTES"])
        issued = datetime.now(timezone.utc) - lifetime - timedelta(seconds=1)
        token = self._token(iat=issued, exp=issued + lifetime)
        self.assertError(self.me(bearer(token)), 401, "Signature expired. Please log in again.")

    def test_a_deleted_users_tokens_never_reach_a_later_account(self):
        # SQLite hands a deleted row's id to the next insert unless the table is AUTOINCREMENT.
        db.session.delete(db.session.get(User, self.user_id))
        db.session.commit()
        self.register()
        self.assertError(self.me(bearer(self.access)), 401)
        self.assertError(self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token}), 401)

    def test_deleted_users_token_is_invalid(self):
        db.session.delete(db.session.get(User, self.user_id))
        db.session.commit()
        self.assertError(self.me(bearer(self.access)), 401, "Invalid token. Please log in again.")

    def test_logout_revokes_access_and_refresh(self):
        response = self.client.post(
            "/v1/auth/logout", headers=bearer(self.access), json={"refresh_token": self.refresh_token}
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json, {"success": True, "message": "Successfully logged out"})
        revoked = "Token has been revoked. Please log in again."
        self.assertError(self.me(bearer(self.access)), 401, revoked)
        self.assertError(self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token}), 401, revoked)
        # The access token is blacklisted; the refresh token's session has ended (its row is gone).
        self.assertEqual(db.session.query(RevokedToken).count(), 1)
        self.assertEqual(db.session.query(UserSession).count(), 0)
        self.assertError(self.client.post("/v1/auth/logout", headers=bearer(self.access)), 401, revoked)

    def test_a_logout_that_comes_second_is_401(self):
        """Another logout of the token is committed after this one's token check: this one came second."""
        log_out = accounts.log_out

        def after_a_concurrent_logout(claims, refresh_token=None):
            revoke(claims)
            db.session.commit()
            return log_out(claims, refresh_token)

        with mock.patch.object(accounts, "log_out", after_a_concurrent_logout):
            response = self.client.post("/v1/auth/logout", headers=bearer(self.access))
        self.assertError(response, 401, "Token has been revoked. Please log in again.")
        self.assertEqual(db.session.query(RevokedToken).count(), 1)

    def test_logout_without_body_keeps_refresh_token(self):
        response = self.client.post("/v1/auth/logout", headers=bearer(self.access))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token}).status_code, 200
        )

    def test_logout_refuses_a_foreign_or_bad_refresh_token(self):
        other = self.register("other@example.com")
        for token in (other["refresh_token"], "garbage", self.access):
            with self.subTest(token=token[:10]):
                response = self.client.post(
                    "/v1/auth/logout", headers=bearer(self.access), json={"refresh_token": token}
                )
                self.assertError(response, 401, "Invalid token. Please log in again.")
        self.assertEqual(self.me(bearer(self.access)).status_code, 200)
        self.assertFieldError(
            self.client.post("/v1/auth/logout", headers=bearer(self.access), json={"refresh_token": 5}), "refresh_token"
        )
        self.assertFieldError(
            self.client.post("/v1/auth/logout", headers=bearer(self.access), json={"token": "x"}), "token"
        )

    def test_logout_needs_a_token(self):
        self.assertError(self.client.post("/v1/auth/logout"), 401, "Provide an authorization header")

    def test_refresh_rotates(self):
        response = self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        self.assertEqual(response.status_code, 200)
        body = response.json
        self.assertNotEqual(body["refresh_token"], self.refresh_token)
        self.assertEqual(self.me(bearer(body["auth_token"])).status_code, 200)
        again = self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        self.assertError(again, 401, "Token has been revoked. Please log in again.")
        self.assertEqual(
            self.client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}).status_code, 200
        )

    def test_refresh_refuses_access_tokens_and_junk(self):
        self.assertError(
            self.client.post("/v1/auth/refresh", json={"refresh_token": self.access}),
            401,
            "Invalid token. Please log in again.",
        )
        self.assertError(
            self.client.post("/v1/auth/refresh", json={"refresh_token": "x.y.z"}),
            401,
            "Invalid token. Please log in again.",
        )
        self.assertFieldError(self.client.post("/v1/auth/refresh", json={}), "refresh_token")
        self.assertFieldError(self.client.post("/v1/auth/refresh", json={"refresh_token": ""}), "refresh_token")
        self.assertFieldError(self.client.post("/v1/auth/refresh", json={"refresh_token": ["a"]}), "refresh_token")

    def test_refresh_token_of_deleted_user(self):
        db.session.delete(db.session.get(User, self.user_id))
        db.session.commit()
        self.assertError(
            self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token}),
            401,
            "Invalid token. Please log in again.",
        )

    def test_expired_refresh_token(self):
        past = datetime.now(timezone.utc) - timedelta(days=40)
        token = self._token(type=REFRESH, iat=past, exp=past + timedelta(days=30))
        self.assertError(
            self.client.post("/v1/auth/refresh", json={"refresh_token": token}),
            401,
            "Signature expired. Please log in again.",
        )
        response = self.client.post("/v1/auth/logout", headers=bearer(self.access), json={"refresh_token": token})
        self.assertEqual(response.status_code, 200)

    def test_password_change_kills_earlier_tokens(self):
        response = self.client.put(
            "/v1/auth/password",
            headers=bearer(self.access),
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        )
        self.assertEqual(response.status_code, 200)
        revoked = "Token has been revoked. Please log in again."
        self.assertError(self.me(bearer(self.access)), 401, revoked)
        self.assertError(self.client.post("/v1/auth/refresh", json={"refresh_token": self.refresh_token}), 401, revoked)
        self.assertEqual(self.me(bearer(response.json["auth_token"])).status_code, 200)
        old = self.client.post("/v1/auth/login", json={"email": "tok@example.com", "password": PASSWORD})
        self.assertError(old, 401)
        new = self.client.post("/v1/auth/login", json={"email": "tok@example.com", "password": "a brand new secret"})
        self.assertEqual(new.status_code, 200)

    def test_password_change_validation(self):
        headers = bearer(self.access)
        wrong = self.client.put(
            "/v1/auth/password",
            headers=headers,
            json={"current_password": "nope nope", "new_password": "another secret"},
        )
        self.assertFieldError(wrong, "current_password")
        self.assertFieldError(
            self.client.put("/v1/auth/password", headers=headers, json={"current_password": PASSWORD}), "new_password"
        )
        self.assertFieldError(
            self.client.put(
                "/v1/auth/password", headers=headers, json={"current_password": PASSWORD, "new_password": "short"}
            ),
            "new_password",
        )
        self.assertFieldError(
            self.client.put(
                "/v1/auth/password", headers=headers, json={"current_password": PASSWORD, "new_password": "x" * 100}
            ),
            "new_password",
        )
        self.assertError(self.client.post("/v1/auth/password", headers=headers, json={}), 405)
        self.assertEqual(self.me(headers).status_code, 200)

    def test_role_change_takes_effect_at_once(self):
        headers = bearer(self.access)
        self.assertError(self.client.get("/v1/actors", headers=headers), 403)
        user = db.session.get(User, self.user_id)
        user.role = "casting_assistant"
        db.session.commit()
        self.assertEqual(self.client.get("/v1/actors", headers=headers).status_code, 200)
        me = self.me(headers).json["user"]
        self.assertEqual(me["role"], "casting_assistant")
        self.assertEqual(me["permissions"], ["get:actors", "get:images", "get:movies"])


class PasswordGuessingTests(APITestCase):
    """A token is not a way to guess its account's password: wrong passwords given to change it or
    to leave count per account (RATELIMIT_LOGIN), whichever token of the account sends them."""

    app_overrides = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_LOGIN": "3 per minute",
        "RATELIMIT_KEY_PREFIX": RATELIMIT_TEST_PREFIX,
    }

    def test_a_form_sent_to_the_json_login_is_415_with_the_limits_counting(self):
        # The limit's key reads a form's username (the token endpoint's), and leaves the body for
        # the view, which refuses the form here.
        form = "email=guessed%40example.com&password=password123"
        response = self.client.post("/v1/auth/login", data=form, content_type="application/x-www-form-urlencoded")
        self.assertError(response, 415, "Content-Type must be application/json")
        self.register("formed@example.com")
        token = {"grant_type": "password", "username": "formed@example.com", "password": PASSWORD}
        self.assertEqual(self.client.post("/v1/auth/token", data=token).status_code, 200)

    def test_wrong_passwords_to_change_or_leave_are_429_at_the_limit(self):
        first = self.register("guessed@example.com")
        second = self.client.post("/v1/auth/login", json={"email": "guessed@example.com", "password": PASSWORD}).json
        change = {"current_password": "guess one", "new_password": "a new password"}
        self.assertError(self.client.put("/v1/auth/password", json=change, headers=bearer(first["auth_token"])), 422)
        weak = {"current_password": PASSWORD, "new_password": "short"}
        for _ in range(3):  # a weak new password is not a guess
            response = self.client.put("/v1/auth/password", json=weak, headers=bearer(first["auth_token"]))
            self.assertFieldError(response, "new_password")
        leave = {"password": "guess two"}
        self.assertError(self.client.delete("/v1/auth/me", json=leave, headers=bearer(second["auth_token"])), 422)
        self.assertError(self.client.delete("/v1/auth/me", json=leave, headers=bearer(first["auth_token"])), 422)
        response = self.client.delete("/v1/auth/me", json={"password": PASSWORD}, headers=bearer(second["auth_token"]))
        self.assertError(response, 429)
        self.assertIn("Retry-After", response.headers)
        right = {"current_password": PASSWORD, "new_password": "a new password"}
        self.assertError(self.client.put("/v1/auth/password", json=right, headers=bearer(first["auth_token"])), 429)
        other = self.register()
        response = self.client.delete("/v1/auth/me", json={"password": PASSWORD}, headers=bearer(other["auth_token"]))
        self.assertEqual(response.status_code, 200, "another account is not held back")
