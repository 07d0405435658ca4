"""Fair admission: each worker process runs at most FAIR_SLOTS requests at once, and a freed
slot goes to the waiting principal (user, or client address) with the fewest requests running.

Why: gunicorn's gthread worker hands readable connections to its thread pool first come, first
served, and every running thread shares the worker's GIL. One user with 64 concurrent requests
therefore put another user's request behind dozens of theirs, then made it share the GIL with
the rest (bench/bench.py `noisy_neighbour`). Behind this gate the pool has many threads, most of
them waiting here at no CPU cost, and a light user overtakes a heavy user's backlog.

A request waits rather than being refused (one user's concurrent requests are all served), up
to FAIR_WAIT_SECONDS; then it is 503 with Retry-After. A slot is taken in a before_request hook,
once the request's body has been received whole (a client that sends it slowly waits on its own
connection, never in a slot), before any database work, and given back after Flask's teardown closed the
request's session (`releasing`, a WSGI middleware), whatever the outcome: an error, a 304, an abort.
FAIR_SLOTS = 0 turns the gate off.
"""

import itertools
import threading
from collections import deque
from functools import partial

from flask import current_app, request
from flask_limiter.util import get_remote_address

from app import auth, http, metrics
from app.errors import APIError

BUSY = "Service unavailable: the server is busy, please retry"
RELEASE = "app.fairness.release"  # the WSGI environ key of a taken slot's release


class _Waiter:
    __slots__ = ("arrival", "granted", "event")

    def __init__(self, arrival):
        self.arrival = arrival
        self.granted = False
        self.event = threading.Event()


class FairGate:
    """`slots` running places shared by principals (any hashable), under one lock.

    Free slots and nobody waiting: `enter` takes one at once. Otherwise the request waits, and
    each freed slot is handed over (never raced for) to the principal with the fewest running
    requests; among those, to the one whose oldest waiting request came first. So nobody
    waits while a slot is free: one freed slot, one hand-over.
    """

    def __init__(self, slots):
        self._lock = threading.Lock()
        self._free = slots
        self._running = {}  # principal -> requests holding a slot
        self._waiting = {}  # principal -> deque of _Waiter, oldest first
        self._arrivals = itertools.count()

    def enter(self, principal, timeout):
        """Take a slot for `principal`: True, or False if none came within `timeout` seconds."""
        with self._lock:
            if self._free and not self._waiting:
                self._take(principal)
                return True
            waiter = _Waiter(next(self._arrivals))
            self._waiting.setdefault(principal, deque()).append(waiter)
        with metrics.GATE_WAITING.track_inprogress():
            if waiter.event.wait(timeout):
                return True
            with self._lock:
                if waiter.granted:  # handed over between the timeout and this lock
                    return True
                self._forget(principal, waiter)
            return False

    def leave(self, principal):
        """Give back a slot `principal` took; the next waiter (if any) gets it.

        The leaving request still counts as running while the next one is chosen: else, with
        one slot, a heavy user would be back at zero and tie with the light user it held up.
        """
        with self._lock:
            self._free += 1
            if self._waiting:
                self._hand_over()
            self._running[principal] -= 1
            if not self._running[principal]:
                del self._running[principal]

    def state(self):
        """(running, waiting) request counts, for tests and logs."""
        with self._lock:
            return sum(self._running.values()), sum(map(len, self._waiting.values()))

    def _take(self, principal):
        self._free -= 1
        self._running[principal] = self._running.get(principal, 0) + 1

    def _forget(self, principal, waiter):
        queue = self._waiting[principal]
        queue.remove(waiter)
        if not queue:
            del self._waiting[principal]

    def _hand_over(self):
        principal = min(self._waiting, key=self._priority)
        waiter = self._waiting[principal][0]
        self._forget(principal, waiter)
        self._take(principal)
        waiter.granted = True
        waiter.event.set()

    def _priority(self, principal):
        return self._running.get(principal, 0), self._waiting[principal][0].arrival


def init_app(app, *, unqueued=()):
    """The gate, for every endpoint but the `unqueued` ones, which must never wait; False if
    FAIR_SLOTS turns it off. Its hooks (`admit`, `releasing`) are registered by app.pipeline."""
    if app.config["FAIR_SLOTS"] <= 0:
        return False
    app.extensions["fair_gate"] = FairGate(app.config["FAIR_SLOTS"])
    app.extensions["fair_unqueued"] = frozenset(unqueued)
    return True


def principal():
    """Whom the request counts against: the verified token's identity, else the client address."""
    return auth.bearer_identity() or ("address", get_remote_address())


def admit():
    """before_request: receive the body, wait for a slot (or answer 503), and leave the release
    in the environ.

    An unqueued endpoint never waits, and so is never 503: the OpenAPI document (served from
    memory), and a metrics scrape, which must see a saturated server."""
    extensions = current_app.extensions
    if request.endpoint in extensions["fair_unqueued"]:
        return
    http.receive_body()
    gate = extensions["fair_gate"]
    who = principal()
    if not gate.enter(who, current_app.config["FAIR_WAIT_SECONDS"]):
        metrics.GATE_REFUSED.inc()
        raise APIError(503, BUSY)  # the error envelope adds Retry-After
    request.environ[RELEASE] = partial(gate.leave, who)


def releasing(wsgi_app):
    """WSGI middleware around the Flask app: the request's slot is given back once Flask is done
    with it (its teardown closed the session, so the next request finds the connection back in
    the pool), whatever the outcome: an error, a 304, an abort."""

    def serve(environ, start_response):
        try:
            return wsgi_app(environ, start_response)
        finally:
            release = environ.pop(RELEASE, None)
            if release is not None:
                release()

    return serve
