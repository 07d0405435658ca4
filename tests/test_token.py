"""POST /v1/auth/token: the OAuth2 password grant (RFC 6749 section 4.3) the docs page signs in with."""

from app.services import accounts
from tests.helpers import PASSWORD, RATELIMIT_TEST_PREFIX, APITestCase, bearer

FORM = "application/x-www-form-urlencoded"


class TokenTests(APITestCase):
    def grant(self, email, password=PASSWORD, **extra):
        form = {"grant_type": "password", "username": email, "password": password, **extra}
        return self.client.post("/v1/auth/token", data=form, content_type=FORM)

    def test_password_grant_answers_a_bearer_token_pair(self):
        self.register("ada@example.com")
        response = self.grant("ADA@example.com ")
        self.assertEqual(response.status_code, 200, response.json)
        body = response.json
        self.assertEqual(
            set(body), {"success", "access_token", "token_type", "expires_in", "refresh_token"}, "RFC 6749 5.1"
        )
        self.assertIs(body["success"], True)
        self.assertEqual(body["token_type"], "bearer")
        self.assertEqual(body["expires_in"], 15 * 60)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        me = self.client.get("/v1/auth/me", headers=bearer(body["access_token"]))
        self.assertEqual(me.json["user"]["email"], "ada@example.com")
        refreshed = self.client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        self.assertEqual(refreshed.status_code, 200)

    def test_what_swagger_ui_sends_is_accepted(self):
        self.register("ui@example.com")
        response = self.grant("ui@example.com", scope="", client_id="", client_secret="")
        self.assertEqual(response.status_code, 200, response.json)
        with_basic = self.client.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": "ui@example.com", "password": PASSWORD, "scope": ""},
            content_type=FORM,
            headers={"Authorization": "Basic Og=="},  # an empty client id and secret
        )
        self.assertEqual(with_basic.status_code, 200, with_basic.json)

    def test_wrong_credentials_are_401_in_the_envelope(self):
        self.register("bob@example.com")
        for email, password in (("bob@example.com", "wrong password"), ("nobody@example.com", PASSWORD)):
            with self.subTest(email=email):
                response = self.grant(email, password)
                self.assertError(response, 401, "Invalid email or password")
                self.assertEqual(response.headers["WWW-Authenticate"], "Bearer")

    def test_other_grants_and_missing_fields_are_422(self):
        self.register("carol@example.com")
        self.assertFieldError(self.grant("carol@example.com", grant_type="client_credentials"), "grant_type")
        response = self.client.post("/v1/auth/token", data={"grant_type": "password"}, content_type=FORM)
        body = self.assertFieldError(response, "username")
        self.assertIn("password", body["errors"])
        self.assertFieldError(self.grant("carol@example.com", colour="red"), "colour")

    def test_a_json_body_is_415(self):
        response = self.client.post(
            "/v1/auth/token", json={"grant_type": "password", "username": "a@example.com", "password": PASSWORD}
        )
        self.assertError(response, 415, "Content-Type must be application/x-www-form-urlencoded")


class TokenRateLimitTests(APITestCase):
    app_overrides = {"RATELIMIT_ENABLED": True, "RATELIMIT_LOGIN": "2 per minute", "RATELIMIT_KEY_PREFIX": "token-test"}

    def test_failed_grants_and_failed_logins_share_one_count(self):
        self.register("dave@example.com")
        form = {"grant_type": "password", "username": "dave@example.com", "password": "wrong password"}
        self.assertEqual(self.client.post("/v1/auth/token", data=form, content_type=FORM).status_code, 401)
        login = {"email": "dave@example.com", "password": "wrong password"}
        self.assertEqual(self.client.post("/v1/auth/login", json=login).status_code, 401)
        response = self.client.post("/v1/auth/token", data=form, content_type=FORM)
        self.assertError(response, 429)
        self.assertError(self.client.post("/v1/auth/login", json=login), 429)


class LoginLimitKeyTests(APITestCase):
    app_overrides = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_LOGIN": "2 per minute",
        "RATELIMIT_KEY_PREFIX": RATELIMIT_TEST_PREFIX,
    }

    def test_every_form_of_one_address_counts_as_one_account(self):
        accounts.register("u@bücher.example", PASSWORD)
        wrong = "wrong password"
        self.assertEqual(
            self.client.post("/v1/auth/login", json={"email": "U@BÜCHER.example", "password": wrong}).status_code, 401
        )
        form = {"grant_type": "password", "username": "u@xn--bcher-kva.example", "password": wrong}
        self.assertEqual(self.client.post("/v1/auth/token", data=form, content_type=FORM).status_code, 401)
        response = self.client.post("/v1/auth/login", json={"email": " u@bücher.EXAMPLE ", "password": PASSWORD})
        self.assertError(response, 429)


class PasswordSprayingTests(APITestCase):
    """Failed logins from one address are counted across accounts too (RATELIMIT_LOGIN_ADDRESS)."""

    app_overrides = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_LOGIN": "10 per minute",
        "RATELIMIT_LOGIN_ADDRESS": "3 per hour",
        "RATELIMIT_KEY_PREFIX": RATELIMIT_TEST_PREFIX,
    }

    def test_one_password_on_many_accounts_is_429_at_the_address_limit(self):
        check_spraying(self)


def check_spraying(case):
    """Two failed logins and a failed grant on three accounts, then 429 on a fourth, by either door;
    another address is not held back, and a right password never counts."""
    emails = [f"sprayed{n}@example.com" for n in range(5)]
    for email in emails:
        accounts.register(email, PASSWORD)  # not through the endpoint: it has a rate limit of its own
    right = {"email": emails[0], "password": PASSWORD}
    for _ in range(3):
        case.assertEqual(case.client.post("/v1/auth/login", json=right).status_code, 200)
    wrong = "Summer2026!"
    case.assertEqual(case.client.post("/v1/auth/login", json={"email": emails[0], "password": wrong}).status_code, 401)
    case.assertEqual(case.client.post("/v1/auth/login", json={"email": emails[1], "password": wrong}).status_code, 401)
    form = {"grant_type": "password", "username": emails[2], "password": wrong}
    case.assertEqual(case.client.post("/v1/auth/token", data=form, content_type=FORM).status_code, 401)
    response = case.client.post("/v1/auth/login", json={"email": emails[3], "password": wrong})
    case.assertError(response, 429)
    case.assertGreater(int(response.headers["Retry-After"]), 60, "the hour's window, not the minute's")
    form["username"] = emails[4]
    case.assertError(case.client.post("/v1/auth/token", data=form, content_type=FORM), 429)
    elsewhere = {"REMOTE_ADDR": "192.0.2.7"}
    response = case.client.post("/v1/auth/login", json={"email": emails[4], "password": wrong}, environ_base=elsewhere)
    case.assertEqual(response.status_code, 401)
