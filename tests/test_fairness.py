"""The fair admission gate (app/fairness.py): who gets a freed slot, the 503 after a long wait,
slots given back on every outcome, and keys taken from verified tokens only.

Threads wait on the gate for real; the tests wait for a state (so many waiters queued), never
for a time, and assert orders, never durations.
"""

import threading
import time
import unittest
from unittest import mock

import jwt
from flask import abort, g

from app import auth, fairness
from app.fairness import BUSY, FairGate
from config import build_config
from tests.helpers import PASSWORD, APITestCase, bearer
from tests.jwks_server import JwksServer

FOREVER = 60  # seconds a waiter in these tests may wait: far more than any test needs


def wait_for(condition, what):
    """Poll until `condition()` holds (threads need a moment to reach the gate)."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"never reached: {what}")


class Visitor(threading.Thread):
    """Enters the gate as `principal`, notes its admission in `admitted`, leaves on `finish`."""

    def __init__(self, gate, principal, admitted, name):
        super().__init__(name=name, daemon=True)
        self.gate, self.principal, self.admitted = gate, principal, admitted
        self.finish = threading.Event()

    def run(self):
        self.gate.enter(self.principal, FOREVER)
        self.admitted.append(self.name)
        self.finish.wait(FOREVER)
        self.gate.leave(self.principal)


class GateOrderTests(unittest.TestCase):
    def queue(self, gate, principal, name, admitted):
        """Start a visitor and return once it waits in the gate."""
        waiting = gate.state()[1]
        visitor = Visitor(gate, principal, admitted, name)
        visitor.start()
        wait_for(lambda: gate.state()[1] == waiting + 1, f"{name} waiting")
        return visitor

    def admit_next(self, gate, leaving, admitted):
        """`leaving` gives its slot back; returns the name of the visitor admitted in its place."""
        count = len(admitted)
        leaving.finish.set()
        wait_for(lambda: len(admitted) == count + 1, "the next admission")
        return admitted[-1]

    def test_free_slots_admit_at_once(self):
        gate = FairGate(2)
        self.assertTrue(gate.enter("a", 0))
        self.assertTrue(gate.enter("a", 0))
        self.assertEqual(gate.state(), (2, 0))
        self.assertFalse(gate.enter("b", 0))  # full: a wait of 0 s gives up at once
        gate.leave("a")
        gate.leave("a")
        self.assertEqual(gate.state(), (0, 0))

    def test_a_light_user_overtakes_a_heavy_users_backlog(self):
        gate, admitted = FairGate(1), []
        holder = Visitor(gate, "heavy", admitted, "heavy-0")
        holder.start()
        wait_for(lambda: admitted == ["heavy-0"], "heavy-0 running")
        backlog = [self.queue(gate, "heavy", f"heavy-{n}", admitted) for n in (1, 2, 3)]
        light = self.queue(gate, "light", "light", admitted)
        self.assertEqual(self.admit_next(gate, holder, admitted), "light")
        # Each heavy request then goes in arrival order.
        self.assertEqual(self.admit_next(gate, light, admitted), "heavy-1")
        self.assertEqual(self.admit_next(gate, backlog[0], admitted), "heavy-2")
        self.assertEqual(self.admit_next(gate, backlog[1], admitted), "heavy-3")
        backlog[2].finish.set()
        backlog[2].join()
        self.assertEqual(gate.state(), (0, 0))

    def test_the_principal_with_fewest_running_goes_first_then_the_longest_waiting(self):
        gate, admitted = FairGate(3), []
        running = {name: Visitor(gate, name[0], admitted, name) for name in ("a-0", "a-00", "b-0")}
        for visitor in running.values():
            visitor.start()
        wait_for(lambda: gate.state() == (3, 0), "three running")
        waiters = {name: self.queue(gate, name[0], name, admitted) for name in ("a-1", "b-1", "c-1", "d-1")}
        # Running a: 2, b: 1 (the leaving request still counts), c and d: 0; c waited longer.
        self.assertEqual(self.admit_next(gate, running["b-0"], admitted), "c-1")
        # a: 2, b, d: 0 and b waited longer.
        self.assertEqual(self.admit_next(gate, waiters["c-1"], admitted), "b-1")
        # a: 2, b: 1 (leaving), d: 0.
        self.assertEqual(self.admit_next(gate, waiters["b-1"], admitted), "d-1")
        self.assertEqual(self.admit_next(gate, running["a-0"], admitted), "a-1")
        for visitor in [running["a-00"], waiters["a-1"], waiters["d-1"]]:
            visitor.finish.set()
            visitor.join()
        self.assertEqual(gate.state(), (0, 0))

    def test_a_waiter_that_gives_up_leaves_no_trace(self):
        gate, admitted = FairGate(1), []
        self.assertTrue(gate.enter("a", 0))
        self.assertFalse(gate.enter("b", 0))
        self.assertEqual(gate.state(), (1, 0))
        waiter = self.queue(gate, "b", "b-1", admitted)
        gate.leave("a")
        wait_for(lambda: admitted == ["b-1"], "b-1 admitted")
        waiter.finish.set()
        waiter.join()
        self.assertEqual(gate.state(), (0, 0))


class GatedAppTests(APITestCase):
    """One slot, so a test can hold it and see what requests do meanwhile."""

    app_overrides = {"FAIR_SLOTS": 1, "FAIR_WAIT_SECONDS": 0}

    def setUp(self):
        super().setUp()
        self.gate = self.app.extensions["fair_gate"]
        self.served = []  # the user of each guarded request, in the order they ran
        self.app.after_request(self._note_user)
        self.app.add_url_rule("/test-abort", view_func=lambda: abort(418))
        self.app.add_url_rule("/test-crash", view_func=self._crash)
        self.user_id, self.headers = self.account()

    def _note_user(self, response):
        if "current_user" in g:
            self.served.append(g.current_user.id)
        return response

    @staticmethod
    def _crash():
        raise RuntimeError("a bug")

    def test_a_request_that_waits_too_long_is_503_with_retry_after(self):
        self.assertTrue(self.gate.enter("someone", 0))
        try:
            response = self.client.get("/v1/buckets", headers=self.headers)
        finally:
            self.gate.leave("someone")
        self.assertError(response, 503, BUSY)
        self.assertEqual(response.headers["Retry-After"], "1")
        self.assertEqual(self.gate.state(), (0, 0))
        self.assertEqual(self.client.get("/v1/buckets", headers=self.headers).status_code, 200)

    def test_the_openapi_document_never_waits(self):
        self.assertTrue(self.gate.enter("someone", 0))
        try:
            response = self.client.get("/v1/openapi.json")
        finally:
            self.gate.leave("someone")
        self.assertEqual(response.status_code, 200)

    def test_every_outcome_gives_the_slot_back(self):
        bucket = self.client.post("/v1/buckets", headers=self.headers, json={"name": "Trips"})
        self.assertEqual(bucket.status_code, 201, bucket.json)
        url, etag = bucket.headers["Location"], bucket.headers["ETag"]
        requests = [
            (200, lambda: self.client.get(url, headers=self.headers)),
            (304, lambda: self.client.get(url, headers={**self.headers, "If-None-Match": etag})),
            (401, lambda: self.client.get(url)),
            (404, lambda: self.client.get("/v1/buckets/999999", headers=self.headers)),
            (405, lambda: self.client.put("/v1/buckets", headers=self.headers)),
            (412, lambda: self.client.patch(url, headers={**self.headers, "If-Match": '"x"'}, json={"name": "y"})),
            (413, lambda: self.client.post("/v1/buckets", headers=self.headers, data=b"x" * (2 << 20))),
            (422, lambda: self.client.post("/v1/buckets", headers=self.headers, json={})),
            (204, lambda: self.client.options("/v1/buckets")),
            (418, lambda: self.client.get("/test-abort")),
            (500, lambda: self.client.get("/test-crash")),
        ]
        for status, send in requests:
            with self.subTest(status=status):
                self.assertEqual(send().status_code, status)
                self.assertEqual(self.gate.state(), (0, 0))

    def test_a_request_whose_client_went_away_gives_the_slot_back(self):
        # The client announced a longer body than it sent: reading it fails mid-request.
        response = self.client.post(
            "/v1/buckets",
            headers=self.headers,
            data=b'{"name": "cut',
            content_type="application/json",
            environ_overrides={"CONTENT_LENGTH": "4096"},
        )
        self.assertError(response, 400)
        self.assertEqual(self.gate.state(), (0, 0))

    def test_a_light_users_request_overtakes_a_heavy_users_queued_requests(self):
        heavy_id, heavy = self.user_id, self.headers
        light_id, light = self.account()
        self.app.config["FAIR_WAIT_SECONDS"] = FOREVER
        self.assertTrue(self.gate.enter(("user", str(heavy_id)), 0))  # a heavy request is running
        answers = []

        def send(headers):
            with self.app.app_context():
                answers.append(self.app.test_client().get("/v1/auth/me", headers=headers).status_code)

        threads = []
        for waiting, headers in enumerate([heavy, heavy, heavy, light], start=1):
            threads.append(threading.Thread(target=send, args=(headers,)))
            threads[-1].start()
            wait_for(lambda n=waiting: self.gate.state()[1] == n, f"{waiting} requests waiting")
        self.served.clear()
        self.gate.leave(("user", str(heavy_id)))
        for thread in threads:
            thread.join()
        self.assertEqual(answers, [200] * 4)
        self.assertEqual(self.served, [light_id, heavy_id, heavy_id, heavy_id])
        self.assertEqual(self.gate.state(), (0, 0))


class GateOffTests(APITestCase):
    app_overrides = {"FAIR_SLOTS": 0}

    def test_no_slots_means_no_gate(self):
        self.assertNotIn("fair_gate", self.app.extensions)
        _, headers = self.account()
        self.assertEqual(self.client.get("/v1/buckets", headers=headers).status_code, 200)


class PoolSizeTests(unittest.TestCase):
    def pool_size(self, **settings):
        config = build_config("testing", SQLALCHEMY_DATABASE_URI="postgresql://db/app", **settings)
        return config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"]

    def test_the_pool_holds_a_connection_per_slot_unless_set(self):
        self.assertEqual(self.pool_size(FAIR_SLOTS=3), 3)
        self.assertEqual(self.pool_size(FAIR_SLOTS=3, DB_POOL_SIZE=5), 5)
        self.assertEqual(self.pool_size(FAIR_SLOTS=0), 0)  # no gate: SQLAlchemy's "no limit"


class PrincipalTests(APITestCase):
    """The gate keys a request on the identity its token proves, else on the client address."""

    def principal(self, headers=None, address="10.1.2.3"):
        with self.app.test_request_context(headers=headers, environ_base={"REMOTE_ADDR": address}):
            auth.verify_bearer()
            return fairness.principal()

    def forged(self, claims):
        return jwt.encode(claims, "not-the-secret-key-but-just-as-long-as-it", algorithm="HS256")

    def test_a_valid_token_is_keyed_on_its_user(self):
        user_id, headers = self.account()
        self.assertEqual(self.principal(headers), ("user", str(user_id)))

    def test_a_forged_or_missing_token_is_keyed_on_the_address(self):
        _, headers = self.account()
        claims = jwt.decode(headers["Authorization"].split()[1], options={"verify_signature": False})
        forged = bearer(self.forged(claims))
        self.assertEqual(self.principal(forged), ("address", "10.1.2.3"))
        self.assertEqual(self.principal(), ("address", "10.1.2.3"))
        self.assertEqual(self.principal({"Authorization": "Bearer"}), ("address", "10.1.2.3"))
        # ... and the answers stay what they were.
        self.assertError(self.client.get("/v1/buckets", headers=forged), 401, auth.MSG_INVALID)
        self.assertError(self.client.get("/v1/buckets"), 401, auth.MSG_NO_HEADER)

    def test_a_refresh_token_is_no_identity_for_the_gate(self):
        tokens = self.client.post(
            "/v1/auth/login", json={"email": self.register()["user"]["email"], "password": PASSWORD}
        ).json
        self.assertEqual(self.principal(bearer(tokens["refresh_token"])), ("address", "10.1.2.3"))

    def test_the_token_is_verified_once_per_request(self):
        _, headers = self.account()
        with mock.patch("app.auth.decode_token", wraps=auth.decode_token) as decode:
            self.assertEqual(self.client.get("/v1/auth/me", headers=headers).status_code, 200)
        self.assertEqual(decode.call_count, 1)


class ExternalPrincipalTests(APITestCase):
    def setUp(self):
        self.issuer = JwksServer()
        self.kid = self.issuer.add_key()
        self.app_overrides = self.issuer.settings()
        super().setUp()

    def tearDown(self):
        super().tearDown()
        self.issuer.stop()

    def test_an_external_token_is_keyed_on_issuer_and_subject(self):
        headers = bearer(self.issuer.token(self.kid, sub="auth0|alice"))
        with self.app.test_request_context(headers=headers):
            auth.verify_bearer()
            self.assertEqual(fairness.principal(), ("external", self.issuer.issuer, "auth0|alice"))
        self.assertEqual(self.client.get("/v1/auth/me", headers=headers).status_code, 200)
