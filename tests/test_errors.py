"""The wire rules: one envelope for every failure, request ids, CORS."""

from sqlalchemy import text

from app.extensions import db
from tests.helpers import APITestCase


class EnvelopeTests(APITestCase):
    def test_unknown_route_is_404_envelope(self):
        for path in (
            "/nope",
            "/v1/nope",
            "/v1/buckets/abc",
            "/v1/buckets/-1",
            "/v1/buckets/0",
            "/v1/buckets/99999999999",
        ):
            with self.subTest(path):
                self.assertError(self.client.get(path), 404, "Resource not found")

    def test_wrong_method_is_405_with_allow(self):
        response = self.client.delete("/v1/auth/login")
        self.assertError(response, 405, "Method not allowed")
        self.assertIn("POST", response.headers["Allow"])
        response = self.client.put("/v1/buckets", headers=self.headers_for())
        self.assertError(response, 405)
        self.assertEqual(set(response.headers["Allow"].split(", ")), {"GET", "HEAD", "OPTIONS", "POST"})

    def test_request_id_is_echoed_or_generated(self):
        response = self.client.get("/v1/health", headers={"X-Request-ID": "abc-123"})
        self.assertEqual(response.headers["X-Request-ID"], "abc-123")
        generated = self.client.get("/v1/health").headers["X-Request-ID"]
        self.assertRegex(generated, r"^[0-9a-f]{32}$")
        junk = self.client.get("/v1/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
        self.assertRegex(junk, r"^[0-9a-f]{32}$")
        self.assertIn("X-Request-ID", self.client.get("/nope").headers)

    def test_cors_preflight(self):
        response = self.client.options(
            "/v1/buckets",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        self.assertEqual(response.status_code, 204)
        self.assertIn(response.headers["Access-Control-Allow-Origin"], ("*", "https://app.example.com"))
        self.assertIn("POST", response.headers["Access-Control-Allow-Methods"])
        self.assertIn("authorization", response.headers["Access-Control-Allow-Headers"].lower())
        exposed = self.client.get("/v1/health", headers={"Origin": "https://app.example.com"}).headers[
            "Access-Control-Expose-Headers"
        ]
        for header in ("Link", "Location", "X-Request-ID", "Retry-After"):
            self.assertIn(header, exposed)


class FaultTests(APITestCase):
    """A fresh app per test, so a failing route can be added before any request."""

    app_overrides = {"LOG_LEVEL": "CRITICAL"}

    def test_unexpected_error_is_generic_500(self):
        @self.app.route("/boom-test")
        def boom():
            raise RuntimeError("secret internals")

        response = self.client.get("/boom-test", headers={"X-Request-ID": "req-123"})
        body = self.assertError(response, 500)
        self.assertNotIn("secret", response.get_data(as_text=True))
        self.assertNotIn("Traceback", response.get_data(as_text=True))
        self.assertIn("req-123", body["message"])

    def test_database_error_is_not_leaked(self):
        @self.app.route("/bad-sql-test")
        def bad_sql():
            db.session.execute(text("SELECT * FROM no_such_table"))

        response = self.client.get("/bad-sql-test")
        self.assertError(response, 500)
        self.assertNotIn("no_such_table", response.get_data(as_text=True))


class ProductionCorsTests(APITestCase):
    app_overrides = {"CORS_ORIGINS": "https://good.example.com"}

    def test_only_listed_origins(self):
        good = self.client.get("/v1/health", headers={"Origin": "https://good.example.com"})
        self.assertEqual(good.headers["Access-Control-Allow-Origin"], "https://good.example.com")
        bad = self.client.get("/v1/health", headers={"Origin": "https://evil.example.com"})
        self.assertNotIn("Access-Control-Allow-Origin", bad.headers)
