"""The wire rules: one envelope for every failure, request ids. (CORS: tests/test_cors.py.)"""

import re

import orjson
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


class NoRedirectTests(APITestCase):
    """No answer is a redirect built from the request's Host: a doubled slash is a 404 in the envelope."""

    def raw_path(self, method, path):
        # As a server hands it over: the test client would read "//v1" as a host name.
        headers = {"Host": "evil.example"}
        return self.client.open("/", method=method, headers=headers, environ_overrides={"PATH_INFO": path})

    def test_doubled_slashes_in_any_route_are_never_a_redirect(self):
        # Werkzeug drops leading slashes itself ("//v1/health" is served); one inside is a 404.
        paths = {"//v1//health", "//v1//auth//login", "/v1//", "/docs//"}
        for rule in self.app.url_map.iter_rules():
            concrete = rule.rule.replace("<path:filename>", "x.css")
            concrete = re.sub(r"<[^>]+>", "1", concrete)
            paths |= {concrete.replace("/", "//"), "/" + concrete, concrete.replace("/", "//", 2)}
        for path in sorted(paths):
            for method in ("GET", "POST"):
                with self.subTest(method=method, path=path):
                    response = self.raw_path(method, path)
                    self.assertNotIn("Location", response.headers)
                    self.assertNotIn("evil.example", str(response.headers))
                    self.assertNotEqual(response.status_code // 100, 3)
                    if response.status_code >= 400:
                        self.assertError(response, response.status_code)
        for path in ("//v1//health", "/v1//health", "/v1//buckets//1", "/docs//"):
            with self.subTest(path=path):
                self.assertError(self.raw_path("GET", path), 404, "Resource not found")
                self.assertError(self.raw_path("POST", path), 404, "Resource not found")

    def test_a_trailing_slash_is_served_as_the_route_without_it(self):
        for path in ("/v1/health/", "/v1/"):
            with self.subTest(path=path):
                response = self.raw_path("GET", path)
                self.assertEqual((response.status_code, response.mimetype), (200, "application/json"))
        self.assertError(self.raw_path("POST", "/v1/auth/login/"), 422)


class JsonBodyTests(APITestCase):
    """Bodies are read once, exactly: the same key twice is a 400, never "the last one wins"."""

    def post(self, url, raw, headers=None):
        return self.client.post(url, data=raw, content_type="application/json", headers=headers)

    def test_a_key_given_twice_is_400_naming_it(self):
        h = self.headers_for()
        for url, raw, key in (
            ("/v1/buckets", '{"name": "a", "name": "b"}', "name"),
            ("/v1/buckets", '{"name": "a", "\\u006eame": "b"}', "name"),  # the same key, escaped
            ("/v1/buckets", '{"name": "10:30", "x": {"k": 1, "k": 2}}', "k"),  # nested, and a colon in a string
            ("/v1/auth/register", '{"email": "a@example.com", "password": "x", "email": "b@example.com"}', "email"),
            ("/v1/auth/login", '{"email": "a@example.com", "email": "b@example.com", "password": "x"}', "email"),
        ):
            with self.subTest(raw=raw):
                self.assertError(self.post(url, raw, h), 400, f"Duplicate key in JSON: {key}")
        bucket = self.post("/v1/buckets", '{"name": "kept"}', h).json["bucket"]
        response = self.client.patch(
            f"/v1/buckets/{bucket['id']}", data='{"name": "a", "name": "b"}', content_type="application/json", headers=h
        )
        self.assertError(response, 400, "Duplicate key in JSON: name")
        names = [b["name"] for b in self.client.get("/v1/buckets", headers=h).json["buckets"]]
        self.assertEqual(names, ["kept"])
        long_key = "k" * 5000
        body = self.assertError(self.post("/v1/buckets", f'{{"{long_key}": 1, "{long_key}": 2}}', h), 400)
        self.assertLess(len(body["message"]), 200)

    def test_colons_in_strings_are_no_duplicates(self):
        h = self.headers_for()
        for name in ("10:30", "a: b: c", '{"name": "x"}', "::::"):
            with self.subTest(name=name):
                response = self.client.post("/v1/buckets", json={"name": name}, headers=h)
                self.assertEqual(response.status_code, 201, response.json)
                self.assertEqual(response.json["bucket"]["name"], name)

    def test_a_deeply_nested_body_is_a_clear_error(self):
        raw = '{"name": "a", "x": ' + "[" * 1000 + '"1:2"' + "]" * 1000 + "}"
        self.assertEqual(self.post("/v1/buckets", raw, self.headers_for()).status_code // 100, 4)


class ErrorFieldCapTests(APITestCase):
    """A 422 names at most 20 fields, and says how many more there are."""

    def test_a_body_of_80000_unknown_fields_gets_a_short_answer(self):
        raw = orjson.dumps({f"f{n:06d}": 1 for n in range(80000)})
        self.assertGreater(len(raw), 900_000)
        response = self.client.post("/v1/auth/register", data=raw, content_type="application/json")
        body = self.assertError(response, 422, "Validation failed (79982 more fields not listed)")
        self.assertLess(len(response.data), 2000)
        self.assertEqual(len(body["errors"]), 20)
        self.assertEqual(body["errors"]["email"], ["Missing data for required field."])
        self.assertEqual(body["errors"]["f000000"], ["Unknown field."])
        self.assertEqual(list(body["errors"])[2:], [f"f{n:06d}" for n in range(18)], "in the body's order")

    def test_every_location_is_capped_and_small_errors_are_whole(self):
        h = self.headers_for()
        unknown = {f"x{n:02d}": 1 for n in range(25)}
        body = self.assertError(self.client.post("/v1/buckets", json=unknown, headers=h), 422)
        self.assertEqual(len(body["errors"]), 20)
        self.assertEqual(body["message"], "Validation failed (6 more fields not listed)")  # 25 unknown, name missing
        form = {"grant_type": "password", "username": "a@example.com", "password": "x", **unknown}
        body = self.assertError(self.client.post("/v1/auth/token", data=form), 422)
        self.assertEqual((len(body["errors"]), body["message"]), (20, "Validation failed (5 more fields not listed)"))
        few = {"name": "b", **dict(list(unknown.items())[:3])}
        body = self.assertError(self.client.post("/v1/buckets", json=few, headers=h), 422, "Validation failed")
        self.assertEqual(set(body["errors"]), {"x00", "x01", "x02"})
        body = self.assertError(self.client.post("/v1/buckets", json={"name": ""}, headers=h), 422, "Validation failed")
        self.assertEqual(list(body["errors"]), ["name"])


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
