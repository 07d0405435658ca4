"""Prometheus metrics at GET /metrics, summed over every gunicorn worker (docs: "Operating").

Under gunicorn, gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a directory before any worker
starts; each worker then writes its figures to memory-mapped files there, and a scrape, whichever
worker serves it, adds them all up (prometheus_client's multiprocess mode). A worker that died
keeps its counts in the sum; the gauges count live workers only (gunicorn.conf.py's child_exit).
Without that directory (the tests' client, `flask run`) the figures are the process's own.

Label values never carry ids, e-mails or raw paths: `route` is the URL rule (or UNMATCHED),
`method` one of METHODS (or OTHER), `status` the status code; so the number of series is bounded
by the app's routes, whatever clients send.

What only the database knows (mails waiting in the outbox, image bytes) is read when scraped, by
the worker serving the scrape.
"""

import hmac
import os
import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from app import database, mail
from app.auth import MSG_INVALID, bearer_token
from app.errors import not_found, unauthorized
from app.extensions import db

METRICS_ENDPOINT = "metrics.scrape"
UNMATCHED = "<unmatched>"  # the route label of a request no URL rule matched (404, 405)
OTHER = "OTHER"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# An API whose p50 is a few milliseconds: fine steps from 1 to 25 ms, then coarser up to the 10 s
# in which a silent database turns into a 503.
DURATION_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time the app took to answer, from its first hook to its last (a streamed body's sending excluded).",
    ["method", "route", "status"],
    buckets=DURATION_BUCKETS,
)
IN_PROGRESS = Gauge("http_requests_in_progress", "Requests the workers are running now.", multiprocess_mode="livesum")
POOL_IN_USE = Gauge(
    "db_pool_connections_in_use", "Database connections checked out of the pools now.", multiprocess_mode="livesum"
)
POOL_WAITING = Gauge("db_pool_waiting", "Requests waiting for a database connection now.", multiprocess_mode="livesum")
POOL_CAPACITY = Gauge(
    "db_pool_connections_max",
    "Connections the pools may open: DB_POOL_SIZE + DB_MAX_OVERFLOW per worker.",
    multiprocess_mode="livesum",
)
GATE_WAITING = Gauge(
    "fair_gate_waiting", "Requests waiting at the fair-admission gate for a slot now.", multiprocess_mode="livesum"
)
GATE_REFUSED = Counter("fair_gate_refused", "Requests the fair-admission gate answered 503 (no slot in time).")

blp = Blueprint("metrics", __name__)


# -- requests -----------------------------------------------------------------------------------


def start_request():
    """before_request, the first: the clock starts, the request counts as in progress."""
    g.metrics_started = time.perf_counter()
    IN_PROGRESS.inc()


# REQUEST_DURATION's children by (method, route, status): `labels()` builds a key and takes a lock
# each time; these are few (bounded labels) and looked up on every request.
_durations = {}


def observe_request(response):
    """after_request, the last: the request's duration, by method, route and status."""
    started = g.get("metrics_started")
    if started is not None:
        method = request.method if request.method in METHODS else OTHER
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        key = (method, route, response.status_code)
        child = _durations.get(key)
        if child is None:
            child = _durations[key] = REQUEST_DURATION.labels(*key)
        child.observe(time.perf_counter() - started)
    return response


def end_request(_exc=None):
    """teardown_request: no longer in progress, whatever happened (it always runs, once)."""
    if g.get("metrics_started") is not None:
        IN_PROGRESS.dec()


# -- the database pool --------------------------------------------------------------------------


class MeteredQueuePool(QueuePool):
    """SQLAlchemy's pool, counting the requests that find no idle connection in it: they wait
    for one (or for a new one to open, while the pool may still grow)."""

    def connect(self):
        if self.checkedin():  # an idle connection: handed over at once, nothing to count
            return super().connect()
        with POOL_WAITING.track_inprogress():
            return super().connect()


def meter_pool_options(config):
    """Before the engine exists: a server database's pool is the metered one."""
    if not config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        config["SQLALCHEMY_ENGINE_OPTIONS"].setdefault("poolclass", MeteredQueuePool)


def meter_pool(app):
    """Connections in use (pool events), and what this worker's pool may open."""
    with app.app_context():
        engine = db.engine
    event.listen(engine, "checkout", lambda *_args: POOL_IN_USE.inc())
    event.listen(engine, "checkin", lambda *_args: POOL_IN_USE.dec())
    if isinstance(engine.pool, MeteredQueuePool):
        POOL_CAPACITY.set(app.config["DB_POOL_SIZE"] + app.config["DB_MAX_OVERFLOW"])


# -- GET /metrics -------------------------------------------------------------------------------

IMAGE_BYTES = text(
    "SELECT coalesce(sum(size_bytes), 0) FROM (SELECT max(size_bytes) AS size_bytes FROM images GROUP BY sha256) AS f"
)


def connection_to_spare():
    """Whether this worker's pool has a connection for the scrape without waiting: a scrape does not
    queue behind requests (an exhausted pool is what it must show). Should a request take the last
    one between this check and the scrape's query, the scrape waits at most DB_POOL_TIMEOUT_SECONDS,
    then answers without the database's figures."""
    pool = db.engine.pool
    if not isinstance(pool, MeteredQueuePool):
        return True
    return pool.checkedout() < pool.size() + current_app.config["DB_MAX_OVERFLOW"]


class DatabaseFigures:
    """What the database knows, read at scrape time; left out while it cannot answer at once."""

    def collect(self):
        if not connection_to_spare():
            return
        try:
            waiting = mail.count_waiting()  # answered by the outbox's own index
            stored = db.session.execute(IMAGE_BYTES).scalar_one()
        except SQLAlchemyError:
            database.rollback()
            return
        yield GaugeMetricFamily("mail_outbox_waiting", "Mails in the outbox the SMTP server has not taken.", waiting)
        yield GaugeMetricFamily(
            "images_stored_bytes",
            "Bytes of image files in the store: each distinct file once, thumbnails apart.",
            stored,
        )


class Scrape:
    """One scrape: the workers' figures and the database's."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


def workers_figures():
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    return registry


def check_access():
    """METRICS_TOKEN set: `Authorization: Bearer <METRICS_TOKEN>` or 401. Unset: open, except in
    production, where /metrics does not exist (404)."""
    token = current_app.config["METRICS_TOKEN"]
    if token is None:
        if current_app.config["APP_ENV"] == "production":
            raise not_found()
        return
    if not hmac.compare_digest(bearer_token().encode(), token.encode()):
        raise unauthorized(MSG_INVALID)


@blp.route("/metrics", methods=["GET"])
def scrape():
    check_access()
    encoder, content_type = choose_encoder(request.headers.get("Accept"))
    body = encoder(Scrape(workers_figures(), DatabaseFigures()))
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


def init_app(app):
    meter_pool(app)
    app.register_blueprint(blp)
