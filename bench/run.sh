#!/usr/bin/env bash
# The bench (issue 12): hello-world Flask and the API under the same gunicorn settings, in the same
# run, at 1k and at 1M items on PostgreSQL. Loopback only; about 8 minutes with a cached 1M database,
# 9 to 10 on a clean machine (seeding 1M). Results: bench/results/latest.md (see bench/bench.py).
# Usage: bench/run.sh [--seconds N] [--rounds N] [--sizes 1k,1M] [--fresh] [--only 'noisy neighbour,...']
#        bench/run.sh --workers | --fairness [--rounds N]   (compare gunicorn / fair admission settings)
#        bench/run.sh --replica [--seconds N] [--rounds N]  (one instance with and without a streaming replica,
#                     two with it: bench/replicas.py; builds its own primary and replica, needs HAProxy and Redis)
#   BENCH_ADMIN_URL  PostgreSQL to create the bench databases in (default: local server, user postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s .venv/.installed
if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
fi
if [[ " $* " == *" --replica "* ]]; then
  exec .venv/bin/python bench/replicas.py "$@"
fi
exec .venv/bin/python bench/bench.py "$@"
