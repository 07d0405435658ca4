"""Gunicorn settings: `gunicorn -c gunicorn.conf.py 'app:create_app()'` (Procfile, `make run`, .ci/live).

Command-line flags (`--bind`, `--workers`) override what is set here.
"""

import atexit
import glob
import os
import shutil
import sys
import tempfile

from dotenv import load_dotenv

# logs.py lives beside this file, whatever directory gunicorn was started from (--chdir).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import logs  # noqa: E402
from config import rate_limits_counted_apart  # noqa: E402

load_dotenv()  # as the app does: LOG_FORMAT in .env applies to gunicorn's own lines too

# Chosen by `bench/run.sh --workers` on 2 cores (bench/README.md): threaded workers, so a
# request waiting on the database (a lock, the statement timeout, an outage) holds a thread, not
# a process. gthread, except that a connection waits for its request line and headers in the
# worker's poller, not in a thread (server.py: slow clients cost no thread). Inside each
# worker the fair admission gate (app/fairness.py) runs FAIR_SLOTS requests at once; the other
# threads wait there at no CPU cost. Hence many threads: gthread queues the
# connections it has no thread for first come, first served, behind a heavy user's backlog, where
# the gate cannot reorder them. 64 per worker is one bench noisy neighbour's 64 connections
# (`bench/run.sh --fairness`, bench/README.md); waiting threads cost memory only.
worker_class = "server.HeadFirstThreadWorker"  # gthread, reading each request's head without a thread
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 64
accesslog = "-"
# Every line, gunicorn's error and access logs as the app's, in LOG_FORMAT (text or json): logs.py.
logger_class = logs.GunicornLogger
access_log_format = logs.ACCESS_TEXT

# Gunicorn answers these itself, before the app runs, in plain HTML (see docs/robustness.md):
# a request line longer than this is 414; more header fields, or a longer one, is 431.
limit_request_line = 8190  # room for long cursors and query strings
limit_request_fields = 64
limit_request_field_size = 8190  # room for a bearer token from an external identity provider


def when_ready(server):
    """Say so when the failed-login limits are counted by each worker on its own (see docs/deploying.md)."""
    if server.cfg.workers > 1 and rate_limits_counted_apart():
        server.log.warning(
            "Rate limits are counted in each of the %d workers' memory: a client may try up to %d times "
            "the limit before a 429. Set REDIS_URL (or RATELIMIT_STORAGE_URI) to count them together.",
            server.cfg.workers,
            server.cfg.workers,
        )


def post_worker_init(worker):
    """Each worker starts its mail sender at once, so mails that waited through a restart leave
    without waiting for a request (app.mail; threads do not survive the fork, hence here)."""
    from app.mail import start_sender

    start_sender(worker.wsgi)


def worker_exit(_server, worker):
    """A worker going down (restart, deploy) ends the mail it is sending and leaves the rest due."""
    from app.mail import stop_sender

    stop_sender(getattr(worker, "wsgi", None))  # the arbiter calls this too, for a worker it lost


# Prometheus metrics summed over the workers (app/metrics.py): each worker writes its figures to
# files in PROMETHEUS_MULTIPROC_DIR and GET /metrics adds them up. Set here, before any worker
# imports prometheus_client: by default a new temporary directory, removed when gunicorn exits.
# Whichever it is, it is emptied when gunicorn starts: an earlier run's figures are not this one's.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="api-metrics-")
    _MASTER = os.getpid()

    @atexit.register
    def _remove_metrics_directory():
        if os.getpid() == _MASTER:  # workers inherit this handler; only the master's exit removes it
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)


def child_exit(server, worker):
    """A worker is gone (ended or killed): its gauges leave the sums; its counts stay."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
