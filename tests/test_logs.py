"""Logs (../shared/API.md, "Operating it"): LOG_FORMAT=json writes one JSON object per line, the app's
lines and gunicorn's error and access lines alike; every request's access line carries its request id,
route and user; no secret ever reaches the log. Against a live gunicorn (2 workers) whose whole output
(error log, access log, stray prints) goes to one file, which the tests read back."""

import base64
import json
import secrets
import time
import unittest
import uuid

from config import ConfigError, build_config
from tests.helpers import free_port
from tests.liveimages import png, send_upload
from tests.liveserver import PASSWORD, LiveServerTestCase, bearer

# A Redis that is not there: the rate limiter falls back to counting in memory and logs it, from
# inside the request that found out (an app line that must carry that request's id).
ABSENT_REDIS = f"redis://127.0.0.1:{free_port()}/0"
REQUEST_FIELDS = ("method", "route", "status", "duration_ms", "user_id")


class LogFormatSetting(unittest.TestCase):
    def test_an_unknown_format_refuses_to_start(self):
        with self.assertRaisesRegex(ConfigError, "LOG_FORMAT must be text or json"):
            build_config("testing", LOG_FORMAT="xml")
        self.assertEqual(build_config("testing", LOG_FORMAT=" JSON ")["LOG_FORMAT"], "json")
        self.assertEqual(build_config("testing")["LOG_FORMAT"], "text")


class JsonLogs(LiveServerTestCase):
    server_env = {
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URI": ABSENT_REDIS,
    }
    server_access_log = True

    def lines(self):
        """Every line of the server's output, parsed: a line that is not a JSON object fails the test."""
        parsed = []
        for line in self.server.log().splitlines():
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    self.fail(f"not a JSON line: {line!r}")
                self.assertIsInstance(record, dict, line)
                parsed.append(record)
        return parsed

    def access_lines(self, request_id=None):
        return [r for r in self.lines() if r["logger"] == "gunicorn.access" and request_id in (None, r["request_id"])]

    def access_line(self, request_id):
        """The access line of `request_id`: gunicorn writes it once the answer is sent, so it may lag."""
        deadline = time.monotonic() + 10
        while not (matches := self.access_lines(request_id)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(matches), 1, f"access lines of {request_id}: {matches}")
        return matches[0]

    def test_every_line_is_one_json_object_with_the_contracts_fields(self):
        self.server.request("GET", "/v1/health")
        records = self.lines()
        self.assertTrue(any(r["logger"] == "gunicorn.error" for r in records))  # gunicorn's own lines too
        for record in records:
            self.assertLessEqual({"time", "level", "message", "request_id"}, set(record), record)
            self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(record["level"], {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})

    def test_each_request_has_an_access_line_with_its_id_route_status_duration_and_user(self):
        user_id, headers = self.server.account()
        bucket = self.server.request("POST", "/v1/buckets", json={"name": "logged"}, headers=headers).json["bucket"]
        request_id = f"follow-me-{uuid.uuid4().hex}"
        path = f"/v1/buckets/{bucket['id']}"
        answer = self.server.request("GET", path, headers={**headers, "X-Request-ID": request_id})
        self.assertEqual(answer.headers["x-request-id"], request_id)
        line = self.access_line(request_id)
        self.assertLessEqual(set(REQUEST_FIELDS), set(line))
        self.assertEqual(line["method"], "GET")
        self.assertEqual(line["route"], "/v1/buckets/<int:bucket_id>")
        self.assertEqual(line["path"], path)
        self.assertEqual(line["status"], 200)
        self.assertEqual(line["user_id"], user_id)
        self.assertIsInstance(line["duration_ms"], float)
        self.assertGreater(line["duration_ms"], 0)

    def test_answers_the_app_did_not_route_still_get_their_request_id(self):
        answer = self.server.request("GET", "/no/such/route?secret=1")
        line = self.access_line(answer.headers["x-request-id"])
        self.assertEqual((line["status"], line["route"], line["user_id"]), (404, None, None))
        self.assertEqual(line["path"], "/no/such/route")  # never the query string

    def test_the_apps_own_lines_carry_the_request_id(self):
        """Each worker logs the rate-limit store's absence from inside the request that found it out."""
        answers = [
            self.server.request("POST", "/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 8})
            for _ in range(4)
        ]
        self.access_line(answers[-1].headers["x-request-id"])  # every line of these requests is written
        fallback = [r for r in self.lines() if r["logger"] == "flask-limiter"]
        self.assertTrue(fallback)
        served = {r["request_id"] for r in self.access_lines()}
        for record in fallback:
            self.assertIn(record["request_id"], served)

    def test_no_secret_ever_reaches_the_log(self):
        """Log in, refresh, use bearer tokens, send foreign Authorization headers, change the password and
        upload; then scan everything the server wrote for each secret (and each token's signature)."""
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        new_password = f"new-{secrets.token_urlsafe(12)}"
        registered = self.server.request("POST", "/v1/auth/register", json={"email": email, "password": PASSWORD})
        user_id = registered.json["user"]["id"]
        self.server.execute("UPDATE users SET role = 'admin' WHERE id = :id", id=user_id)
        login = self.server.request("POST", "/v1/auth/login", json={"email": email, "password": PASSWORD}).json
        refreshed = self.server.request("POST", "/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}).json
        headers = bearer(refreshed["auth_token"])
        self.server.request("GET", "/v1/auth/me", headers=headers)
        self.server.request("GET", f"/v1/buckets?access_token={refreshed['auth_token']}")  # a client's mistake
        foreign_bearer = secrets.token_urlsafe(24)
        basic_password = secrets.token_urlsafe(12)
        basic = base64.b64encode(f"someone:{basic_password}".encode()).decode()
        self.server.request("GET", "/v1/buckets", headers={"Authorization": f"Bearer {foreign_bearer}"})
        self.server.request("GET", "/v1/buckets", headers={"Authorization": f"Basic {basic}"})
        marker = secrets.token_hex(16)
        picture = png(int(uuid.uuid4().int % 1_000_000)) + marker.encode()  # trailing data, dropped on store
        self.assertEqual(send_upload(self.server, [("p.png", picture)], headers, description="d").status, 201)
        self.server.request("POST", "/v1/auth/login", json={"email": email, "password": "wrong-" + new_password})
        change = {"current_password": PASSWORD, "new_password": new_password}
        changed = self.server.request("PUT", "/v1/auth/password", json=change, headers=headers)
        self.assertEqual(changed.status, 200)
        self.server.request("POST", "/v1/auth/logout", headers=headers)

        log = self.server.log()
        self.assertIn(str(user_id), log)  # the scan reads the right log: the requests are in it
        tokens = [registered.json["auth_token"], registered.json["refresh_token"], login["auth_token"]]
        tokens += [login["refresh_token"], refreshed["auth_token"], refreshed["refresh_token"]]
        found = [s for s in [PASSWORD, new_password, foreign_bearer, basic, basic_password, marker] if s in log]
        found += [token for token in tokens if token in log or token.rsplit(".", 1)[1] in log]
        self.assertEqual(found, [])


class TextLogs(LiveServerTestCase):
    server_env = {"LOG_LEVEL": "INFO"}
    server_access_log = True

    def test_the_readable_access_line_carries_the_request_id_and_the_user_id(self):
        user_id, headers = self.server.account()
        request_id = f"text-{uuid.uuid4().hex}"
        self.server.request("GET", "/v1/auth/me", headers={**headers, "X-Request-ID": request_id})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # gunicorn writes the line once the answer is sent
            lines = [line for line in self.server.log().splitlines() if f"request_id={request_id}" in line]
            if lines:
                break
            time.sleep(0.05)
        self.assertEqual(len(lines), 1, self.server.log()[-2000:])
        self.assertIn('"GET /v1/auth/me HTTP/1.1" 200', lines[0])
        self.assertIn(f"user_id={user_id}", lines[0])
