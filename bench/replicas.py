"""`bench/run.sh --replica`: reads from a streaming replica, in one run (issue 29).

A PostgreSQL primary and a streaming replica of it are built for the run (tests/pgreplica.py), and
the 1k data set is seeded on the primary. Three settings serve the bench's list and single-GET lines
(list page 1, one bucket), each line in turn, each setting in turn, `rounds` times, the best kept:
  - one instance, no replica (DATABASE_URL only);
  - one instance with the replica (DATABASE_REPLICA_URLS, REDIS_URL);
  - two instances with the replica, behind HAProxy.
For each run, each server's pg_stat_statements says how many of the app's reads it served: the
primary's share. The routing's cost per request is measured three ways: the req/s of one instance
with the replica against without it (the database work is the same, only on another server of this
machine); in process, the Flask test client's CPU and wall time per request with and without
routing (GET lines, one thread, alternated); and `Router.choose` timed alone, the routing's whole
work for one read, which a shared machine's noise moves least.

Results: bench/results/replicas.md, raw wrk output under bench/results/raw/.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]  # bench/bench.py as `bench`, and the app's packages

from bench import OWNER, PASSWORD, PER_PAGE, RESULTS, SECRET_KEY, SIZES, Gunicorn, free_port, get, log, login, wrk  # noqa: E402
from tests.live.scale import HAPROXY_CONFIG  # noqa: E402
from tests.pgreplica import ReplicatedPostgres  # noqa: E402

BIN = Path(sys.executable).parent
DATABASE = "bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
SETTINGS = ("1 instance, no replica", "1 instance + replica", "2 instances + replica")
# The app's reads: statements on its tables (not the routing's own pg_* queries, not pg_stat_statements').
APP_READS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query ILIKE 'select%%' "
    "AND query NOT ILIKE '%%pg_%%' AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
IN_PROCESS_REQUESTS = 1500


class Setting:
    """The gunicorn instances (and HAProxy) of one setting; `port` is where wrk goes."""

    def __init__(self, name, env, work):
        self.name, self.servers, self.haproxy = name, [], None
        replica = "replica" in name and "no replica" not in name
        env = {**env, **({} if replica else {"DATABASE_REPLICA_URLS": ""})}
        for _ in range(2 if name.startswith("2") else 1):
            self.servers.append(Gunicorn("app:create_app()", env))
        self.port = self.servers[0].port
        if len(self.servers) > 1:
            self.port = self._balancer(work)

    def _balancer(self, work):
        port = free_port()
        lines = "\n".join(f"    server s{n} 127.0.0.1:{server.port}" for n, server in enumerate(self.servers))
        config = HAPROXY_CONFIG.format(port=port, stats=os.path.join(work, "haproxy.sock"), servers=lines)
        path = os.path.join(work, "haproxy.cfg")
        Path(path).write_text(config)
        self.haproxy = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if get(port, "/v1/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        return port

    def stop(self):
        if self.haproxy:
            self.haproxy.terminate()
            self.haproxy.wait(10)
        for server in self.servers:
            server.stop()


def past_settling(port, token, prefix):
    """A Redis that never kept positions looks like one that lost them: the first read holds reads on
    the primary for a position's lifetime (docs/replicas.md, Limits). The bench measures what follows."""
    store = redis.Redis.from_url(REDIS_URL)
    get(port, "/v1/buckets?per_page=1", token)
    while store.exists(f"{prefix}:wal:settling"):
        time.sleep(0.1)


def reads(cluster):
    return {role: int(cluster.query(role, APP_READS, database=DATABASE)) for role in ("primary", "replica1")}


def in_process_cost(cluster, env, paths, token):
    """Wall time per request through the Flask test client, without and with routing (microseconds),
    the two apps alternated in 5 batches, the best batch of each kept."""
    from app import create_app
    from app.extensions import db

    common = {
        "SQLALCHEMY_DATABASE_URI": cluster.url("primary", DATABASE),
        "SECRET_KEY": SECRET_KEY,
        "LOG_LEVEL": "ERROR",
        "RATELIMIT_ENABLED": False,
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": env["REDIS_KEY_PREFIX"],
    }
    apps = {
        "no replica": create_app("production", **common),
        "replica": create_app("production", **common, DATABASE_REPLICA_URLS=cluster.url("replica1", DATABASE)),
    }
    headers = {"Authorization": f"Bearer {token}"}
    best = {(name, path, clock): float("inf") for name in apps for path in paths for clock in ("cpu", "wall")}
    batch = IN_PROCESS_REQUESTS // 5
    for _ in range(5):
        for name, app in apps.items():
            client = app.test_client()
            for path in paths:
                for _ in range(50):  # warm: pools, caches, the replica's lag check
                    client.get(path, headers=headers)
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(batch):
                    assert client.get(path, headers=headers).status_code == 200
                spent = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
                for clock, seconds in spent.items():
                    best[name, path, clock] = min(best[name, path, clock], seconds / batch * 1e6)
    with apps["replica"].test_client() as client:
        identity = ("user", str(client.get("/v1/auth/me", headers=headers).json["user"]["id"]))
        best["choose"] = routing_cpu(apps["replica"], identity)
    for app in apps.values():
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
    return best


def routing_cpu(app, identity):
    """CPU microseconds of one `Router.choose`: the routing's whole work for a read (its lag checks
    and primary samples included, as often as they come), best of 5 runs of 20,000."""
    router, best = app.extensions["replicas"], float("inf")
    with app.app_context():
        for _ in range(5):
            cpu = time.process_time()
            for _ in range(20_000):
                router.choose(identity)
            best = min(best, (time.process_time() - cpu) / 20_000 * 1e6)
    return best


def compare_replicas(seconds, rounds):
    cluster = ReplicatedPostgres(replicas=1).start()
    settings = {}
    work = Path(cluster.work)
    try:
        cluster.create_database(DATABASE)
        env = dict(
            os.environ,
            APP_ENV="production",
            SECRET_KEY=SECRET_KEY,
            DATABASE_URL=cluster.url("primary", DATABASE),
            DATABASE_REPLICA_URLS=cluster.url("replica1", DATABASE),
            REDIS_URL=REDIS_URL,
            REDIS_KEY_PREFIX=f"bench-{uuid.uuid4().hex}",
            RATELIMIT_ENABLED="false",
            LOG_LEVEL="WARNING",
        )
        started = time.monotonic()
        for command in (["db", "upgrade"], ["seed", *SIZES["1k"], "--random-seed", "1", "--password", PASSWORD]):
            subprocess.run([BIN / "python", "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
        cluster.query("primary", "VACUUM ANALYZE", database=DATABASE)
        cluster.wait_for_replay()
        log(f"primary and replica built, 1k seeded, in {time.monotonic() - started:.0f} s")
        for name in SETTINGS:
            settings[name] = Setting(name, env, str(work))
        port = settings[SETTINGS[0]].port
        owner = login(port, OWNER)
        bucket = get(port, "/v1/buckets?per_page=1", owner)[1]["buckets"][0]["id"]
        past_settling(settings[SETTINGS[1]].port, owner, env["REDIS_KEY_PREFIX"])
        lines = {"list page 1": f"/v1/buckets?page=1&per_page={PER_PAGE}", "one bucket": f"/v1/buckets/{bucket}"}
        runs = {}
        for round_ in range(rounds):
            for line, path in lines.items():
                order = SETTINGS if (round_ + len(runs)) % 2 == 0 else tuple(reversed(SETTINGS))
                for name in order:
                    before = reads(cluster)
                    label = f"replica-{round_ + 1}-{slug(name)}-{slug(line)}"
                    result = wrk(settings[name].port, path, owner, seconds, label=label)
                    after = reads(cluster)
                    served = {role: after[role] - before[role] for role in after}
                    result["primary_share"] = served["primary"] / max(1, sum(served.values()))
                    runs.setdefault((name, line), []).append(result)
                    log(f"{name}, {line}: {result['rps']:.0f} req/s, primary share {result['primary_share']:.0%}")
        for setting in settings.values():
            setting.stop()
        settings.clear()
        in_process = in_process_cost(cluster, env, list(lines.values()), owner)
    finally:
        for setting in settings.values():
            setting.stop()
        cluster.stop()
    report(runs, lines, in_process, seconds, rounds)


def slug(text):
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def report(runs, lines, in_process, seconds, rounds):
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    out = [
        f"# Read replicas, {when}, load {os.getloadavg()[0]:.1f}",
        "",
        f"A primary and a streaming replica on this machine ({os.cpu_count()} cores), 1k data set; wrk -t2 -c16, "
        f"{seconds} s per line, each line {rounds} times, the settings alternated, the best round kept. "
        "Primary share: of the app's reads in that round, the share the primary ran (pg_stat_statements "
        "of both servers). × no replica: req/s against one instance without a replica.",
        "",
        "| setting | line | req/s | p50 ms | p99 ms | primary share of reads | × no replica | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for line in lines:
        base = max(runs[SETTINGS[0], line], key=lambda run: run["rps"])["rps"]
        for name in SETTINGS:
            best = max(runs[name, line], key=lambda run: run["rps"])
            shares = statistics.median(run["primary_share"] for run in runs[name, line])
            non2xx = sum(run["non2xx"] for run in runs[name, line])
            out.append(
                f"| {name} | {line} | {best['rps']:.0f} | {best['p50']:.2f} | {best['p99']:.2f} | {shares:.0%} "
                f"| {best['rps'] / base:.3f} | {non2xx} |"
            )
    out += [
        "",
        f"In process (Flask test client, one thread, {IN_PROCESS_REQUESTS} requests per app and line in 5 "
        "alternated batches, the best batch of each): the app process's CPU time per request (the "
        "routing's own work included: its poll of the subscription, its lag checks) and wall time "
        "(with every round trip's wait).",
        "",
        "| line | CPU µs, no replica | with the replica | routing's cost | wall µs, no replica | with the replica "
        "| routing's cost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for line, path in lines.items():
        cells = []
        for clock in ("cpu", "wall"):
            plain, routed = in_process["no replica", path, clock], in_process["replica", path, clock]
            cells.append(f"{plain:.0f} | {routed:.0f} | {(routed - plain) / plain:+.1%}")
        out.append(f"| {line} | " + " | ".join(cells) + " |")
    choose, bucket = in_process["choose"], in_process["no replica", lines["one bucket"], "cpu"]
    out += [
        "",
        f"The routing's own work per read (`Router.choose`, timed alone, best of 5 × 20,000): {choose:.1f} µs "
        f"of CPU, {choose / bucket:.1%} of a one-bucket request without replicas.",
    ]
    text = "\n".join(out) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "replicas.md").write_text(text)
    print(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bench/run.sh --replica: reads from a streaming replica")
    parser.add_argument("--replica", action="store_true", help="(bench/run.sh passes it on)")
    parser.add_argument("--seconds", type=int, default=4, help="per line, setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    compare_replicas(args.seconds, args.rounds)
