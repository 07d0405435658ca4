#!/usr/bin/env bash
# Times `manage.py seed` with one million items on PostgreSQL.
# Usage: bench/seed.sh [postgresql-admin-url]   (default: the local server's `test` database)
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${1:-postgresql://postgres@127.0.0.1:5432/test}
DB="api_seed_bench_$$"
make -s .venv/.installed
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB"
trap 'psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
export DATABASE_URL="${ADMIN_URL%/*}/$DB"
.venv/bin/python manage.py db upgrade >/dev/null 2>&1
start=$(date +%s.%N)
.venv/bin/python manage.py seed --users 1 --buckets 10000 --items 100 --actors 0 --movies 0 --random-seed 1 >/dev/null
end=$(date +%s.%N)
items=$(psql "$DATABASE_URL" -tAc "SELECT count(*) FROM items")
printf 'seeded %s items in %.1f s\n' "$items" "$(echo "$end - $start" | bc)"
