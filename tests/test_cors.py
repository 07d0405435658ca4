"""CORS: what a browser page on another origin may send and read, and which origins may call."""

from tests.helpers import APITestCase

ORIGIN = "https://app.example.com"


class CorsTests(APITestCase):
    def preflight(self, path, method, headers):
        return self.client.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            },
        )

    def exposed(self):
        return self.client.get("/v1/health", headers={"Origin": ORIGIN}).headers["Access-Control-Expose-Headers"]

    def test_preflight(self):
        response = self.preflight("/v1/buckets", "POST", "Authorization, Content-Type")
        self.assertEqual(response.status_code, 204)
        self.assertIn(response.headers["Access-Control-Allow-Origin"], ("*", ORIGIN))
        self.assertIn("POST", response.headers["Access-Control-Allow-Methods"])
        self.assertIn("authorization", response.headers["Access-Control-Allow-Headers"].lower())
        for header in ("Link", "Location", "X-Request-ID", "Retry-After"):
            self.assertIn(header, self.exposed())

    def test_browsers_may_send_and_read_the_conditional_and_retry_headers(self):
        preflight = self.preflight("/v1/buckets/1", "PATCH", "Authorization, If-Match, Idempotency-Key, If-None-Match")
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
        for header in ("if-match", "idempotency-key", "if-none-match"):
            self.assertIn(header, allowed)
        for header in ("ETag", "Idempotent-Replayed"):
            self.assertIn(header, self.exposed())


class ProductionCorsTests(APITestCase):
    app_overrides = {"CORS_ORIGINS": "https://good.example.com"}

    def test_only_listed_origins(self):
        good = self.client.get("/v1/health", headers={"Origin": "https://good.example.com"})
        self.assertEqual(good.headers["Access-Control-Allow-Origin"], "https://good.example.com")
        bad = self.client.get("/v1/health", headers={"Origin": "https://evil.example.com"})
        self.assertNotIn("Access-Control-Allow-Origin", bad.headers)
