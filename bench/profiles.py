"""Profiles of a list and a single GET, in-process on a seeded PostgreSQL database.

Usage: DATABASE_URL=postgresql://... .venv/bin/python bench/profiles.py   (seeded with `manage.py seed`)
Writes bench/results/profile-list.txt and profile-one.txt: cProfile timed by this process's CPU
clock, so the time spent waiting on PostgreSQL or on other jobs of a shared machine is left out
and what remains is the Python of a request. For a figure that does not move with the machine's
load, see bench/instructions.py.
"""

import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402

REQUESTS = 1000


def main():
    app = create_app("production", SECRET_KEY="p" * 48, RATELIMIT_ENABLED=False, LOG_LEVEL="ERROR")
    client = app.test_client()
    token = client.post("/v1/auth/login", json={"email": "demo@example.com", "password": "password123"}).json
    headers = {"Authorization": f"Bearer {token['auth_token']}"}
    first = client.get("/v1/buckets?per_page=20", headers=headers).json["buckets"][0]["id"]
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    for name, path in (("list", "/v1/buckets?page=1&per_page=20"), ("one", f"/v1/buckets/{first}")):
        for _ in range(50):
            client.get(path, headers=headers)
        profiler = cProfile.Profile(time.process_time)
        started = time.process_time()
        profiler.enable()
        for _ in range(REQUESTS):
            assert client.get(path, headers=headers).status_code == 200
        profiler.disable()
        cpu = (time.process_time() - started) / REQUESTS * 1000
        report = io.StringIO()
        report.write(f"GET {path}: {cpu:.2f} ms of CPU per request under the profiler, {REQUESTS} requests\n\n")
        pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(60)
        (out / f"profile-{name}.txt").write_text(report.getvalue().replace(str(ROOT) + "/", ""))
        print(f"{name}: {cpu:.2f} ms of CPU per request (in-process, profiled)")


if __name__ == "__main__":
    os.environ.setdefault("APP_ENV", "production")
    main()
