"""Slow clients against a live gunicorn with production's fair admission (one slot per worker):
a client that sends its headers or its body slowly costs only its own connection, and everyone
else is served as usual (the contract's "Service endpoints"). Bounded: a few connections, a few
seconds; another client probes /v1/health meanwhile, and no probe may wait a second."""

import statistics
import time

from server import HEAD_SECONDS
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

    def test_two_slow_bodies_delay_nobody(self):
        head = (
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        with SlowClients(self.server.port, 2, head, b'{"email": "' + b"a" * 99989, interval=0.1):
            time.sleep(0.5)  # both bodies are arriving
            probes = self.probe(SECONDS)
        self.assertServedAsUsual(probes, "2 slow bodies")

    def test_slow_headers_delay_nobody(self):
        # More connections than the server has threads (2 workers x 8 here), for long enough
        # that the server gives up on their heads (server.py HEAD_SECONDS) while probed.
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
        with SlowClients(self.server.port, 24, head, b"X-Slow: " + b"a" * 100, interval=1.0):
            time.sleep(HEAD_SECONDS - 2)
            probes = self.probe(SECONDS)
        self.assertServedAsUsual(probes, "24 slow headers")
