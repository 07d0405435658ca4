#!/usr/bin/env bash
# Throughput of the API beside a hello-world Flask app, same gunicorn settings, same run.
# Loads data with `manage.py seed` into a fresh PostgreSQL database, drives both with wrk on
# loopback and prints requests/second and the ratio to hello-world for each endpoint.
# Usage: bench/run.sh [seconds-per-endpoint]   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
ADMIN_URL=postgresql://postgres@127.0.0.1:5432/test
DB="api_bench_$$"
API_PORT=5101
HELLO_PORT=5102
GUNICORN=(.venv/bin/gunicorn --worker-class gthread --workers 2 --threads 4 --log-level warning)

make -s .venv/.installed
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB"
export APP_ENV=production SECRET_KEY="bench-$(openssl rand -hex 32)" RATELIMIT_ENABLED=false LOG_LEVEL=WARNING
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
.venv/bin/python manage.py db upgrade >/dev/null 2>&1
.venv/bin/python manage.py seed --users 1 --buckets 200 --items 50 --actors 500 --movies 300 --random-seed 1 >/dev/null

"${GUNICORN[@]}" --bind 127.0.0.1:$API_PORT 'app:create_app()' & API=$!
"${GUNICORN[@]}" --bind 127.0.0.1:$HELLO_PORT --chdir bench 'hello:app' & HELLO=$!
trap 'kill $API $HELLO 2>/dev/null; wait 2>/dev/null; psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
for port in $API_PORT $HELLO_PORT; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
done

login() {
  curl -sf -X POST "http://127.0.0.1:$API_PORT/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"password123\"}" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["auth_token"])'
}
USER_TOKEN=$(login demo@example.com)
ADMIN_TOKEN=$(login admin@example.com)

rps() {  # url [token]
  local header=()
  [ -n "${2:-}" ] && header=(-H "Authorization: Bearer $2")
  wrk -t2 -c16 -d"${DURATION}s" "${header[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
}

baseline=$(rps "http://127.0.0.1:$HELLO_PORT/")
printf '%-48s %10s %8s\n' endpoint req/s ratio
printf '%-48s %10.0f %8s\n' "hello-world Flask (baseline)" "$baseline" "1.00"
while read -r name path token; do
  value=$(rps "http://127.0.0.1:$API_PORT$path" "${!token:-}")
  printf '%-48s %10.0f %8.2f\n' "$name" "$value" "$(echo "$value / $baseline" | bc -l)"
done <<'ENDPOINTS'
GET-/v1/health /v1/health NONE
GET-/v1/buckets?per_page=20 /v1/buckets?per_page=20 USER_TOKEN
GET-/v1/buckets?per_page=100 /v1/buckets?per_page=100 USER_TOKEN
GET-/v1/movies?per_page=20(with-casts) /v1/movies?per_page=20 ADMIN_TOKEN
GET-/v1/actors?q=an&sort=-age /v1/actors?q=an&sort=-age ADMIN_TOKEN
ENDPOINTS
