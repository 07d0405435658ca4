"""Gunicorn settings: `gunicorn -c gunicorn.conf.py 'app:create_app()'` (Procfile, `make run`, .ci/live).

Command-line flags (`--bind`, `--workers`) override what is set here.
"""

import os

# Chosen by `bench/run.sh --workers` on 2 cores (README, "Performance"): 2 workers x 8 threads
# matched or beat sync workers on reads, and a request waiting on the database (a lock, the
# statement timeout, an outage) holds one of 16 threads instead of one of 2 processes.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 8
accesslog = "-"

# Gunicorn answers these itself, before the app runs, in plain HTML (see the README):
# a request line longer than this is 414; more header fields, or a longer one, is 431.
limit_request_line = 8190  # room for long cursors and query strings
limit_request_fields = 64
limit_request_field_size = 8190  # room for a bearer token from an external identity provider
