"""The contract's "Headers every client can rely on" (image bytes aside: see test_images)."""

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
        ):
            with self.subTest(status=response.status_code):
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

    def test_retry_after_only_on_429(self):
        email = "retry@example.com"
        registered = self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        self.assertEqual(registered.status_code, 201)
        self.assertNotIn("Retry-After", registered.headers)
        login = self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        self.assertEqual(login.status_code, 200)
        self.assertNotIn("Retry-After", login.headers)
        wrong = {"email": email, "password": "wrong password"}
        failures = [self.client.post("/v1/auth/login", json=wrong) for _ in range(3)]
        self.assertEqual([r.status_code for r in failures], [401, 401, 429])
        self.assertNotIn("Retry-After", failures[0].headers)
        self.assertTrue(1 <= int(failures[2].headers["Retry-After"]) <= 61)
        self.assertFalse([h for h in failures[2].headers.keys() if h.lower().startswith("x-ratelimit")])
