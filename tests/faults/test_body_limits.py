"""The JSON size limit applies before anything reads the body, on every endpoint.

Each request announces (or streams) more than MAX_JSON_BYTES but never sends all of it:
the server must answer 413 from what it has, instead of waiting for (and parsing) the rest.
"""

import json
import socket

from tests.liveserver import LiveServerTestCase, stop_shared_server

JSON_ROUTES = ["/v1/auth/login", "/v1/auth/register", "/v1/auth/refresh", "/v1/buckets", "/v1/auth/logout"]


LIMIT = 1024 * 1024  # MAX_JSON_BYTES's default


def tearDownModule():
    stop_shared_server()


class BodyLimits(LiveServerTestCase):
    def send_raw(self, head, body):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(head.encode() + body)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)  # a server still waiting for the body times out here
                if not chunk:
                    break
                reply += chunk
        status_line, _, rest = reply.partition(b"\r\n")
        headers, _, payload = rest.partition(b"\r\n\r\n")
        return int(status_line.split()[1]), headers.decode().lower(), json.loads(payload)

    def assert413(self, status, headers, body):
        self.assertEqual(status, 413)
        self.assertIn("content-type: application/json", headers)
        self.assertEqual(body["message"], f"JSON body is larger than {LIMIT} bytes")

    def test_announced_length_over_the_limit_is_413_before_the_body(self):
        _, headers = self.server.account()
        for path in JSON_ROUTES:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: {headers['Authorization']}\r\nContent-Length: 45000000\r\n\r\n"
            )
            with self.subTest(path=path):
                self.assert413(*self.send_raw(head, b'{"email": "'))

    def test_chunked_body_is_cut_at_the_limit(self):
        # Well past the limit: at a chunk's very end gunicorn would wait for the next chunk's size.
        chunk = b"[" + b"1," * (LIMIT // 2 + 65536)
        head = (
            "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        self.assert413(*self.send_raw(head, f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"))


class GunicornLimits(LiveServerTestCase):
    """gunicorn.conf.py's limits: long cursors fit; past them gunicorn itself answers, in the
    API's JSON envelope (server.py), as it does for a request that is not valid HTTP."""

    def assertEnvelope(self, answer, status, message):
        self.assertEqual(answer.status, status)
        self.assertEqual(answer.headers["content-type"], "application/json")
        self.assertEqual(answer.json, {"success": False, "error": status, "message": message})

    def test_request_line_and_header_limits(self):
        _, headers = self.server.account()
        fits = self.server.request("GET", "/v1/buckets?ignored=" + "a" * 8000, headers=headers)
        self.assertEqual(fits.status, 200)
        self.assertEnvelope(self.server.request("GET", "/v1/health?q=" + "a" * 8200), 414, "URI too long")
        big = self.server.request("GET", "/v1/health", headers={"X-Big": "b" * 8200})
        self.assertEnvelope(big, 431, "Request header fields too large")
        many = {f"X-Field-{n}": "1" for n in range(70)}
        self.assertEnvelope(
            self.server.request("GET", "/v1/health", headers=many), 431, "Request header fields too large"
        )

    def test_a_request_that_is_not_http_is_400_in_the_envelope(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as conn:
            conn.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        head, body = answer.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 400 "), head)
        self.assertIn(b"Content-Type: application/json", head)
        self.assertEqual(json.loads(body), {"success": False, "error": 400, "message": "Bad request"})
