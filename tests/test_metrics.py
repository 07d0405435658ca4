"""Metrics (../shared/API.md, "Operating it"): GET /metrics in the Prometheus text format, summed over
every gunicorn worker and surviving a worker's restart; labels bounded whatever clients send;
METRICS_TOKEN. The figures that depend on processes are checked on a live gunicorn with 2 workers."""

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app import mail
from app.metrics import UNMATCHED
from tests.helpers import APITestCase, image_bytes, make_app
from tests.liveserver import LiveServer, LiveServerTestCase, stop_shared_server

DURATION = "http_request_duration_seconds"
METRICS_TOKEN = "live-metrics-token"  # production answers /metrics only with one
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def families(body):
    return {family.name: family for family in text_string_to_metric_families(body)}


def samples(body, name):
    """{labels as a sorted tuple: value} of the samples called `name`."""
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(body, name, **labels):
    return samples(body, name).get(tuple(sorted(labels.items())))


class MetricsEndpoint(APITestCase):
    def scrape(self, **headers):
        response = self.client.get("/metrics", headers=headers)
        self.assertEqual(response.status_code, 200, response.get_data(as_text=True)[:300])
        return response.get_data(as_text=True)

    def test_requests_are_counted_by_method_url_rule_and_status(self):
        _, headers = self.account()
        bucket = self.client.post("/v1/buckets", json={"name": "counted"}, headers=headers).json["bucket"]
        route = "/v1/buckets/<int:bucket_id>"
        before = value(self.scrape(), f"{DURATION}_count", method="GET", route=route, status="200") or 0
        self.client.get(f"/v1/buckets/{bucket['id']}", headers=headers)
        self.client.get(f"/v1/buckets/{bucket['id'] + 1}", headers=headers)
        response = self.client.get("/metrics")
        self.assertTrue(response.content_type.startswith("text/plain; version="), response.content_type)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        body = response.get_data(as_text=True)
        self.assertEqual(value(body, f"{DURATION}_count", method="GET", route=route, status="200"), before + 1)
        self.assertGreaterEqual(value(body, f"{DURATION}_count", method="GET", route=route, status="404"), 1)
        self.assertEqual(families(body)[DURATION].type, "histogram")
        bounds = {dict(labels)["le"] for labels in samples(body, f"{DURATION}_bucket")}
        self.assertLessEqual({"0.001", "0.005", "0.01", "+Inf"}, bounds)  # a p50 of a few ms is visible
        for name in ("http_requests_in_progress", "db_pool_connections_in_use", "db_pool_waiting", "fair_gate_waiting"):
            self.assertIn(name, families(body))
        self.assertIn("fair_gate_refused", families(body))  # fair_gate_refused_total

    def test_unknown_paths_and_methods_share_one_label_value(self):
        self.client.get(f"/no/such/{uuid.uuid4().hex}")
        self.client.open("/v1/health", method="BREW")
        body = self.scrape()
        routes = {dict(labels)["route"] for labels in samples(body, f"{DURATION}_count")}
        self.assertIn(UNMATCHED, routes)
        self.assertFalse([route for route in routes if "/no/such" in route])
        methods = {dict(labels)["method"] for labels in samples(body, f"{DURATION}_count")}
        self.assertIn("OTHER", methods)
        self.assertNotIn("BREW", methods)

    def test_mails_waiting_in_the_outbox(self):
        self.register()  # a verification mail
        self.register()
        with self.app.app_context():
            before = mail.count_waiting()
            scraped = value(self.scrape(), "mail_outbox_waiting")
            after = mail.count_waiting()
        self.assertTrue(after <= scraped <= before, (before, scraped, after))  # the sender may take some meanwhile
        self.assertIn("mail_outbox_waiting", families(self.scrape()))

    def test_image_bytes_stored_count_each_distinct_file_once(self):
        _, admin = self.account("admin")
        before = value(self.scrape(), "images_stored_bytes")
        picture = image_bytes(size=(40, 30))
        for _ in range(2):  # the same bytes twice: one stored file
            data = {"images": [(io.BytesIO(picture), "a.png")]}
            self.assertEqual(self.client.post("/v1/images", data=data, headers=admin).status_code, 201)
        size = self.client.get("/v1/images", headers=admin).json["images"][0]["size_bytes"]
        self.assertEqual(value(self.scrape(), "images_stored_bytes"), before + size)


class MetricsToken(APITestCase):
    def test_without_a_token_metrics_are_open_in_development_and_testing(self):
        self.assertEqual(self.client.get("/metrics").status_code, 200)

    def test_a_set_token_is_required_as_a_bearer_token(self):
        app = make_app(METRICS_TOKEN="s3cret-metrics-token")
        client = app.test_client()
        self.assertError(client.get("/metrics"), 401, "Provide an authorization header")
        self.assertEqual(client.get("/metrics").headers["WWW-Authenticate"], "Bearer")
        self.assertError(client.get("/metrics", headers={"Authorization": "s3cret-metrics-token"}), 401)
        wrong = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-tokeN"})
        self.assertError(wrong, 401, "Invalid token. Please log in again.")
        right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"})
        self.assertEqual(right.status_code, 200)
        self.assertIn(DURATION, right.get_data(as_text=True))

    def test_production_without_a_token_has_no_metrics(self):
        secret = "x" * 48
        self.assertError(make_app(APP_ENV="production", SECRET_KEY=secret).test_client().get("/metrics"), 404)
        app = make_app(APP_ENV="production", SECRET_KEY=secret, METRICS_TOKEN="t0ken")
        answer = app.test_client().get("/metrics", headers={"Authorization": "Bearer t0ken"})
        self.assertEqual(answer.status_code, 200)


# -- live: 2 workers ----------------------------------------------------------------------------


def worker_pids(server):
    with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as children:
        return [int(pid) for pid in children.read().split()]


@contextmanager
def row_locked(server, bucket_id):
    """The bucket's row locked by another transaction: a PATCH of it waits (holding its connection)."""
    with server.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("SELECT id FROM buckets WHERE id = :id FOR UPDATE"), {"id": bucket_id})
        try:
            yield
        finally:
            transaction.rollback()


def in_background(server, requests):
    """Send the requests at once from a thread; returns (thread, answers filled in when it ends)."""
    answers = []
    thread = threading.Thread(target=lambda: answers.extend(server.at_once(requests)))
    thread.start()
    return thread, answers


class LiveMetricsCase(LiveServerTestCase):
    def scrape(self):
        answer = self.server.request("GET", "/metrics", headers=SCRAPE)
        self.assertEqual(answer.status, 200, answer.raw[:300])
        return answer.raw.decode()

    def wait_for(self, condition, seconds=15):
        """The latest scrape once `condition(scrape)` holds (fails after `seconds`)."""
        deadline = time.monotonic() + seconds
        while True:
            body = self.scrape()
            if condition(body):
                return body
            if time.monotonic() > deadline:
                self.fail(f"condition never held; last scrape:\n{body[-3000:]}")
            time.sleep(0.1)

    def blocked_patches(self, headers, count):
        """A bucket, and `count` PATCH requests of it (each a new name)."""
        name = uuid.uuid4().hex[:8]
        bucket = self.server.request("POST", "/v1/buckets", json={"name": name}, headers=headers).json["bucket"]
        path = f"/v1/buckets/{bucket['id']}"
        return bucket["id"], [
            ("PATCH", path, {"json": {"name": f"{name}-{n}"}, "headers": headers}) for n in range(count)
        ]


class MetricsAcrossWorkers(LiveMetricsCase):
    """The figures are the sum over both workers, whichever serves the scrape, and survive a
    worker's death (its counts stay; its requests in progress leave with it)."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp(prefix="api-metrics-test-")
        cls.server_env = {
            "PROMETHEUS_MULTIPROC_DIR": cls.directory,
            "DB_STATEMENT_TIMEOUT_MS": "30000",
            "METRICS_TOKEN": METRICS_TOKEN,
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.directory, ignore_errors=True)

    def writers(self):
        """The worker pids that have written a histogram file."""
        return {name.rsplit("_", 1)[1] for name in os.listdir(self.directory) if name.startswith("histogram_")}

    def in_progress_of(self, pid):
        """The requests in progress in one worker, read from its own file alone."""
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(os.path.join(self.directory, f"gauge_livesum_{pid}.db"), alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, alone)
            return registry.get_sample_value("http_requests_in_progress") or 0

    def test_a_counts_are_summed_over_workers_and_survive_a_killed_worker(self):
        sent = 0
        for _ in range(10):  # the kernel may hand one batch's connections all to one worker: until both served
            answers = self.server.fire(100, "GET", "/v1")
            self.assertEqual({a.status for a in answers}, {200})
            sent += len(answers)
            if len(self.writers()) == 2:
                break
        self.assertEqual(len(self.writers()), 2, "both workers counted requests")
        index = {"method": "GET", "route": "/v1", "status": "200"}
        for _ in range(8):  # the scrapes land on either worker: each sees both workers' counts
            self.assertEqual(value(self.scrape(), f"{DURATION}_count", **index), sent)

        _, headers = self.server.account()
        bucket_id, patches = self.blocked_patches(headers, 4)
        with row_locked(self.server, bucket_id):
            thread, blocked = in_background(self.server, patches)
            self.wait_for(lambda body: value(body, "http_requests_in_progress") == 5)  # 4 + the scrape
            victim = next(pid for pid in worker_pids(self.server) if self.in_progress_of(pid))
            os.kill(victim, signal.SIGKILL)
            self.wait_for(lambda _: len(worker_pids(self.server)) == 2 and victim not in worker_pids(self.server))
        thread.join(30)
        self.assertTrue(blocked)  # those on the killed worker got no answer (status 0), the others 200
        self.assertLessEqual({a.status for a in blocked}, {0, 200})
        body = self.wait_for(lambda body: value(body, "http_requests_in_progress") == 1)  # the scrape alone
        self.assertEqual(value(body, f"{DURATION}_count", **index), sent)

    def test_b_a_thousand_ids_make_no_new_series(self):
        _, headers = self.server.account()
        self.server.request("GET", "/v1/buckets/1", headers=headers)
        self.server.request("GET", "/nowhere/1")
        before = self.scrape()
        ids = range(10_000, 11_000)
        for start in range(0, 1000, 100):
            batch = [("GET", f"/v1/buckets/{n}", {"headers": headers}) for n in ids[start : start + 100]]
            batch += [("GET", f"/nowhere/{n}", {}) for n in ids[start : start + 100]]
            self.assertEqual({a.status for a in self.server.at_once(batch)}, {404})
        after = self.scrape()
        count = f"{DURATION}_count"
        self.assertEqual(set(samples(after, count)) - set(samples(before, count)), set())
        series = sum(1 for family in text_string_to_metric_families(after) for _ in family.samples)
        print(f"\n  series in /metrics after 2,000 requests for 1,000 distinct ids: {series}", end="")
        route = {"method": "GET", "route": "/v1/buckets/<int:bucket_id>", "status": "404"}
        self.assertGreaterEqual(value(after, count, **route), 1001)
        self.assertGreaterEqual(value(after, count, method="GET", route=UNMATCHED, status="404"), 1001)

    def test_c_a_directory_is_emptied_at_start(self):
        """Figures a previous run left in PROMETHEUS_MULTIPROC_DIR are not counted again."""
        directory = tempfile.mkdtemp(prefix="api-metrics-stale-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        stale = "from prometheus_client import Counter; Counter('fair_gate_refused', 'stale').inc(1000)"
        subprocess.run(
            [sys.executable, "-c", stale], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}, check=True
        )
        self.assertTrue(os.listdir(directory))
        server = LiveServer({"PROMETHEUS_MULTIPROC_DIR": directory, "METRICS_TOKEN": METRICS_TOKEN}).start()
        try:
            body = server.request("GET", "/metrics", headers=SCRAPE).raw.decode()
            self.assertEqual(value(body, "fair_gate_refused_total"), 0)
        finally:
            server.stop()


class PoolMetrics(LiveMetricsCase):
    """One connection per worker and no overflow: requests beyond it wait for the pool."""

    server_env = {
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        # The waiting requests outwait the test's lock; a scrape that lost the race for the one idle
        # connection gives up on it well within the test client's 30 s.
        "DB_POOL_TIMEOUT_SECONDS": "15",
        "FAIR_SLOTS": "6",
        "DB_STATEMENT_TIMEOUT_MS": "30000",
        "METRICS_TOKEN": METRICS_TOKEN,
    }

    def test_connections_in_use_and_requests_waiting_for_one(self):
        _, headers = self.server.account()
        bucket_id, patches = self.blocked_patches(headers, 6)
        with row_locked(self.server, bucket_id):
            thread, answers = in_background(self.server, patches)

            def all_six_held_by_both_workers(body):
                # A worker still loading the app when the server first answered has no pool yet.
                held = (value(body, "db_pool_connections_in_use") or 0) + (value(body, "db_pool_waiting") or 0)
                return held == 6 and value(body, "db_pool_connections_max") == 2

            body = self.wait_for(all_six_held_by_both_workers)  # the scrape answers without a connection to spare
            self.assertIn(value(body, "db_pool_connections_in_use"), (1, 2))  # one per worker that got some
            self.assertGreaterEqual(value(body, "db_pool_waiting"), 4)
            self.assertIsNone(value(body, "images_stored_bytes"))  # no connection to spare for it
        thread.join(60)
        self.assertEqual([a.status for a in answers], [200] * 6)
        body = self.wait_for(lambda body: value(body, "db_pool_waiting") == 0)
        self.assertEqual(value(body, "db_pool_connections_in_use"), 0)
        self.assertIsNotNone(value(body, "images_stored_bytes"))


class GateMetrics(LiveMetricsCase):
    """One request at a time per worker, and a short wait: the others wait at the gate, then 503."""

    server_env = {
        "FAIR_SLOTS": "1",
        "FAIR_WAIT_SECONDS": "2",
        "DB_STATEMENT_TIMEOUT_MS": "30000",
        "METRICS_TOKEN": METRICS_TOKEN,
    }

    def test_requests_waiting_at_the_gate_and_those_it_refused(self):
        _, headers = self.server.account()
        bucket_id, patches = self.blocked_patches(headers, 6)
        before = value(self.scrape(), "fair_gate_refused_total")
        with row_locked(self.server, bucket_id):
            thread, answers = in_background(self.server, patches)
            self.wait_for(lambda body: value(body, "fair_gate_waiting") >= 4)  # 6, less one running per worker
            # The waiting ones give up after FAIR_WAIT_SECONDS (503); those running stay blocked.
            self.wait_for(lambda body: value(body, "fair_gate_waiting") == 0)
        thread.join(30)
        refused = [a for a in answers if a.status == 503]
        self.assertGreaterEqual(len(refused), 4)
        self.assertEqual(len(refused) + [a.status for a in answers].count(200), 6)
        self.assertEqual(value(self.scrape(), "fair_gate_refused_total"), before + len(refused))


def tearDownModule():
    stop_shared_server()
