"""Past one database (issue 29): two instances behind HAProxy read from a streaming replica that
applies the primary's WAL 2 s late, and every client still reads its own writes.

Run by `.ci/scale`. On loopback, on free ports: a PostgreSQL primary and a replica of it with
recovery_min_apply_delay = 2s (tests/pgreplica.py: initdb, pg_basebackup -R, as the postgres user),
the machine's Redis (a key prefix of its own), instances A and B (gunicorn, production mode,
DATABASE_REPLICA_URLS) and HAProxy. Checks:
  1. 200 create-then-read iterations by 8 threads through the balancer: every read sees its own
     write (0 stale reads), while readers of data nobody changes (the actors catalogue) are served
     mostly by the replica: counted by each server's pg_stat_statements;
  2. logout on A, then the old token on B and through the balancer: 401 at once;
  3. the replica stopped under load, then started: no 5xx, the reads move to the primary and back;
  4. .ci/live's newman and schemathesis against a third instance on the same servers.
Everything it started is stopped and removed on exit. Prints "replica-checks: N passed, M failed"
(and .ci/live prints its own "live-replicas: ..." line).
"""

import collections
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.live.scale import ADMIN, REDIS_URL, Checks, Stack, call, free_port  # noqa: E402
from tests.pgreplica import ReplicatedPostgres  # noqa: E402

APPLY_DELAY_MS = 2000
DATABASE = "api"
WRITERS, ITERATIONS, READERS = 8, 25, 4  # 8 x 25 = 200 create-then-read iterations
ACTORS = 10
STOP_AT, START_AT, BACK_WITHIN = 3, 7, 20  # seconds into the load
WARM_UP = 2  # seconds of reads before the writes start
# Reads of the catalogue, in each server's pg_stat_statements (the actors list's statements).
CATALOGUE_READS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
    "WHERE query LIKE '%FROM actors%' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class ReplicaStack(Stack):
    """scale.py's stack (instances, HAProxy, clean-up) on a primary and a replica of its own."""

    def start_services(self):
        self.cluster = ReplicatedPostgres(replicas=1, apply_delay_ms=APPLY_DELAY_MS).start()
        self.cluster.create_database(DATABASE)
        self.env = dict(
            os.environ,
            APP_ENV="production",
            SECRET_KEY=uuid.uuid4().hex * 2,
            DATABASE_URL=self.cluster.url("primary", DATABASE),
            DATABASE_REPLICA_URLS=self.cluster.url("replica1", DATABASE),
            # It applies WAL 2 s late: its lag is 2 s and a little, under the 5 s allowed here.
            DATABASE_REPLICA_MAX_LAG_MS="5000",
            DATABASE_REPLICA_RETRY_SECONDS="2",
            REDIS_URL=REDIS_URL,
            REDIS_KEY_PREFIX=self.key_prefix,
            RATELIMIT_ENABLED="false",  # not the subject here; registrations come fast
            TRUSTED_PROXIES="1",
            BCRYPT_ROUNDS="4",
            LOG_LEVEL=os.environ.get("REPLICAS_LOG_LEVEL", "WARNING"),
        )
        self.manage("db", "upgrade")
        self.manage("create-user", ADMIN[0], "--password", ADMIN[1], "--role", "admin")

    def reads(self, role):
        """The catalogue reads `role` has served so far."""
        return int(self.cluster.query(role, CATALOGUE_READS, database=DATABASE))

    def stop(self):
        super().stop()
        if getattr(self, "cluster", None):
            self.cluster.stop()


class Client:
    """One keep-alive HTTP connection to a base URL; never raises for a status."""

    def __init__(self, base):
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port, self.connection = host, int(port), None

    def send(self, method, path, token, body=None):
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.connection = self.connection or http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            answer = self.connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as error:
            self.connection = None
            return f"no answer ({type(error).__name__})", None
        return answer.status, json.loads(data) if data.startswith(b"{") else None


class Traffic:
    """Writers that create a bucket and read it back at once (counting stale reads), and readers of
    the catalogue (counting wrong answers), through the balancer, until stopped or done."""

    def __init__(self, base, writers, readers, iterations=None):
        self.base, self.iterations = base, iterations
        self.statuses = collections.Counter()
        self.stale, self.done_iterations = [], 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.writers = [threading.Thread(target=self.write, args=(token,), daemon=True) for token in writers]
        self.readers = [threading.Thread(target=self.read, args=(token,), daemon=True) for token in readers]

    def start(self, who=None):
        for thread in who or self.readers + self.writers:
            thread.start()
        return self

    def stop(self):
        self.done.set()
        for thread in self.readers + self.writers:
            if thread.is_alive():
                thread.join()

    def wait_for_writers(self):
        for thread in self.writers:
            thread.join()
        self.stop()

    def count(self, status):
        with self.lock:
            self.statuses[status] += 1

    def write(self, token):
        client, made = Client(self.base), 0
        while not self.done.is_set() and (self.iterations is None or made < self.iterations):
            name = f"bucket {uuid.uuid4().hex[:12]}"
            status, body = client.send("POST", "/v1/buckets", token, {"name": name})
            self.count(status)
            if status != 201:
                continue
            made += 1
            bucket = body["bucket"]["id"]
            status, body = client.send("GET", f"/v1/buckets/{bucket}", token)
            self.count(status)
            listed_status, listing = client.send("GET", "/v1/buckets?per_page=1", token)
            self.count(listed_status)
            with self.lock:
                self.done_iterations += 1
                if status != 200 or body["bucket"]["name"] != name:
                    self.stale.append(f"GET /v1/buckets/{bucket}: {status}")
                elif listed_status != 200 or listing["pagination"]["total"] != made:
                    self.stale.append(f"the list counted {listing and listing['pagination']['total']}, not {made}")

    def read(self, token):
        client = Client(self.base)
        while not self.done.is_set():
            status, body = client.send("GET", "/v1/actors?per_page=20", token)
            self.count(status)
            if status == 200 and body["pagination"]["total"] != ACTORS:
                with self.lock:
                    self.stale.append(f"the catalogue counted {body['pagination']['total']}, not {ACTORS}")

    def failures(self):
        """Answers that are 5xx or none at all."""
        return sum(n for status, n in self.statuses.items() if not isinstance(status, int) or status >= 500)


class ReplicaChecks(Checks):
    def setup(self):
        """Accounts for the traffic, a catalogue of ACTORS actors; then everything replayed, so that
        only what the traffic writes is still unreplayed while it runs."""
        admin = self.login(self.lb).json["auth_token"]
        for n in range(ACTORS):
            actor = {"name": f"Actor {n}", "age": 30 + n, "gender": "female"}
            self.expect(call(self.lb, "POST", "/v1/actors", actor, token=admin), 201, "actor")
        # 8 writers for the iterations, 2 more (with no buckets yet) for the load around the replica's stop
        self.writers = [self.register(self.lb)[1]["auth_token"] for _ in range(WRITERS + 2)]
        self.readers = []
        for _ in range(READERS + 2):
            _, tokens = self.register(self.lb)
            user = self.expect(call(self.lb, "GET", "/v1/auth/me", token=tokens["auth_token"]), 200, "me").json
            role = {"role": "casting_assistant"}
            self.expect(call(self.lb, "PATCH", f"/v1/users/{user['user']['id']}", role, token=admin), 200, "role")
            self.readers.append(tokens["auth_token"])
        self.stack.cluster.wait_for_replay()
        # A Redis that has never kept positions looks like one that lost them: every read goes to the
        # primary for a position's lifetime after the first (docs/replicas.md, Limits). Past it here.
        settling = redis.Redis.from_url(REDIS_URL)
        while settling.exists(f"{self.stack.key_prefix}:wal:settling"):
            time.sleep(0.1)

    def create_then_read(self):
        traffic = Traffic(self.lb, self.writers[:WRITERS], self.readers[:READERS], iterations=ITERATIONS)
        # The readers run alone for a moment, as on any running service: each worker then has seen
        # the idle primary's position lately, which the replica has replayed (after an idle spell
        # a worker first needs the lag's length of new positions to prove a replica close enough).
        traffic.start(traffic.readers)
        time.sleep(WARM_UP)
        before = {role: self.stack.reads(role) for role in ("primary", "replica1")}
        traffic.start(traffic.writers)
        traffic.wait_for_writers()
        served = {role: self.stack.reads(role) - before[role] for role in before}
        share = served["replica1"] / max(1, sum(served.values()))
        print(
            f"    {traffic.done_iterations} create-then-read iterations, {len(traffic.stale)} stale reads; "
            f"catalogue reads meanwhile: {served['replica1']} on the replica, {served['primary']} on the primary "
            f"(replica share {share:.0%}); answers: {dict(traffic.statuses)}"
        )
        assert traffic.done_iterations == WRITERS * ITERATIONS, f"{traffic.done_iterations} iterations done"
        assert not traffic.stale, f"stale reads: {traffic.stale[:5]}"
        assert traffic.failures() == 0, dict(traffic.statuses)
        assert share > 0.5, f"the replica served {share:.0%} of the catalogue reads"
        return f"0 stale reads in {traffic.done_iterations}; the replica served {share:.0%} of the catalogue reads"

    def logout_is_401_at_once(self):
        sessions = [self.register(self.lb)[1] for _ in range(5)]
        self.stack.cluster.wait_for_replay()  # settled: without the logout's position, B would read the replica
        for tokens in sessions:
            token, body = tokens["auth_token"], {"refresh_token": tokens["refresh_token"]}
            self.expect(call(self.a, "POST", "/v1/auth/logout", body, token=token), 200, "logout on A")
            for base in (self.b, self.lb):
                answer = self.expect(call(base, "GET", "/v1/auth/me", token=token), 401, "the old token")
                assert "revoked" in answer.json["message"], answer.json
            self.expect(call(self.lb, "POST", "/v1/auth/refresh", body), 401, "the old refresh token")
        return "5 logouts on A, each token 401 on B and through the balancer at once"

    def replica_stopped_and_started_under_load(self):
        traffic = Traffic(self.lb, self.writers[WRITERS:], self.readers).start()
        started = time.monotonic()
        try:
            time.sleep(STOP_AT)
            before_stop = {role: self.stack.reads(role) for role in ("primary", "replica1")}
            self.stack.cluster.stop_server("replica1")
            time.sleep(START_AT - STOP_AT)
            while_down = self.stack.reads("primary") - before_stop["primary"]
            self.stack.cluster.start_server("replica1")
            restarted, after_start = time.monotonic(), self.stack.reads("replica1")
            while self.stack.reads("replica1") - after_start < 20 and time.monotonic() - started < BACK_WITHIN:
                time.sleep(0.2)
            back = self.stack.reads("replica1") - after_start
            back_after = time.monotonic() - restarted
        finally:
            traffic.stop()
        print(
            f"    {sum(traffic.statuses.values())} answers ({dict(traffic.statuses)}); 5xx or none: "
            f"{traffic.failures()}; stale: {len(traffic.stale)}\n"
            f"    catalogue reads on the primary while the replica was down: {while_down}; "
            f"on the replica again {back_after:.1f} s after its start: {back}"
        )
        assert traffic.failures() == 0, f"{traffic.failures()} answers were 5xx or none"
        assert not traffic.stale, f"stale reads: {traffic.stale[:5]}"
        assert while_down > 0, "the primary served no read while the replica was down"
        assert back >= 20, "the reads did not move back to the replica"
        return f"0 errors; reads on the primary while down ({while_down}), back on the replica in {back_after:.1f} s"

    def live_checks(self):
        """.ci/live's newman and schemathesis on a database of their own, on the same primary and replica."""
        cluster = self.stack.cluster
        env = dict(
            os.environ,
            LIVE_CHECKS="newman schemathesis",
            LIVE_EXAMPLES="8",
            LIVE_LABEL="live-replicas",
            LIVE_ADMIN_URL=cluster.url("primary"),
            LIVE_REPLICA_PORTS=str(cluster.ports["replica1"]),
            **{key: self.stack.env[key] for key in ("REDIS_URL", "DATABASE_REPLICA_MAX_LAG_MS")},
            DATABASE_REPLICA_RETRY_SECONDS="2",
            REDIS_KEY_PREFIX=f"{self.stack.key_prefix}-live",
        )
        done = subprocess.run(["bash", ".ci/live"], cwd=ROOT, env=env, text=True, capture_output=True)
        print(done.stdout + done.stderr, end="")
        assert done.returncode == 0, "newman or schemathesis failed with replicas (above)"
        return "skipped"  # counted by its own "live-replicas:" line


def main():
    stack = ReplicaStack()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    checks = None
    try:
        stack.start_services()
        a_port, b_port, lb_port = free_port(), free_port(), free_port()
        a, b = stack.start_instance("a", a_port), stack.start_instance("b", b_port)
        lb = stack.start_balancer(lb_port, [("a", a_port), ("b", b_port)])
        checks = ReplicaChecks(stack, a, b, lb)
        checks.setup()
        checks.run(
            "200 create-then-read iterations, 8 threads, A and B: own writes read at once", checks.create_then_read
        )
        checks.run("logout on A, the old token at once on B: 401", checks.logout_is_401_at_once)
        checks.run("the replica stopped and started under load", checks.replica_stopped_and_started_under_load)
        for name in ("a", "b"):
            with open(os.path.join(stack.work, f"{name}.log"), errors="replace") as log:
                logged = log.read()
            routing = collections.Counter(
                re.sub(r"[\d.]+", "N", line.split("replicas: ", 1)[1].split(";")[0])
                for line in logged.splitlines()
                if "replicas: " in line
            )
            if routing:
                print(f"    instance {name} logged: {dict(routing)}")
            if "Traceback" in logged:
                checks.failed += 1
                print(f"FAILED: instance {name} logged a traceback")
        checks.run("newman and schemathesis with a replica (.ci/live)", checks.live_checks)
    except Exception as error:  # noqa: BLE001 - the stack did not come up: one failure, reported
        print(f"FAILED: the stack: {type(error).__name__}: {error}")
        traceback.print_exc()
        checks = checks or Checks(stack, None, None, None)
        checks.failed += 1
    finally:
        stack.stop()
    print(f"replica-checks: {checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
