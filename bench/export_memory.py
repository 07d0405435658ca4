"""Peak memory of a gunicorn worker streaming GET /v1/auth/me/export, for a small account and a big one.

A live server (tests/liveserver.py: production settings, gunicorn.conf.py, one worker) on a fresh
PostgreSQL database; the big account (by default 100k buckets of 10 items: 1M items) is seeded with
set-based INSERTs, not through the API. Each export is read to its end by a client that keeps only a
running count and the last bytes; the worker's peak resident memory is its VmHWM (/proc), read after
the small export and again after the big one (VmHWM only grows: the second figure is the big export's
peak, the first is what a worker needs anyway); beside it, the worker's CPU time for each export.

Usage: TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python bench/export_memory.py
       [--buckets 100000] [--items-per-bucket 10] [--out bench/results/export-memory.md]
"""

import argparse
import http.client
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.liveserver import IS_POSTGRES, LiveServer  # noqa: E402

SEED = [
    "INSERT INTO buckets (owner_id, name, name_key, item_count, created_at, modified_at) "
    "SELECT :owner, 'bucket ' || g, 'bucket ' || g, :per_bucket, now(), now() FROM generate_series(1, :buckets) g",
    "INSERT INTO items (bucket_id, name, description, done, created_at, modified_at) "
    "SELECT b.id, 'item ' || g, 'something worth doing before the year is out', g % 3 = 0, now(), now() "
    "FROM buckets b CROSS JOIN generate_series(1, :per_bucket) g WHERE b.owner_id = :owner",
    "UPDATE users SET bucket_count = :buckets WHERE id = :owner",
]


def worker_pid(master_pid):
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker, found {children}")
    return int(children[0])


def peak_rss_mib(pid):
    """The process's peak resident set size so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid):
    """User and system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export(server, headers):
    """Read one export to its end: (status, bytes, seconds, the body's last bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    start = time.perf_counter()
    connection.request("GET", "/v1/auth/me/export", headers=headers)
    response = connection.getresponse()
    size, tail = 0, b""
    while chunk := response.read(1 << 20):
        size += len(chunk)
        tail = (tail + chunk)[-64:]
    seconds = time.perf_counter() - start
    connection.close()
    return response.status, size, seconds, tail


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buckets", type=int, default=100_000)
    parser.add_argument("--items-per-bucket", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the results table (markdown) here")
    args = parser.parse_args()
    if not IS_POSTGRES:
        sys.exit("set TEST_DATABASE_URL to a PostgreSQL server")
    server = LiveServer(workers=1).start()
    try:
        small_id, small = server.account()
        big_id, big = server.account()
        for n in range(3):
            server.request("POST", "/v1/buckets", json={"name": f"few {n}"}, headers=small)
        started = time.perf_counter()
        params = {"owner": big_id, "buckets": args.buckets, "per_bucket": args.items_per_bucket}
        for statement in SEED:
            server.execute(statement, **params)
        server.execute("ANALYZE")
        seeded = time.perf_counter() - started
        items = server.scalar(
            "SELECT count(*) FROM items i JOIN buckets b ON b.id = i.bucket_id WHERE b.owner_id = :o", o=big_id
        )
        pid = worker_pid(server.process.pid)
        rows = [("worker after start-up and two registrations", None, None, None, peak_rss_mib(pid))]
        for label, headers in (("small account (3 buckets)", small), (f"{args.buckets} buckets, {items} items", big)):
            cpu = cpu_seconds(pid)
            status, size, seconds, tail = export(server, headers)
            if status != 200 or not tail.endswith(b'"success":true}'):
                raise RuntimeError(f"{label}: {status} ...{tail!r}")
            rows.append((label, size, seconds, cpu_seconds(pid) - cpu, peak_rss_mib(pid)))
        json.loads(server.request("GET", "/v1/auth/me/export", headers=small).raw)  # whole, it parses
    finally:
        server.stop()
    lines = [
        f"Seeded {items} items in {args.buckets} buckets with set-based INSERTs in {seeded:.0f} s.",
        "",
        "| export | body | time | worker CPU | worker peak RSS (VmHWM) |",
        "|---|---|---|---|---|",
    ]
    for label, size, seconds, cpu, peak in rows:
        body = "" if size is None else f"{size / (1 << 20):.1f} MiB" if size > 1 << 20 else f"{size} B"
        took = "" if seconds is None else f"{seconds:.1f} s"
        used = "" if cpu is None else f"{cpu:.1f} s"
        lines.append(f"| {label} | {body} | {took} | {used} | {peak:.1f} MiB |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
