"""CPU instructions per request, counted by valgrind's callgrind: the Python cost of a request in
a figure that does not move with the machine's load (wall-clock ratios on a shared 2-core machine
do), for comparing one change with the next.

Usage: DATABASE_URL=postgresql://... .venv/bin/python bench/instructions.py [name,...]
(a database seeded with `manage.py seed`; valgrind from Debian). In-process (Flask's test client,
no HTTP server); counting is switched on only around the measured requests, so start-up and
warm-up are not in the figures. The database's own work is another process and not counted.
Writes bench/results/instructions.md.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 100
ENDPOINTS = {
    "index": ("/v1/", "demo"),
    "me": ("/v1/auth/me", "demo"),
    "one bucket": ("/v1/buckets/{bucket}", "demo"),
    "list page 1": ("/v1/buckets?page=1&per_page=20", "demo"),
    "items of one bucket": ("/v1/buckets/{bucket}/items?per_page=20", "demo"),
    "actors with filters": ("/v1/actors?gender=female&min_age=30&max_age=60&per_page=20", "admin"),
    "movies with casts": ("/v1/movies?per_page=20", "admin"),
}


def measure(names):
    """Runs inside valgrind: the requests, with counting on around each endpoint's batch."""
    sys.path.insert(0, str(ROOT))
    from app import create_app

    app = create_app("production", SECRET_KEY="i" * 48, RATELIMIT_ENABLED=False, LOG_LEVEL="ERROR")
    client = app.test_client()
    headers = {}
    for who in ("demo", "admin"):
        login = client.post("/v1/auth/login", json={"email": f"{who}@example.com", "password": "password123"})
        headers[who] = {"Authorization": f"Bearer {login.json['auth_token']}"}
    bucket = client.get("/v1/buckets?per_page=1", headers=headers["demo"]).json["buckets"][0]["id"]
    pid = str(os.getpid())
    for name in names:
        path, who = ENDPOINTS[name]
        path = path.format(bucket=bucket)
        for _ in range(20):
            assert client.get(path, headers=headers[who]).status_code == 200, path
        subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
        for _ in range(REQUESTS):
            client.get(path, headers=headers[who])
        subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True, check=True)
        subprocess.run(["callgrind_control", "-d", name.replace(" ", "_"), pid], capture_output=True, check=True)


def main(names):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                sys.executable,
                __file__,
                "--inside",
                ",".join(names),
            ],
            cwd=out,
            env=dict(os.environ, PYTHONMALLOC="malloc"),
            capture_output=True,
            check=True,
        )
        counts = {}
        for dump in Path(out).glob("callgrind.out.*.*"):
            text = dump.read_text(errors="replace")
            name = re.search(r"^desc: Trigger: dump (\S+)", text, re.M).group(1).replace("_", " ")
            counts[name] = int(re.search(r"^totals: (\d+)", text, re.M).group(1)) / REQUESTS
    lines = ["| endpoint | instructions per request (millions) |", "|---|---:|"]
    lines += [f"| {name} | {counts[name] / 1e6:.2f} |" for name in names]
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "instructions.md").write_text(text)
    print(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inside"]:
        measure(sys.argv[2].split(","))
    else:
        main(sys.argv[1].split(",") if len(sys.argv) > 1 else list(ENDPOINTS))
