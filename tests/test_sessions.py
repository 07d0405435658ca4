"""Sessions: each login or registration starts one, refreshes continue it, and ending it stops its tokens."""

from datetime import datetime, timedelta, timezone
from unittest import mock

import jwt
from sqlalchemy import select, update

from app.auth import ACCESS, REFRESH
from app.extensions import db
from app.models import User, UserSession
from app.services import sessions
from tests.helpers import CONCURRENT, PASSWORD, APITestCase, bearer, count_queries, in_parallel

MSG_REVOKED = "Token has been revoked. Please log in again."
MSG_INVALID = "Invalid token. Please log in again."
SESSION_FIELDS = {"id", "created_at", "last_used_at", "user_agent", "ip", "current"}
TIME = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


class SessionTestCase(APITestCase):
    def setUp(self):
        super().setUp()
        self.email = "device@example.com"
        self.first = self.register(self.email)
        self.user_id = self.first["user"]["id"]

    def login(self, user_agent="phone/1.0", email=None, password=PASSWORD, **environ):
        response = self.client.post(
            "/v1/auth/login",
            json={"email": email or self.email, "password": password},
            headers={"User-Agent": user_agent},
            environ_base=environ,
        )
        self.assertEqual(response.status_code, 200, response.json)
        return response.json

    def refresh(self, refresh_token, user_agent="phone/1.0"):
        return self.client.post(
            "/v1/auth/refresh", json={"refresh_token": refresh_token}, headers={"User-Agent": user_agent}
        )

    def listed(self, tokens):
        response = self.client.get("/v1/auth/sessions", headers=bearer(tokens["auth_token"]))
        self.assertEqual(response.status_code, 200, response.json)
        self.assertIs(response.json["success"], True)
        return response.json["sessions"]

    def end(self, tokens, session_id):
        return self.client.delete(f"/v1/auth/sessions/{session_id}", headers=bearer(tokens["auth_token"]))

    def me(self, tokens):
        return self.client.get("/v1/auth/me", headers=bearer(tokens["auth_token"]))

    def sid(self, tokens):
        return jwt.decode(tokens["auth_token"], options={"verify_signature": False})["sid"]

    def assertDead(self, tokens):
        """Neither the access nor the refresh token of `tokens` works any more."""
        self.assertError(self.me(tokens), 401, MSG_REVOKED)
        self.assertError(self.refresh(tokens["refresh_token"]), 401, MSG_REVOKED)


class StartTests(SessionTestCase):
    def test_registration_starts_a_session_and_lists_it(self):
        listed = self.listed(self.first)
        self.assertEqual(len(listed), 1)
        session = listed[0]
        self.assertEqual(set(session), SESSION_FIELDS)
        self.assertEqual(session["id"], self.sid(self.first))
        self.assertIs(session["current"], True)
        self.assertRegex(session["created_at"], TIME)
        self.assertEqual(session["last_used_at"], session["created_at"])
        self.assertEqual(session["ip"], "127.0.0.1")
        self.assertIn("Werkzeug", session["user_agent"])  # the test client's own

    def test_each_login_is_a_session_and_current_marks_the_callers(self):
        phone = self.login("phone/1.0")
        laptop = self.login("laptop/2.0", REMOTE_ADDR="192.0.2.7")
        listed = self.listed(laptop)
        self.assertEqual(len(listed), 3)
        by_id = {session["id"]: session for session in listed}
        self.assertEqual(set(by_id), {self.sid(self.first), self.sid(phone), self.sid(laptop)})
        self.assertEqual([s["id"] for s in listed if s["current"]], [self.sid(laptop)])
        self.assertEqual(by_id[self.sid(laptop)]["user_agent"], "laptop/2.0")
        self.assertEqual(by_id[self.sid(laptop)]["ip"], "192.0.2.7")
        self.assertEqual(by_id[self.sid(phone)]["user_agent"], "phone/1.0")
        self.assertEqual([s["id"] for s in self.listed(phone) if s["current"]], [self.sid(phone)])

    def test_the_oauth2_token_endpoint_starts_a_session_too(self):
        response = self.client.post(
            "/v1/auth/token", data={"grant_type": "password", "username": self.email, "password": PASSWORD}
        )
        self.assertEqual(response.status_code, 200, response.json)
        tokens = {"auth_token": response.json["access_token"], "refresh_token": response.json["refresh_token"]}
        self.assertEqual(len(self.listed(tokens)), 2)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status_code, 200)

    def test_a_failed_login_starts_nothing(self):
        response = self.client.post("/v1/auth/login", json={"email": self.email, "password": "wrong password"})
        self.assertError(response, 401)
        self.assertEqual(db.session.query(UserSession).count(), 1)

    def test_tokens_carry_the_session_id(self):
        for token, kind in ((self.first["auth_token"], ACCESS), (self.first["refresh_token"], REFRESH)):
            claims = jwt.decode(token, self.app.config["SECRET_KEY"], algorithms=["HS256"])
            self.assertEqual(claims["type"], kind)
            self.assertEqual(claims["sid"], db.session.scalars(select(UserSession.id)).one())

    def test_the_user_agent_is_cut_and_stripped_of_control_characters(self):
        tokens = self.login("a\tb" + "x" * 400)
        session = next(s for s in self.listed(tokens) if s["current"])
        self.assertEqual(session["user_agent"], "ab" + "x" * 253)
        tokens = self.login("")
        self.assertIsNone(next(s for s in self.listed(tokens) if s["current"])["user_agent"])

    def test_a_user_has_at_most_so_many_sessions_the_least_recently_used_end(self):
        with mock.patch.object(sessions, "MAX_SESSIONS_PER_USER", 3):
            logins = [self.login(f"device {n}") for n in range(4)]
        self.assertDead(self.first)  # the oldest of five: two ended to keep three
        self.assertDead(logins[0])
        self.assertEqual({s["id"] for s in self.listed(logins[3])}, {self.sid(tokens) for tokens in logins[1:]})

    def test_a_login_forgets_the_users_expired_sessions(self):
        self.expire(self.sid(self.first))
        self.login()
        self.assertEqual(db.session.query(UserSession).count(), 1)

    def expire(self, session_id):
        db.session.execute(
            update(UserSession)
            .where(UserSession.id == session_id)
            .values(expires_at=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1))
        )
        db.session.commit()


class BehindAProxyTests(SessionTestCase):
    app_overrides = {"TRUSTED_PROXIES": 1}

    def test_the_address_is_the_client_the_proxy_names(self):
        response = self.client.post(
            "/v1/auth/login",
            json={"email": self.email, "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.4"},
        )
        session = next(s for s in self.listed(response.json) if s["current"])
        self.assertEqual(session["ip"], "198.51.100.4")


class RefreshTests(SessionTestCase):
    def test_a_refresh_continues_its_session_and_moves_last_used_at(self):
        db.session.execute(update(UserSession).values(last_used_at=datetime(2020, 1, 1), user_agent="old"))
        db.session.commit()
        response = self.refresh(self.first["refresh_token"], user_agent="phone/9")
        self.assertEqual(response.status_code, 200, response.json)
        refreshed = response.json
        self.assertEqual(self.sid(refreshed), self.sid(self.first))
        [session] = self.listed(refreshed)
        self.assertIs(session["current"], True)
        self.assertNotEqual(session["last_used_at"], "2020-01-01T00:00:00Z")
        self.assertEqual(session["user_agent"], "phone/9")
        self.assertEqual(self.refresh(refreshed["refresh_token"]).status_code, 200)

    def test_a_spent_refresh_token_is_revoked_and_its_session_goes_on(self):
        refreshed = self.refresh(self.first["refresh_token"]).json
        self.assertError(self.refresh(self.first["refresh_token"]), 401, MSG_REVOKED)
        self.assertEqual(self.me(refreshed).status_code, 200)
        self.assertEqual(self.me(self.first).status_code, 200)  # an access token lives until it expires

    def test_the_session_expires_with_its_refresh_token(self):
        refreshed = self.refresh(self.first["refresh_token"]).json
        session = db.session.get(UserSession, self.sid(refreshed))
        claims = jwt.decode(refreshed["refresh_token"], options={"verify_signature": False})
        self.assertEqual(session.expires_at.replace(tzinfo=timezone.utc).timestamp(), claims["exp"])

    def test_a_refresh_token_of_another_users_session_is_revoked(self):
        other = self.register("other@example.com")
        claims = jwt.decode(self.first["refresh_token"], options={"verify_signature": False})
        forged = jwt.encode({**claims, "sid": self.sid(other)}, self.app.config["SECRET_KEY"], algorithm="HS256")
        self.assertError(self.refresh(forged), 401, MSG_REVOKED)
        self.assertEqual(self.refresh(other["refresh_token"]).status_code, 200)

    def test_a_session_id_that_is_not_a_positive_integer_is_an_invalid_token(self):
        claims = jwt.decode(self.first["auth_token"], options={"verify_signature": False})
        for sid in ("1", True, 0, -1, 2**31, 1.0, None):
            with self.subTest(sid=sid):
                token = jwt.encode({**claims, "sid": sid}, self.app.config["SECRET_KEY"], algorithm="HS256")
                self.assertError(self.me({"auth_token": token}), 401, MSG_INVALID)


class EndTests(SessionTestCase):
    def test_ending_a_session_stops_its_tokens_at_once_and_no_other(self):
        phone = self.login("phone/1.0")
        refreshed = self.refresh(phone["refresh_token"]).json  # two access tokens issued in it
        laptop = self.login("laptop/1.0")
        response = self.end(laptop, self.sid(phone))
        self.assertEqual(response.status_code, 200, response.json)
        self.assertEqual(response.json, {"success": True, "deleted": self.sid(phone)})
        self.assertEqual(response.headers["Cache-Control"], "private, no-cache")
        self.assertDead(phone)
        self.assertDead(refreshed)
        self.assertEqual(self.me(laptop).status_code, 200)
        self.assertEqual(self.me(self.first).status_code, 200)
        self.assertEqual({s["id"] for s in self.listed(laptop)}, {self.sid(laptop), self.sid(self.first)})

    def test_an_ended_session_is_404_the_second_time(self):
        phone = self.login()
        self.assertEqual(self.end(self.first, self.sid(phone)).status_code, 200)
        self.assertError(self.end(self.first, self.sid(phone)), 404, "Resource not found")

    def test_ending_the_current_session_signs_this_client_out(self):
        self.assertEqual(self.end(self.first, self.sid(self.first)).status_code, 200)
        self.assertDead(self.first)

    def test_another_users_session_or_a_missing_one_is_404(self):
        other = self.register("other@example.com")
        for session_id in (self.sid(other), 999999, 0, "abc", 2**31):
            with self.subTest(session_id=session_id):
                self.assertError(self.end(self.first, session_id), 404)
        self.assertEqual(self.me(other).status_code, 200)

    def test_expired_sessions_are_neither_listed_nor_ended(self):
        phone = self.login()
        StartTests.expire(self, self.sid(phone))
        self.assertEqual([s["id"] for s in self.listed(self.first)], [self.sid(self.first)])
        self.assertError(self.end(self.first, self.sid(phone)), 404)

    def test_ended_session_ids_are_never_given_again(self):
        phone = self.login()
        self.end(self.first, self.sid(phone))
        self.assertGreater(self.sid(self.login()), self.sid(phone))
        self.assertDead(phone)

    def test_a_password_change_ends_every_session_and_starts_one(self):
        phone = self.login()
        response = self.client.put(
            "/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "another long password"},
            headers=bearer(phone["auth_token"]),
        )
        self.assertEqual(response.status_code, 200, response.json)
        self.assertDead(phone)
        self.assertDead(self.first)
        [session] = self.listed(response.json)
        self.assertIs(session["current"], True)
        self.assertEqual(self.refresh(response.json["refresh_token"]).status_code, 200)

    def test_end_every_session_voids_every_earlier_token(self):
        phone = self.login()
        user = db.session.get(User, self.user_id)
        version = user.token_version
        sessions.end_every_session(user)
        db.session.commit()
        self.assertEqual(user.token_version, version + 1)
        self.assertEqual(db.session.query(UserSession).count(), 0)
        self.assertDead(phone)
        self.assertDead(self.first)

    def test_concurrent_ends_of_every_session_each_void_the_tokens_issued_before(self):
        # Computed in SQL: two at once move the version twice, so neither leaves tokens of the other alive.
        app = self.app

        def end_all():
            with app.app_context():
                sessions.end_every_session(db.session.get(User, self.user_id))
                db.session.commit()
                db.session.remove()

        version = db.session.get(User, self.user_id).token_version
        in_parallel(end_all, [()] * 2)
        db.session.expire_all()
        self.assertEqual(db.session.get(User, self.user_id).token_version, version + 2)

    def test_logout_with_the_refresh_token_ends_the_session(self):
        phone = self.login()
        response = self.client.post(
            "/v1/auth/logout", json={"refresh_token": phone["refresh_token"]}, headers=bearer(phone["auth_token"])
        )
        self.assertEqual(response.status_code, 200)
        self.assertDead(phone)
        self.assertEqual([s["id"] for s in self.listed(self.first)], [self.sid(self.first)])

    def test_deleting_the_user_ends_its_sessions(self):
        db.session.delete(db.session.get(User, self.user_id))
        db.session.commit()
        self.assertEqual(db.session.query(UserSession).count(), 0)

    def test_one_statement_checks_token_user_and_session(self):
        with count_queries() as statements:
            self.assertEqual(self.me(self.first).status_code, 200)
        self.assertEqual(len(statements), 1, statements)
        self.assertIn("sessions", statements[0])


class LegacyTokenTests(SessionTestCase):
    """Tokens issued before sessions existed carry no `sid`."""

    def legacy(self, kind, **changes):
        now = datetime.now(timezone.utc)
        claims = {
            "sub": str(self.user_id),
            "iat": now,
            "exp": now + timedelta(minutes=5),
            "jti": f"legacy-{kind}",
            "type": kind,
            "ver": db.session.get(User, self.user_id).token_version,
            **changes,
        }
        return jwt.encode(claims, self.app.config["SECRET_KEY"], algorithm="HS256")

    def test_an_access_token_works_until_it_expires(self):
        self.assertEqual(self.me({"auth_token": self.legacy(ACCESS)}).status_code, 200)

    def test_a_refresh_starts_a_session_and_spends_the_token(self):
        token = self.legacy(REFRESH)
        response = self.refresh(token)
        self.assertEqual(response.status_code, 200, response.json)
        self.assertEqual(len(self.listed(response.json)), 2)
        self.assertError(self.refresh(token), 401, MSG_REVOKED)

    def test_a_password_change_voids_them(self):
        access = {"auth_token": self.legacy(ACCESS)}
        self.client.put(
            "/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "another long password"},
            headers=bearer(self.first["auth_token"]),
        )
        self.assertError(self.me(access), 401, MSG_REVOKED)


class EndWhileRefreshingTests(SessionTestCase):
    """The race on the database under test (SQLite too): threads through the app, each with its own client.
    The live-server version, on PostgreSQL, is tests/races/test_session_races.py."""

    app_overrides = CONCURRENT

    def test_ending_a_session_while_it_refreshes_leaves_no_live_token_of_it(self):
        laptop = self.login("laptop")
        for _ in range(5):
            phone = self.login("phone")
            refresh = ("POST", "/v1/auth/refresh", {"refresh_token": phone["refresh_token"]}, {})
            end = ("DELETE", f"/v1/auth/sessions/{self.sid(phone)}", None, bearer(laptop["auth_token"]))
            answers = self.at_once([refresh, end, refresh])
            refreshed, ended = [answers[0], answers[2]], answers[1]
            self.assertEqual(ended.status_code, 200)
            self.assertIn(sorted(answer.status_code for answer in refreshed), ([200, 401], [401, 401]))
            for answer in refreshed:
                if answer.status_code == 200:
                    self.assertDead(answer.json)
            self.assertDead(phone)
            self.assertIsNone(db.session.get(UserSession, self.sid(phone)))
        self.assertEqual(self.me(laptop).status_code, 200)

    def at_once(self, requests):
        """(method, path, json, headers) requests sent at once (helpers' `concurrently`)."""

        def send(client, index):
            method, path, body, headers = requests[index]
            return client.open(path, method=method, json=body, headers=headers)

        return self.concurrently(len(requests), send)
