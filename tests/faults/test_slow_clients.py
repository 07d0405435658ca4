"""Slow clients against a live gunicorn with production's fair admission (one slot per worker):
a client that sends its headers or its body slowly costs only its own connection, and everyone
else is served as usual (the contract's "Service endpoints"). Bounded: a few connections, a few
seconds; another client probes /v1/health meanwhile, and no probe may wait a second."""

import socket
import statistics
import time

from server import BODY_BYTES_PER_SECOND, CONTINUE, HEAD_SECONDS
from tests.helpers import SlowClients
from tests.liveserver import LiveServerTestCase

SECONDS = 5
PROBE_SECONDS = 1.0  # what "served as usual" allows a probe, on a loaded test machine


class SlowClientTests(LiveServerTestCase):
    server_env = {"FAIR_SLOTS": "1"}

    def probe(self, seconds):
        """GET /v1/health every 0.1 s for `seconds`: each probe's (seconds waited, status)."""
        probes, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                status = self.server.request("GET", "/v1/health", timeout=SECONDS).status
            except OSError:
                status = 0  # not answered in time
            probes.append((time.monotonic() - sent, status))
            time.sleep(0.1)
        return probes

    def assertServedAsUsual(self, probes, label):
        waits = [wait for wait, _ in probes]
        print(f"\n{label}: /v1/health median {statistics.median(waits) * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms")
        self.assertEqual({status for _, status in probes}, {200})
        self.assertLess(max(waits), PROBE_SECONDS)

    def test_slow_bodies_delay_nobody_and_get_408_when_their_time_is_up(self):
        # More connections than the server has threads (2 workers x 8 here), each trickling a JSON
        # body, for longer than a body may take (server.py: HEAD_SECONDS + its length at
        # BODY_BYTES_PER_SECOND): the poller receives them, no thread waits for them.
        length = 100_000
        head = (
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % length
        )
        allowed = HEAD_SECONDS + length / BODY_BYTES_PER_SECOND
        with SlowClients(self.server.port, 24, head, b'{"email": "' + b"a" * length, interval=0.5) as slow:
            time.sleep(0.5)  # the bodies are arriving
            probes = self.probe(SECONDS)
            time.sleep(allowed + 1 - SECONDS)
            answers = slow.answers()
        self.assertServedAsUsual(probes, "24 slow bodies")
        for answer in answers:
            self.assertTrue(answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:200])
            self.assertIn(b'"message": "Request timeout"', answer)

    def test_a_client_expecting_100_continue_hears_it_before_it_sends_its_body(self):
        body = b'{"email": "nobody@example.com", "password": "not the password"}'
        head = (
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=SECONDS) as sock:
            sock.sendall(head)
            self.assertEqual(sock.recv(len(CONTINUE)), CONTINUE)
            sock.sendall(body)
            answer = sock.recv(65536)
        self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer[:200])
        self.assertNotIn(b"100 Continue", answer)

    def test_slow_headers_delay_nobody(self):
        # More connections than the server has threads (2 workers x 8 here), for long enough
        # that the server gives up on their heads (server.py HEAD_SECONDS) while probed.
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
        with SlowClients(self.server.port, 24, head, b"X-Slow: " + b"a" * 100, interval=1.0):
            time.sleep(HEAD_SECONDS - 2)
            probes = self.probe(SECONDS)
        self.assertServedAsUsual(probes, "24 slow headers")
