"""Database faults against a live gunicorn: PostgreSQL cut under load, frozen (silent, sockets
open), and a statement over the timeout.

Every answer is counted. While the database is cut only 503 envelopes may come back (and 2xx
for requests that were already done with it); once it is back, only 2xx; never a 500, never HTML.
"""

import threading
import time
from collections import Counter

from sqlalchemy import create_engine, text

from tests.helpers import TcpProxy
from tests.liveserver import LiveServer, LiveServerTestCase

LOAD_THREADS = 8
# The bar: the app answers again within a second of the database coming back.
RECOVERY_SECONDS = 1.0
# The contract: a database that goes silent is a 503 within 10 seconds.
SILENT_503_SECONDS = 10.0
FREEZE_SECONDS = 12.0


class LoadLoop:
    """Threads sending a read and a write in turn until stopped; answers are kept by phase."""

    def __init__(self, server, headers):
        self.server, self.headers = server, headers
        self.phase = "before"
        self.answers = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(LOAD_THREADS)]

    def _run(self, n):
        sent = 0
        while not self._stop.is_set():
            phase, sent_at = self.phase, time.monotonic()
            if sent % 2:
                answer = self.server.request("POST", "/v1/buckets", {"name": f"t{n}-{sent}"}, headers=self.headers)
                answer.request = "POST"
            else:
                answer = self.server.request("GET", "/v1/buckets?per_page=5", headers=self.headers)
                answer.request = "GET"
            answer.sent_at = sent_at
            if phase is not None and phase == self.phase:  # answers that straddle a change are not judged
                self.answers.append((phase, answer))
            sent += 1

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def pause(self):
        """Judge nothing until the next phase: the database is being cut or restored."""
        self.phase = None

    def run_phase(self, phase, answers, sent_after=0.0):
        """Switch to `phase` and wait until it has collected `answers` answers sent after `sent_after`."""
        self.phase = phase
        while sum(1 for p, a in self.answers if p == phase and a.sent_at > sent_after) < answers:
            self._stop.wait(0.05)

    def statuses(self, phase):
        return Counter(answer.status for p, answer in self.answers if p == phase)


class DatabaseCutUnderLoadTests(LiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = LiveServer()
        cls.proxy = TcpProxy.to_database(cls.server.database_url)
        cls.proxy.start()
        cls.server.env_overrides["DATABASE_URL"] = cls.proxy.url(cls.server.database_url)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.start()
        cls.server.stop()  # its own server, which LiveServerTestCase does not know to stop
        cls.proxy.stop()

    def test_cut_under_load_gives_503s_only_and_recovers(self):
        _, headers = self.server.account()
        report, self.restores = [], {"before": 0.0}
        with LoadLoop(self.server, headers) as load:
            load.run_phase("before", 40)
            for cycle in range(3):
                load.pause()
                self.proxy.stop()
                load.run_phase(f"cut {cycle}", 40)
                load.pause()
                self.proxy.start()
                self.restores[f"after {cycle}"] = restored = time.monotonic()
                load.run_phase(f"after {cycle}", 40, sent_after=restored + RECOVERY_SECONDS)
        for phase in sorted({p for p, _ in load.answers}):
            statuses = load.statuses(phase)
            report.append(f"{phase}: {dict(statuses)}")
            unexpected = {
                (a.request, a.status, a.message)
                for p, a in load.answers
                if p == phase and a.status not in self.allowed(phase, a)
            }
            self.assertEqual(unexpected, set(), f"{report}\n{self.server.log()[-2000:]}")
        print("\ndatabase cut under load:", "; ".join(report))
        self.assertNo5xxExcept503([answer for _, answer in load.answers])

    def allowed(self, phase, answer):
        if phase.startswith("cut"):
            return {503}
        if answer.sent_at <= self.restores[phase] + RECOVERY_SECONDS:
            return {200, 201, 503}  # the pool's dead connections are found and replaced
        return {200, 201}

    def assertNo5xxExcept503(self, answers):
        self.assertNo5xx([a for a in answers if a.status != 503])
        for answer in answers:
            if answer.status == 503:
                self.assertEqual((answer.json["success"], answer.json["error"]), (False, 503))
                self.assertIn("retry-after", answer.headers)


class StatementTimeoutTests(LiveServerTestCase):
    server_env = {"DB_STATEMENT_TIMEOUT_MS": "300"}

    def test_a_statement_over_the_timeout_is_a_503_and_every_worker_stays_free(self):
        _, headers = self.server.account()
        self.assertEqual(self.server.request("POST", "/v1/buckets", {"name": "one"}, headers=headers).status, 201)
        locker = create_engine(self.server.database_url)
        try:
            with locker.begin() as connection:  # the bucket list now waits for this lock
                connection.execute(text("LOCK TABLE buckets IN ACCESS EXCLUSIVE MODE"))
                blocked = self.server.fire(20, "GET", "/v1/buckets", headers=headers)
                self.assertEqual({a.status for a in blocked}, {503})
                self.assertEqual({a.json["error"] for a in blocked}, {503})
                free = self.server.fire(20, "GET", "/v1/auth/me", headers=headers)
                self.assertEqual({a.status for a in free}, {200})
        finally:
            locker.dispose()
        self.assertStatuses(self.server.fire(20, "GET", "/v1/buckets", headers=headers), {200})


class DatabaseFreezeTests(LiveServerTestCase):
    """The database's host goes silent: its proxy forwards nothing and closes nothing (the kernel
    still acknowledges), so no TCP error ever comes. Production's defaults (one fair-admission
    slot per worker, the default timeouts): every request still answers within 10 seconds, a 503
    while the database is silent, and a second after it is back, every request succeeds."""

    env = {"FAIR_SLOTS": "1"}
    probers = 6

    @classmethod
    def setUpClass(cls):
        cls.server = LiveServer(cls.env)
        cls.proxy = TcpProxy.to_database(cls.server.database_url)
        cls.proxy.start()
        cls.server.env_overrides["DATABASE_URL"] = cls.proxy.url(cls.server.database_url)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.thaw()
        cls.server.stop()
        cls.proxy.stop()

    def probe(self, n, headers, stop, answers):
        """Health, a read and a write in turn; each answer with when it was sent and answered."""
        requests = [("GET", "/v1/health", None), ("GET", "/v1/buckets", None), ("POST", "/v1/buckets", {})]
        sent = 0
        while not stop.is_set():
            method, path, body = requests[(n + sent) % 3]
            if body is not None:
                body = {"name": f"p{n}-{sent}"}
            sent_at = time.monotonic()
            answer = self.server.request(method, path, body, headers=headers, timeout=60)
            answers.append((sent_at, time.monotonic(), f"{method} {path}", answer))
            sent += 1
            stop.wait(0.05)

    def test_a_silent_database_is_a_503_within_10_seconds_and_recovery_is_immediate(self):
        _, headers = self.server.account()
        answers, stop = [], threading.Event()
        threads = [threading.Thread(target=self.probe, args=(n, headers, stop, answers)) for n in range(self.probers)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1)
            frozen = time.monotonic()
            self.proxy.freeze()
            time.sleep(FREEZE_SECONDS)
            thawed = time.monotonic()
            self.proxy.thaw()
            time.sleep(RECOVERY_SECONDS + 2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        self.assertNo5xx([a for *_, a in answers if a.status != 503])
        for *_, answer in answers:
            if answer.status == 503:
                self.assertEqual((answer.json["error"], "retry-after" in answer.headers), (503, True))
        # How long each request sent before the thaw waited, counted from the freeze at the earliest.
        slowest = max(
            (done - max(sent, frozen), what) for sent, done, what, _ in answers if frozen < done and sent < thawed
        )
        first_503 = min([done - frozen for _, done, _, a in answers if a.status == 503] or [float("inf")])
        failed_after_thaw = [
            (round(sent - thawed, 2), what, a.status)
            for sent, _, what, a in answers
            if sent > thawed and a.status >= 300
        ]
        print(
            f"\ndatabase frozen {FREEZE_SECONDS:.0f} s ({self.env}): first 503 after {first_503:.1f} s, "
            f"slowest answer {slowest[0]:.1f} s ({slowest[1]}), {sum(a.status == 503 for *_, a in answers)} x 503; "
            f"after the thaw, the last failure was sent at +{max([f[0] for f in failed_after_thaw] or [0]):.2f} s"
        )
        self.assertLessEqual(first_503, SILENT_503_SECONDS)
        self.assertLessEqual(slowest[0], SILENT_503_SECONDS, slowest)
        self.assertTrue(any(a.status == 503 and what == "GET /v1/health" for _, _, what, a in answers))
        self.assertEqual([f for f in failed_after_thaw if f[0] > RECOVERY_SECONDS], [])


class DatabaseFreezePoolWaitTests(DatabaseFreezeTests):
    """Four requests at once per worker on one pooled connection: while the one that holds it
    waits for the silent database, the others wait for the pool, and answer 503 too."""

    env = {"FAIR_SLOTS": "4", "DB_POOL_SIZE": "1", "DB_MAX_OVERFLOW": "0"}
    probers = 8
