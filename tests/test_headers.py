"""The contract's "Headers every client can rely on" (image bytes aside: see test_images)."""

import time
import uuid

from tests.helpers import PASSWORD, RATELIMIT_TEST_PREFIX, APITestCase, bearer


class StandardHeaderTests(APITestCase):
    def test_nosniff_on_every_answer(self):
        _, headers = self.account()
        answers = [
            self.client.get("/v1/health"),
            self.client.get("/v1/buckets", headers=headers),
            self.client.get("/v1/buckets"),
            self.client.get("/v1/nowhere"),
            self.client.delete("/v1/health"),
            self.client.post("/v1/buckets", data="{", content_type="application/json", headers=headers),
            self.client.options("/v1/buckets"),
        ]
        for response in answers:
            with self.subTest(status=response.status_code):
                self.assertEqual(response.headers.get("X-Content-Type-Options"), "nosniff")

    def test_answers_with_tokens_and_me_are_no_store(self):
        email = "cache@example.com"
        registered = self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        tokens = registered.json
        answers = {
            "register": registered,
            "login": self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}),
            "refresh": self.client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
            "me": self.client.get("/v1/auth/me", headers=bearer(tokens["auth_token"])),
            "password": self.client.put(
                "/v1/auth/password",
                json={"current_password": PASSWORD, "new_password": "another good password"},
                headers=bearer(tokens["auth_token"]),
            ),
        }
        for name, response in answers.items():
            with self.subTest(name):
                self.assertLess(response.status_code, 300, response.json)
                self.assertEqual(response.headers.get("Cache-Control"), "no-store")

    def test_other_authenticated_json_is_private_no_cache(self):
        _, headers = self.account()
        bucket = self.client.post("/v1/buckets", json={"name": "cached"}, headers=headers).json["bucket"]
        for response in (
            self.client.get("/v1/buckets", headers=headers),
            self.client.get(f"/v1/buckets/{bucket['id']}", headers=headers),
            self.client.get("/v1/buckets/999999", headers=headers),
            self.client.get("/v1/auth/sessions", headers=headers),  # under /v1/auth/, but neither tokens nor me
            self.client.delete("/v1/auth/sessions/999999", headers=headers),
        ):
            with self.subTest(path=response.request.path, status=response.status_code):
                self.assertEqual(response.headers.get("Cache-Control"), "private, no-cache")
        self.assertNotIn("Cache-Control", self.client.get("/v1/health").headers)

    def test_options_is_204_with_allow(self):
        for path, methods in {
            "/v1/buckets": {"GET", "POST"},
            "/v1/buckets/1": {"GET", "PUT", "PATCH", "DELETE"},
            "/v1/auth/login": {"POST"},
            "/": {"GET"},
        }.items():
            with self.subTest(path):
                response = self.client.options(path)
                self.assertEqual(response.status_code, 204)
                self.assertEqual(response.get_data(), b"")
                self.assertLessEqual(methods | {"OPTIONS"}, {m.strip() for m in response.headers["Allow"].split(",")})


class RetryAfterTests(APITestCase):
    app_overrides = {
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": RATELIMIT_TEST_PREFIX,
        "RATELIMIT_LOGIN": "2 per minute",
        "RATELIMIT_REGISTER": "3 per minute",
    }

    def test_retry_after_only_on_429_and_rate_limit_headers_on_every_limited_answer(self):
        check_rate_limit_headers(self, login_limit=2, register_limit=3)


def check_rate_limit_headers(case, login_limit, register_limit):
    """RATELIMIT_LOGIN `login_limit` per minute, RATELIMIT_REGISTER `register_limit` per minute, and
    no registration from this address yet: every answer of a rate-limited endpoint says its limit,
    what is left and when the window resets (Unix time); Retry-After is on the 429 only. Other
    endpoints carry none of these."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    registered = case.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    case.assertEqual(registered.status_code, 201)
    case.assertNotIn("Retry-After", registered.headers)
    case.assertEqual(registered.headers["X-RateLimit-Limit"], str(register_limit))
    case.assertEqual(registered.headers["X-RateLimit-Remaining"], str(register_limit - 1))
    login = case.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    case.assertEqual(login.status_code, 200)
    case.assertNotIn("Retry-After", login.headers)
    limit, remaining = login.headers["X-RateLimit-Limit"], login.headers["X-RateLimit-Remaining"]
    case.assertEqual((limit, remaining), (str(login_limit), str(login_limit)))  # a success does not count
    wrong = {"email": email, "password": "wrong password"}
    started = time.time()
    failures = [case.client.post("/v1/auth/login", json=wrong) for _ in range(login_limit + 1)]
    case.assertEqual([r.status_code for r in failures], [401] * login_limit + [429])
    left = [r.headers["X-RateLimit-Remaining"] for r in failures]
    case.assertEqual(left, [str(n) for n in range(login_limit - 1, -1, -1)] + ["0"])
    for response in failures:
        case.assertEqual(response.headers["X-RateLimit-Limit"], str(login_limit))
        case.assertTrue(started < int(response.headers["X-RateLimit-Reset"]) <= started + 62)
    case.assertEqual(["Retry-After" in r.headers for r in failures], [False] * login_limit + [True])
    case.assertTrue(1 <= int(failures[-1].headers["Retry-After"]) <= 61)
    me = case.client.get("/v1/auth/me", headers=bearer(login.json["auth_token"]))
    case.assertFalse([h for h in me.headers if h[0].lower().startswith(("x-ratelimit", "retry-after"))])
