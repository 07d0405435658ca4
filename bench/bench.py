"""The bench behind `bench/run.sh`: the API beside a hello-world Flask app, same gunicorn, same run.

For 1k items and for 1M items (100k buckets of one user, 100k actors, 100k movies) it measures,
with wrk on loopback: list page 1, the page at the MAX_PAGE_OFFSET window edge, a cursor page at
80 % depth (walked to), q search (its total cached, and counted each time), items of one bucket,
one bucket, actors with filters and movies with casts (page 1, and a cursor page at 80 % depth of
each), and login; then the noisy neighbour (another user's small list while one user runs 64
concurrent deep cursor walks). The sizes run side by side, line by line, each line `--rounds`
times (3), the best round kept (the speed of this shared machine drifts by half within minutes,
and interference only ever slows a run); 1M / 1k is the ratio of the two best rounds. SQL
statements per request are counted on the wire, in-process, through a proxy that reads the
PostgreSQL protocol (so BEGIN/ROLLBACK/pings count too).

Results: bench/results/latest.md (and .json), raw wrk output under bench/results/raw/.
`--only` runs some lines (results: only.md); `--workers` and `--fairness` compare gunicorn and
fair admission settings (workers.md, fairness.md); `--replica` reads from a streaming replica
(bench/replicas.py, replicas.md).
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "password123"
OWNER, ADMIN = "demo@example.com", "admin@example.com"
NEIGHBOUR = "neighbour@example.com"
# 1k has 1,000 actors and movies: with 100, the actors' filter kept 12 of them, so that list's page
# at 1k held fewer rows than at 1M (and its cursor page at 80 %, 3 of 20).
SIZES = {
    "1k": ["--buckets", "100", "--items", "10", "--actors", "1000", "--movies", "1000"],
    "1M": ["--buckets", "100000", "--items", "10", "--actors", "100000", "--movies", "100000"],
}
PER_PAGE = 20
MAX_OFFSET = int(os.environ.get("MAX_PAGE_OFFSET", "10000"))
SECRET_KEY = "bench-" + secrets.token_hex(32)


def psql(sql, database="postgres"):
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{database}"))
    out = subprocess.run(["psql", url, "-Atqc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def database_url(name):
    return urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))


def app_env(database, **extra):
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=database_url(database),
        RATELIMIT_ENABLED="false",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def manage(database, *args, root=ROOT):
    """A manage.py command (of the tree at `root`); tried three times, since the shared server may be
    out of connections."""
    for attempt in range(3):
        done = subprocess.run(
            [BIN / "python", "manage.py", *args], cwd=root, env=app_env(database), capture_output=True, text=True
        )
        if done.returncode == 0:
            return
        log(f"manage.py {args[0]} failed (attempt {attempt + 1}): {done.stderr.strip().splitlines()[-1:]}")
        time.sleep(3)
    raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")


def cache_key(root=ROOT):
    """The seeded 1M database is reused while the migrations and the seed code are the same."""
    digest = hashlib.sha256()
    for path in sorted((root / "migrations" / "versions").glob("*.py")) + [root / "app" / "seed.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def seeded_database(size, fresh, root=ROOT, keep=()):
    """The database for `size`, migrated and seeded by the tree at `root`: 1k is seeded each run;
    1M is kept between runs (unless fresh), and older 1M databases dropped, but those in `keep`."""
    if size == "1k":
        name = f"api_bench_1k_{os.getpid()}_{cache_key(root)}"
        psql(f'DROP DATABASE IF EXISTS "{name}"')
    else:
        name = f"api_bench_1m_{cache_key(root)}"
        exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists and not fresh:
            log(f"1M: reusing the seeded database {name}")
            return name
        stale = psql("SELECT datname FROM pg_database WHERE datname LIKE 'api_bench_1m_%'").split()
        for old in set(stale) - set(keep):  # seeded for other migrations or seed code
            drop_unless_in_use(old)
    building = f"{name}_building"
    psql(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{building}"')
    started = time.monotonic()
    manage(building, "db", "upgrade", root=root)
    manage(building, "seed", *SIZES[size], "--random-seed", "1", "--password", PASSWORD, root=root)
    psql("VACUUM ANALYZE", building)
    psql(f'ALTER DATABASE "{building}" RENAME TO "{name}"')  # a seed cut short never looks complete
    log(f"{size}: seeded {name} in {time.monotonic() - started:.0f} s")
    return name


def drop_unless_in_use(database):
    """Drop a database nobody is connected to: another bench (or a branch's) may still be reading it."""
    try:
        psql(f'DROP DATABASE IF EXISTS "{database}"')
    except subprocess.CalledProcessError as error:
        log(f"kept {database}: {error.stderr.strip()}")


def log(message):
    print(f"[bench {datetime.now(timezone.utc):%H:%M:%S}] {message}", flush=True)


# -- servers ------------------------------------------------------------------------------------


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """`target` served with gunicorn.conf.py of `root` (this tree, or another build's for --compare).

    The access log goes to /dev/null: each line is still formatted, as in production."""

    def __init__(self, target, env, chdir=None, flags=(), root=ROOT):
        self.port = free_port()
        command = [str(BIN / "gunicorn"), "-c", str(root / "gunicorn.conf.py"), *flags]
        command += ["--bind", f"127.0.0.1:{self.port}", "--access-logfile", "/dev/null", "--log-level", "warning"]
        if chdir:
            command += ["--chdir", str(chdir)]
        self.process = subprocess.Popen([*command, target], cwd=root, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                exchange(self.port, "GET", "/")  # any answer: the app is loaded
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{target} did not start")

    def stop(self):
        self.process.terminate()
        self.process.wait(20)


def exchange(port, method, path, body=None, token=None, headers=None):
    """One HTTP request: (status, raw body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def request(port, method, path, body=None, token=None):
    status, data = exchange(port, method, path, body, token)
    return status, json.loads(data) if data else None


def get(port, path, token=None):
    """A GET that waits out short 503s (the shared PostgreSQL may be out of connections for a moment)."""
    for _ in range(20):
        status, body = request(port, "GET", path, token=token)
        if status != 503:
            return status, body
        time.sleep(0.5)
    return status, body


def login(port, email):
    for _ in range(20):
        status, body = request(port, "POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
        if status != 503:
            break
        time.sleep(0.5)
    if status != 200:
        status, body = request(port, "POST", "/v1/auth/register", {"email": email, "password": PASSWORD})
        assert status == 201, (status, body)
    return body["auth_token"]


# -- wrk ----------------------------------------------------------------------------------------

LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}
NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk(port, path, token=None, seconds=5, connections=16, script=None, label="run", headers=None):
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run([*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    (RESULTS / "raw").mkdir(parents=True, exist_ok=True)
    (RESULTS / "raw" / f"{label}.txt").write_text(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: float(v) * UNIT[u] for p, v, u in LATENCY.findall(out)}
    errors = NON_2XX.search(out)
    return {
        "rps": rps,
        "p50": latency.get("50"),
        "p99": latency.get("99"),
        "non2xx": int(errors.group(1)) if errors else 0,
    }


LOGIN_SCRIPT = """wrk.method = "POST"
wrk.body = '{"email": "%s", "password": "%s"}'
wrk.headers["Content-Type"] = "application/json"
"""

# Each wrk thread walks on from the cursor it was given, following next_cursor; at the end of the
# list it starts again from the deep cursor, so every request is a deep cursor page.
WALK_SCRIPT = """local start = "%s"
local path = start
request = function() return wrk.format("GET", path) end
response = function(status, headers, body)
  local cursor = body:match('"next_cursor":%%s*"([^"]+)"')
  if cursor then path = "/v1/buckets?per_page=%d&cursor=" .. cursor else path = start end
end
"""


# -- the endpoints -----------------------------------------------------------------------------


def walk_to(port, token, path, fraction):
    """The cursor of the page of the list `path` at `fraction` of its rows, reached by walking 100 rows at a time."""
    status, first = get(port, f"{path}{query(path)}per_page=1", token)
    assert status == 200, first
    target, seen, cursor = int(first["pagination"]["total"] * fraction), 0, None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while seen < target:
        page = f"{path}{query(path)}per_page={min(100, target - seen)}" + (f"&cursor={quote(cursor)}" if cursor else "")
        connection.request("GET", page, headers={"Authorization": f"Bearer {token}"})
        body = json.loads(connection.getresponse().read())
        cursor = body["pagination"]["next_cursor"]
        seen += len(next(rows for key, rows in body.items() if key not in ("success", "pagination")))
    connection.close()
    return cursor


def query(path):
    """What joins one more parameter to `path`."""
    return "&" if "?" in path else "?"


def deep_cursor(port, owner):
    """The cursor of the owner's page at 80 % of their buckets."""
    return walk_to(port, owner, "/v1/buckets", 0.8)


def at_80_percent(port, token, path):
    """The line of the list `path` in cursor mode at 80 % of its depth: walks there when it is measured."""

    def walked():
        return f"{path}{query(path)}per_page={PER_PAGE}&cursor={quote(walk_to(port, token, path, 0.8))}"

    return walked


def endpoints(port, owner, admin, max_offset, cursor):
    """Each line: (name, path or a function that finds it, token); a function only runs for a line
    that is measured (a cursor walk takes seconds at 1M)."""
    status, first = get(port, f"/v1/buckets?per_page={PER_PAGE}", owner)
    assert status == 200, first
    total = first["pagination"]["total"]
    bucket = first["buckets"][0]
    word = max(re.findall(r"[a-z]{4,}", bucket["name"].lower()), key=len)
    edge_page = max(1, min(max_offset, total) // PER_PAGE)
    actors = "/v1/actors?gender=female&min_age=30&max_age=60"
    return [
        ("list page 1", f"/v1/buckets?page=1&per_page={PER_PAGE}", owner),
        (GZIP_LINE, f"/v1/buckets?page=1&per_page={PER_PAGE}", owner),
        ("window-edge page", f"/v1/buckets?page={edge_page}&per_page={PER_PAGE}", owner),
        ("cursor page at 80 %", f"/v1/buckets?per_page={PER_PAGE}&cursor={quote(cursor)}", owner),
        (f"q search ({word})", f"/v1/buckets?q={word}&per_page={PER_PAGE}", owner),
        (f"q search, total counted each time ({word})", f"/v1/buckets?q={word}&per_page={PER_PAGE}", owner),
        ("items of one bucket", f"/v1/buckets/{bucket['id']}/items?per_page={PER_PAGE}", owner),
        ("one bucket", f"/v1/buckets/{bucket['id']}", owner),
        ("actors with filters", f"{actors}&per_page={PER_PAGE}", admin),
        ("actors with filters by cursor at 80 %", at_80_percent(port, admin, actors), admin),
        ("movies with casts", f"/v1/movies?per_page={PER_PAGE}", admin),
        ("movies with casts by cursor at 80 %", at_80_percent(port, admin, "/v1/movies"), admin),
        ("login (bcrypt 12)", "/v1/auth/login", None),
    ] + floor_lines(bucket["id"], owner)


def floor_lines(bucket, owner):
    if not (FLOOR_DIR / "ceiling_db.py").exists():
        return []
    return [
        (f"{FLOOR}list page 1", f"/v1/buckets?page=1&per_page={PER_PAGE}", owner),
        (f"{FLOOR}one bucket", f"/v1/buckets/{bucket}", owner),
    ]


# Lines that run on a server of their own, with these settings (by name, before its " (").
LINE_SETTINGS = {"q search, total counted each time": {"LIST_TOTALS_CACHED": "0"}}
# The list line again, from a client that takes gzip (what compressing the answer costs).
GZIP_LINE = "list page 1, gzip"
LINE_HEADERS = {GZIP_LINE: {"Accept-Encoding": "gzip"}}
# The yardstick beside the API in the same run: ../shared/bench/ceiling_db.py, the same two reads on
# raw psycopg2 with no ORM and no validation layer (its README). Its lines are left out where absent.
FLOOR_DIR = Path(os.environ.get("BENCH_FLOOR_DIR", ROOT.parent / "shared" / "bench"))
FLOOR = "floor (raw psycopg2): "


def line_settings(name):
    return LINE_SETTINGS.get(name.split(" (")[0], {})


def count_statements(database, cases):
    """Statements each request sends, counted on the wire (after one warm-up request), and the
    PostgreSQL time of its queries: {name: (count, ms)}."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TEST_DATABASE_URL", "")
    from app import create_app
    from app.extensions import db
    from tests.helpers import StatementCounter

    proxy = StatementCounter("127.0.0.1", urlsplit(ADMIN_URL).port or 5432)
    proxy.start()
    counts = {}
    for name, path, token in cases:
        if name.startswith(FLOOR):  # another app: its statements are its own (two, by its design)
            counts[name] = "", None
            continue
        app = create_app(
            "production",
            SECRET_KEY=SECRET_KEY,
            RATELIMIT_ENABLED=False,
            LOG_LEVEL="ERROR",
            SQLALCHEMY_DATABASE_URI=proxy.url(database_url(database)),
            **{key: int(value) for key, value in line_settings(name).items()},
        )
        client = app.test_client()
        for _pass in ("warm-up", "counted"):
            proxy.statements.clear()
            if token is None:
                client.post(path, json={"email": OWNER, "password": PASSWORD})
            else:
                client.get(path, headers={"Authorization": f"Bearer {token}"})
            time.sleep(0.05)  # the proxy's reader thread catches up
        counts[name] = len(proxy.statements), postgres_ms(database, list(proxy.statements))
        with app.app_context():
            db.engine.dispose()
    proxy.stop()
    return counts


def postgres_ms(database, statements, repeat=5):
    """PostgreSQL's own time for a request's queries (psycopg2 sends them with their values in):
    planning and execution by EXPLAIN ANALYZE, each the median of `repeat` warm runs. Unlike req/s,
    this hardly moves with the load of the machine, so it shows what grows with the data."""
    import psycopg2

    connection = psycopg2.connect(database_url(database))
    connection.autocommit = True
    total = 0.0
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")  # as the app's connections (app/database.py)
        for statement in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue  # BEGIN, ROLLBACK, SET; a login's writes are not run twice
            times = []
            for _ in range(repeat):
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}")
                plan = cursor.fetchone()[0][0]
                times.append(plan["Planning Time"] + plan["Execution Time"])
            total += statistics.median(times)
    connection.close()
    return total


def measure_sizes(databases, seconds, max_offset, only, rounds):
    """Every line at every size, interleaved: line by line, each size in turn (the order flipping
    from line to line and round to round), so that a machine slowing down mid-run weighs on both
    sides of a 1M / 1k ratio alike. Each line's row is its best of `rounds`; noise only slows."""
    servers, cases, owners = {}, {}, {}
    try:
        for size, database in databases.items():
            servers[size, None] = server = Gunicorn("app:create_app()", app_env(database))
            owner, admin = login(server.port, OWNER), login(server.port, ADMIN)
            owners[size] = owner, deep_cursor(server.port, owner)
            listed = endpoints(server.port, owner, admin, max_offset, owners[size][1])
            cases[size] = [(n, p() if callable(p) else p, t) for n, p, t in listed if selected(only, n)]
            for name, *_ in cases[size]:
                if name.startswith(FLOOR):
                    servers[size, name] = Gunicorn("ceiling_db:app", app_env(database), chdir=FLOOR_DIR)
                elif settings := line_settings(name):
                    servers[size, name] = Gunicorn("app:create_app()", app_env(database, **settings))
        runs, sizes, prefix = {}, list(databases), "only-" if only else ""
        for round_ in range(rounds):
            for index in range(len(cases[sizes[0]])):
                for size in sizes if (round_ + index) % 2 == 0 else reversed(sizes):
                    case = cases[size][index]
                    port = servers.get((size, case[0]), servers[size, None]).port
                    runs.setdefault((size, index), []).append(measure_line(port, size, case, seconds, prefix))
        page_bytes = {size: page_sizes(servers[size, None].port, owners[size][0]) for size in databases}
        noisy = []
        if "1M" in databases and selected(only, "noisy neighbour"):
            port, (owner, cursor) = servers["1M", None].port, owners["1M"]
            for round_ in range(rounds):
                for connections in NEIGHBOUR_CONNECTIONS:
                    label = f"{'only-' if only else ''}noisy-{connections}c-{round_ + 1}"
                    noisy.append(noisy_neighbour(port, owner, cursor, seconds, label, connections))
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for size, database in databases.items():
        counts = count_statements(database, cases[size])
        for index, case in enumerate(cases[size]):
            statements, pg_ms = counts[case[0]]
            row = {**best(runs[size, index]), "statements": statements, "pg_ms": pg_ms, "rounds": runs[size, index]}
            if size != sizes[0]:
                row["scale"] = row["rps"] / best(runs[sizes[0], index])["rps"]
            rows.append(row)
    return rows, noisy, page_bytes


def page_sizes(port, token):
    """Bytes on the wire of a 100-item page of buckets: plain, and gzip-compressed when the client takes it."""
    path = "/v1/buckets?page=1&per_page=100"
    plain = exchange(port, "GET", path, token=token)[1]
    gzipped = exchange(port, "GET", path, token=token, headers={"Accept-Encoding": "gzip"})[1]
    return len(plain), len(gzipped)


def page_bytes_text(page_bytes):
    return (
        "A 100-item page of buckets: "
        + "; ".join(
            f"{size} {plain} bytes, {gzipped} with gzip ({1 - gzipped / plain:.0%} saved)"
            for size, (plain, gzipped) in page_bytes.items()
        )
        + "."
    )


def best(runs):
    """The fastest of a line's rounds: on a shared machine, interference only ever slows a run."""
    return max(runs, key=lambda run: run["rps"])


def measure_line(port, size, case, seconds, prefix=""):
    """One wrk run of `case`; its raw output is bench/results/raw/<prefix><size>-<line>.txt."""
    name, path, token = case
    script, connections = None, 16
    if token is None:  # bcrypt: two at a time already fill the two cores
        connections = 2
        script = RESULTS / "raw" / "login.lua"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(LOGIN_SCRIPT % (OWNER, PASSWORD))
    label = f"{prefix}{size}-{slug(name)}"
    result = wrk(port, path, token, seconds, connections, script, label=label, headers=LINE_HEADERS.get(name))
    log(f"{size} {name}: {result['rps']:.0f} req/s, p50 {result['p50']} ms")
    return {"size": size, "endpoint": name, "path": path, **result}


def selected(only, line):
    """Whether `line` runs: every line, or those named by `--only`."""
    return not only or slug(line) in only


# The neighbour's own concurrent requests: 1 is the target's line, a user who sends one request at
# a time. With 2, the neighbour's two requests queue behind each other whenever both land on one
# worker (the gate runs one request per worker, bench/README.md), so it is reported too.
NEIGHBOUR_CONNECTIONS = (1, 2)


def noisy_neighbour(port, owner, cursor, seconds, label, connections):
    """Another user's small list over `connections` connections, idle and while `owner` walks 64
    deep cursors at once."""
    neighbour = login(port, NEIGHBOUR)
    status, body = get(port, "/v1/buckets?per_page=5", neighbour)
    for n in range(5 - body["pagination"]["total"]):
        request(port, "POST", "/v1/buckets", {"name": f"neighbour {n}"}, neighbour)
    small = "/v1/buckets?per_page=5"
    idle = wrk(port, small, neighbour, seconds, connections=connections, label=f"{label}-idle")
    script = RESULTS / "raw" / "walk.lua"
    script.write_text(WALK_SCRIPT % (f"/v1/buckets?per_page={PER_PAGE}&cursor={quote(cursor)}", PER_PAGE))
    walkers = subprocess.Popen(
        [
            "wrk",
            "-t2",
            "-c64",
            f"-d{seconds + 4}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {owner}",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    busy = wrk(port, small, neighbour, seconds, connections=connections, label=f"{label}-busy")
    walk_out = walkers.communicate()[0]
    (RESULTS / "raw" / f"{label}-walkers.txt").write_text(walk_out)
    walk_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", walk_out).group(1))
    return {
        "connections": connections,
        "idle_p50": idle["p50"],
        "busy_p50": busy["p50"],
        "ratio": busy["p50"] / idle["p50"],
        "walkers_rps": walk_rps,
        "busy_rps": busy["rps"],
        "busy_non2xx": busy["non2xx"],
        "walkers_non2xx": int(errors.group(1)) if (errors := NON_2XX.search(walk_out)) else 0,
    }


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def hello(seconds, label, flags=(), root=ROOT):
    server = Gunicorn("hello:app", dict(os.environ), chdir=ROOT / "bench", flags=flags, root=root)
    try:
        return wrk(server.port, "/", None, seconds, label=label)
    finally:
        server.stop()


# gunicorn flags of each setting; the fair gate (FAIR_SLOTS=1 per worker) stays on throughout.
WORKER_SETTINGS = {
    "gthread, 2 workers x 64 threads": ["--worker-class", "gthread", "--workers", "2", "--threads", "64"],
    "gthread, 3 workers x 64 threads": ["--worker-class", "gthread", "--workers", "3", "--threads", "64"],
    "gthread, 4 workers x 64 threads": ["--worker-class", "gthread", "--workers", "4", "--threads", "64"],
    "sync, 2 workers": ["--worker-class", "sync", "--workers", "2"],
    "sync, 3 workers": ["--worker-class", "sync", "--workers", "3"],
}


def compare_workers(seconds, rounds):
    """Item 6: hello-world and the API's list page 1 and one bucket (1k) under each gunicorn
    setting, the settings in turn, `rounds` times; the ratios are to hello-world on that setting."""
    database = seeded_database("1k", fresh=True)
    lines = [
        "| round | gunicorn | hello req/s | list page 1 req/s | p50 ms | × hello "
        "| one bucket req/s | p50 ms | × hello |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    try:
        for round_ in range(1, rounds + 1):
            for label, flags in WORKER_SETTINGS.items():
                name = f"workers-{round_}-{slug(label)}"
                base = hello(seconds, f"{name}-hello", flags=flags)["rps"]
                results = single_user_lines(database, flags, {}, seconds, name)
                cells = [f"{r['rps']:.0f} | {r['p50']:.2f} | {r['rps'] / base:.3f}" for r in results.values()]
                lines.append(f"| {round_} | {label} | {base:.0f} | " + " | ".join(cells) + " |")
                log(lines[-1])
    finally:
        psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    write_table("workers.md", f"gunicorn settings, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", lines)


def write_table(filename, heading, lines):
    """A comparison's table under bench/results/, headed with when and under what load it ran."""
    text = "\n".join([f"# {heading}, load {os.getloadavg()[0]:.1f}", "", *lines, ""])
    (RESULTS / filename).write_text(text)
    print(text)


# The fair admission gate (app/fairness.py): gunicorn flags and environment of each setting.
# The first is the setting before the gate; gunicorn.conf.py and config.py default to the third.
FAIRNESS_SETTINGS = {
    "no gate, 8 threads, pool 8+2": (["--threads", "8"], {"FAIR_SLOTS": "0", "DB_POOL_SIZE": "8"}),
    "gate 1 slot, 64 threads, pool 1+2": (["--threads", "64"], {"FAIR_SLOTS": "1"}),
    "gate 2 slots, 64 threads, pool 2+2": (["--threads", "64"], {"FAIR_SLOTS": "2"}),
    "gate 4 slots, 64 threads, pool 4+2": (["--threads", "64"], {"FAIR_SLOTS": "4"}),
}


def cached_1m():
    """The seeded 1M database, which this mode never seeds (nor drops): run the full bench first."""
    name = f"api_bench_1m_{cache_key()}"
    if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        raise SystemExit(f"{name} does not exist: seed it with `bench/run.sh --sizes 1M` first")
    return name


def single_user_lines(database, flags, env, seconds, label):
    """list page 1 and one bucket of one user, wrk -c16 (--workers, --fairness)."""
    server = Gunicorn("app:create_app()", app_env(database, **env), flags=flags)
    try:
        owner = login(server.port, OWNER)
        bucket = get(server.port, "/v1/buckets?per_page=1", owner)[1]["buckets"][0]["id"]
        paths = {"list": f"/v1/buckets?page=1&per_page={PER_PAGE}", "one": f"/v1/buckets/{bucket}"}
        return {key: wrk(server.port, path, owner, seconds, label=f"{label}-{key}") for key, path in paths.items()}
    finally:
        server.stop()


def noisy_line(database, flags, env, seconds, label, cursor=None):
    server = Gunicorn("app:create_app()", app_env(database, **env), flags=flags)
    try:
        owner = login(server.port, OWNER)
        cursor = cursor or deep_cursor(server.port, owner)
        return noisy_neighbour(server.port, owner, cursor, seconds, label, connections=2), cursor  # as fairness.md
    finally:
        server.stop()


def compare_fairness(seconds, rounds):
    """The gate's settings against today's, same run: the noisy neighbour (1M) and the
    single-user lines list page 1 and one bucket (1k), each setting in turn, `rounds` times."""
    large, small = cached_1m(), seeded_database("1k", fresh=True)
    lines = [
        "| round | setting | list page 1 req/s | p50 ms | one bucket req/s | p50 ms "
        "| neighbour idle p50 ms | busy p50 ms | busy / idle | busy req/s | walkers req/s | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cursor = None
    try:
        for round_ in range(1, rounds + 1):
            for setting, (flags, env) in FAIRNESS_SETTINGS.items():
                label = f"fairness-{round_}-{slug(setting)}"
                single = single_user_lines(small, flags, env, seconds, label)
                noisy, cursor = noisy_line(large, flags, env, seconds, label, cursor)
                non2xx = single["list"]["non2xx"] + single["one"]["non2xx"]
                non2xx += noisy["busy_non2xx"] + noisy["walkers_non2xx"]
                lines.append(
                    f"| {round_} | {setting} | {single['list']['rps']:.0f} | {single['list']['p50']:.2f} "
                    f"| {single['one']['rps']:.0f} | {single['one']['p50']:.2f} | {noisy['idle_p50']:.2f} "
                    f"| {noisy['busy_p50']:.2f} | {noisy['ratio']:.2f} | {noisy['busy_rps']:.0f} "
                    f"| {noisy['walkers_rps']:.0f} | {non2xx} |"
                )
                log(lines[-1])
    finally:
        psql(f'DROP DATABASE IF EXISTS "{small}" WITH (FORCE)')
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    write_table("fairness.md", f"Fair admission settings, {when}, {seconds} s per line", lines)


# -- --compare: two builds in one run --------------------------------------------------------


def build_tree(rev):
    """A copy of revision `rev`'s files (git archive), served with this tree's virtualenv."""
    directory = Path(tempfile.mkdtemp(prefix="api-bench-build-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def describe(rev):
    out = subprocess.run(["git", "log", "-1", "--format=%h %s", rev], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()[:72]


def compared_lines(only):
    """The bench's list and single-GET lines (and the gzip one): not login, not the yardstick's."""
    return lambda name: not name.startswith(("login", FLOOR)) and selected(only, name)


def compare_builds(rev, sizes, seconds, rounds, only, fresh):
    """The same lines for two builds in one run: revision `rev`, served from a copy of its tree, and
    this tree, side by side on the same data (on databases of each build's own schema, migrated and
    seeded by its own tree, when their migrations differ). Each round runs every line on both builds
    back to back (which goes first alternates from line to line and round to round), and
    hello-world under each build's gunicorn.conf.py, so that a machine drifting mid-run weighs on
    both alike. Reported: each build's best round, their ratio, and the median of the rounds'
    paired ratios."""
    builds = {"before": build_tree(rev), "after": ROOT}
    names = {"before": describe(rev), "after": f"this tree ({describe('HEAD')}{' + changes' if dirty() else ''})"}
    databases = build_databases(builds, rev, sizes, fresh)
    runs, hellos, page_bytes = {}, {build: [] for build in builds}, {}
    try:
        for size in sizes:
            log(f"{size}: serving both builds")
            servers = {}
            try:
                cases = serve_builds(builds, databases[size], servers, only)
                page_bytes[size] = {
                    build: page_sizes(servers[build, None].port, cases[build][0][2]) for build in builds
                }
                for round_ in range(rounds):
                    for index, line in enumerate(cases["after"]):
                        for build in in_turn(builds, round_ + index):
                            case = cases[build][index]  # the same line, with this build's ids and tokens
                            port = servers.get((build, case[0]), servers[build, None]).port
                            result = measure_line(port, f"{size}-{build}", case, seconds, "compare-")
                            runs.setdefault((size, line[0]), {}).setdefault(build, []).append(result)
                    for build in in_turn(builds, round_):
                        label = f"compare-{build}-hello-{size}-{round_ + 1}"
                        hellos[build].append(hello(seconds, label, root=builds[build])["rps"])
            finally:
                for server in servers.values():
                    server.stop()
    finally:
        shutil.rmtree(builds["before"], ignore_errors=True)
        for database in {name for size in sizes if size == "1k" for name in databases[size].values()}:
            psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    compare_report(rev, names, runs, hellos, page_bytes, seconds, rounds, "compare-only" if only else "compare")


def build_databases(builds, rev, sizes, fresh):
    """{size: {build: database}}: one database per size for both builds, or, when `rev`'s migrations
    differ from this tree's, one per build, each migrated and seeded (the same seed) by its own tree."""
    if subprocess.run(["git", "diff", "--quiet", rev, "--", "migrations"], cwd=ROOT).returncode == 0:
        return {size: dict.fromkeys(builds, seeded_database(size, fresh)) for size in sizes}
    log(f"{rev} has other migrations than this tree: each build gets databases of its own schema")
    keep = [f"api_bench_1m_{cache_key(root)}" for root in builds.values()]
    return {size: {build: seeded_database(size, fresh, root, keep) for build, root in builds.items()} for size in sizes}


def serve_builds(builds, databases, servers, only):
    """Start each build's servers (into `servers`) and find its lines: {build: [(name, path, token)]},
    each build with its own tokens, ids and cursors."""
    wanted, cases = compared_lines(only), {}
    for build, root in builds.items():
        servers[build, None] = Gunicorn("app:create_app()", app_env(databases[build]), root=root)
    for build, root in builds.items():
        port = servers[build, None].port
        owner, admin = login(port, OWNER), login(port, ADMIN)
        listed = endpoints(port, owner, admin, MAX_OFFSET, deep_cursor(port, owner))
        cases[build] = [(n, p() if callable(p) else p, t) for n, p, t in listed if wanted(n)]
        for name, *_ in cases[build]:
            if settings := line_settings(name):
                servers[build, name] = Gunicorn("app:create_app()", app_env(databases[build], **settings), root=root)
    return cases


def in_turn(builds, turn):
    """The builds, in an order that alternates with `turn`."""
    return list(builds) if turn % 2 == 0 else list(reversed(builds))


def dirty():
    return bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout)


def compare_report(rev, names, runs, hellos, page_bytes, seconds, rounds, report="compare"):
    hello_best = {build: max(values) for build, values in hellos.items()}
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    lines = [
        f"before: {names['before']}  ",
        f"after: {names['after']}",
        "",
        f"Loopback, {os.cpu_count()} cores; wrk -t2 -c16, {seconds} s per line and build, {rounds} rounds, the "
        "builds back to back within each round (their order alternating). hello-world under each build's "
        f"gunicorn.conf.py: {hello_best['before']:.0f} req/s before, {hello_best['after']:.0f} after (best of "
        f"{len(hellos['before'])}). after / before: of the best rounds, and the median of the rounds' paired ratios. "
        + "100-item page of buckets, after: "
        + "; ".join(
            f"{size} {b['after'][0]} bytes plain, {b['after'][1]} gzip ({1 - b['after'][1] / b['after'][0]:.0%} saved)"
            for size, b in page_bytes.items()
        )
        + ".",
        "",
        "| size | line | before req/s | after req/s | after / before | paired median | before × hello "
        "| after × hello | p50 ms before | after | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (size, name), builds in runs.items():
        before, after = best(builds["before"]), best(builds["after"])
        paired = statistics.median(a["rps"] / b["rps"] for a, b in zip(builds["after"], builds["before"], strict=True))
        non2xx = sum(run["non2xx"] for runs_ in builds.values() for run in runs_)
        lines.append(
            f"| {size} | {name} | {before['rps']:.0f} | {after['rps']:.0f} | {after['rps'] / before['rps']:.3f} "
            f"| {paired:.3f} | {before['rps'] / hello_best['before']:.3f} | {after['rps'] / hello_best['after']:.3f} "
            f"| {before['p50']:.2f} | {after['p50']:.2f} | {non2xx} |"
        )
    write_table(f"{report}.md", f"Compare {rev} with this tree, {when}", lines)
    (RESULTS / f"{report}.json").write_text(
        json.dumps(
            {
                "names": names,
                "hello": hellos,
                "page_bytes": page_bytes,
                "runs": {f"{size} {name}": builds for (size, name), builds in runs.items()},
            },
            indent=2,
        )
    )


def report(rows, noisy, hellos, conditions, seeded, name="latest"):
    hello_rps = max(hellos[0]["rps"], hellos[1]["rps"])
    lines = [
        f"# Bench {conditions['when']}",
        "",
        conditions["text"],
        "",
        f"hello-world Flask: {hellos[0]['rps']:.0f} req/s before, {hellos[1]['rps']:.0f} after "
        f"(p50 {hellos[0]['p50']:.2f} / {hellos[1]['p50']:.2f} ms). Ratios use the better of the two. "
        f"For reference, with the 8 threads per worker of the earlier setting: {hellos[2]['rps']:.0f} req/s.",
        "",
        "| size | endpoint | req/s | p50 ms | p99 ms | × hello | SQL statements | PostgreSQL ms | 1M / 1k | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        scale = f"{row['scale']:.2f}" if "scale" in row else ""
        pg_ms = "" if row["pg_ms"] is None else f"{row['pg_ms']:.2f}"
        lines.append(
            f"| {row['size']} | {row['endpoint']} | {row['rps']:.0f} | {row['p50']:.2f} | {row['p99']:.2f} "
            f"| {row['rps'] / hello_rps:.3f} | {row['statements']} | {pg_ms} | {scale} | {row['non2xx']} |"
        )
    for connections in sorted({n["connections"] for n in noisy}):
        runs = [n for n in noisy if n["connections"] == connections]
        lines += [
            "",
            f"Noisy neighbour (1M), {connections} connection(s): another user's small list, idle and while one "
            "user runs 64 concurrent deep cursor walks; median busy / idle "
            f"{statistics.median(n['ratio'] for n in runs):.2f}×. Each round:",
            "",
            *(
                f"- idle p50 {n['idle_p50']:.2f} ms, busy p50 {n['busy_p50']:.2f} ms "
                f"(walkers {n['walkers_rps']:.0f} req/s): {n['ratio']:.2f}×"
                for n in runs
            ),
        ]
    lines += ["", "Seeding: " + "; ".join(seeded), ""]
    text = "\n".join(lines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"rows": rows, "noisy": noisy, "hello": hellos, "conditions": conditions}, indent=2)
    )
    print(text)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=4, help="per endpoint and round")
    parser.add_argument("--sizes", default="1k,1M")
    parser.add_argument("--fresh", action="store_true", help="seed 1M again even if a cached copy exists")
    parser.add_argument("--workers", action="store_true", help="compare gunicorn worker settings instead")
    parser.add_argument("--fairness", action="store_true", help="compare fair-admission settings instead")
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="measure the list and single-GET lines for git revision REV and this tree in one run, "
        "interleaved (results: compare.md)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="times each line runs (default 3); --workers, --fairness: 1"
    )
    parser.add_argument(
        "--only",
        type=lambda value: {slug(line) for line in value.split(",")},
        default=set(),
        help="comma-separated lines to run, e.g. 'noisy neighbour,list page 1' (results: only.md)",
    )
    args = parser.parse_args()
    if args.workers:
        return compare_workers(args.seconds, args.rounds or 1)
    if args.fairness:
        return compare_fairness(args.seconds, args.rounds or 1)
    if args.compare:
        return compare_builds(
            args.compare, args.sizes.split(","), args.seconds, args.rounds or 3, args.only, args.fresh
        )
    args.rounds = args.rounds or 3
    max_offset = MAX_OFFSET
    started = time.monotonic()
    load = os.getloadavg()
    conditions = {
        "when": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "text": f"Loopback, {os.cpu_count()} cores, load average {load[0]:.1f} at start; gunicorn "
        f"`-c gunicorn.conf.py` for both apps; wrk -t2 -c16, {args.seconds} s per line; each line "
        f"{args.rounds} times, the sizes interleaved line by line, the best round kept (every round's "
        "req/s in latest.json).",
    }
    seeded, databases = [], {}
    for size in args.sizes.split(","):
        t = time.monotonic()
        databases[size] = seeded_database(size, args.fresh)
        seeded.append(f"{size} ready in {time.monotonic() - t:.0f} s")
    prefix = "only-" if args.only else ""
    hellos = [hello(args.seconds, f"{prefix}hello-before")]
    try:
        rows, noisy, page_bytes = measure_sizes(databases, args.seconds, max_offset, args.only, args.rounds)
    finally:
        for size, database in databases.items():
            if size == "1k":
                psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    hellos.append(hello(args.seconds, f"{prefix}hello-after"))
    # 64 threads serve the fair admission gate; does hello-world itself lose or gain by them?
    hellos.append(hello(args.seconds, f"{prefix}hello-8-threads", flags=["--threads", "8"]))
    conditions["text"] += f" Whole run {time.monotonic() - started:.0f} s."
    conditions["text"] += " " + page_bytes_text(page_bytes)
    report(rows, noisy, hellos, conditions, seeded, name="only" if args.only else "latest")


if __name__ == "__main__":
    main()
