"""Profiles (pyinstrument) of a list and a single GET, in-process on a seeded PostgreSQL database.

Usage: DATABASE_URL=postgresql://... .venv/bin/python bench/profile.py   (seeded with `manage.py seed`)
Writes bench/results/profile-list.txt and profile-one.txt: where the Python time of
a request goes, once the database round trips are out of the way.
"""

import os
import sys
from pathlib import Path

from pyinstrument import Profiler

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
    for name, path in (("list", "/v1/buckets?per_page=20"), ("one", f"/v1/buckets/{first}")):
        for _ in range(50):
            client.get(path, headers=headers)
        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(REQUESTS):
            assert client.get(path, headers=headers).status_code == 200
        profiler.stop()
        (out / f"profile-{name}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
        print(f"{name}: {profiler.last_session.duration / REQUESTS * 1000:.2f} ms per request (in-process)")


if __name__ == "__main__":
    os.environ.setdefault("APP_ENV", "production")
    main()
