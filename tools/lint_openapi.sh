#!/usr/bin/env bash
# Lints an OpenAPI document (a URL or a file) with Redocly CLI (recommended ruleset, redocly.yaml) and
# Spectral (spectral:oas, .spectral.yaml), both pinned in package.json. Prints both counts; fails unless 0/0.
# Usage: bash tools/lint_openapi.sh http://127.0.0.1:5000/v1/openapi.json
set -euo pipefail
cd "$(dirname "$0")"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

# npm ci only when the lock file changed since the last install.
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
  npm ci --silent --no-audit --no-fund >/dev/null
  cp package-lock.json node_modules/.installed-lock
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
case "$1" in
  http*) curl -sf "$1" -o "$WORK/openapi.json" ;;
  *) cp "$1" "$WORK/openapi.json" ;;
esac

./node_modules/.bin/redocly lint "$WORK/openapi.json" --config redocly.yaml --format=json >"$WORK/redocly.json" 2>/dev/null || true
./node_modules/.bin/spectral lint "$WORK/openapi.json" --ruleset .spectral.yaml -f json -o "$WORK/spectral.json" >/dev/null 2>&1 || true

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
redocly = json.load(open(f"{work}/redocly.json"))
spectral = json.load(open(f"{work}/spectral.json"))
counts = {
    "Redocly": (redocly["totals"]["errors"], redocly["totals"]["warnings"]),
    "Spectral": tuple(sum(1 for p in spectral if p["severity"] == level) for level in (0, 1)),
}
for problem in redocly["problems"]:
    where = problem["location"][0]["pointer"] if problem.get("location") else ""
    print(f"  redocly {problem['severity']}: {problem['ruleId']}: {problem['message']} {where}")
for problem in spectral:
    if problem["severity"] <= 1:
        print(f"  spectral {('error', 'warning')[problem['severity']]}: {problem['code']}: {problem['message']} {'.'.join(map(str, problem['path']))}")
for tool, (errors, warnings) in counts.items():
    print(f"{tool}: {errors} errors, {warnings} warnings")
sys.exit(0 if all(count == (0, 0) for count in counts.values()) else 1)
PY
