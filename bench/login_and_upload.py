"""Times the two costs the closing note asks for, through the real app and database:
one login at bcrypt cost 12, and one upload request of ten 2-megapixel JPEGs.

Usage: DATABASE_URL=... python bench/login_and_upload.py   (default: a temporary SQLite file)
"""

import io
import os
import random
import sys
import tempfile
import time

import flask_migrate
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import User  # noqa: E402

PASSWORD = "benchmark password"


def photo(seed, size=(1920, 1080)):
    """A noisy 2-megapixel JPEG, closer to a photo than a flat colour."""
    rng = random.Random(seed)
    small = Image.frombytes("RGB", (192, 108), bytes(rng.getrandbits(8) for _ in range(192 * 108 * 3)))
    out = io.BytesIO()
    small.resize(size, Image.BICUBIC).save(out, format="JPEG", quality=90)
    return out.getvalue()


def main():
    workdir = tempfile.mkdtemp(prefix="bench-")
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.db"
    app = create_app(
        "production",
        SECRET_KEY="b" * 48,
        SQLALCHEMY_DATABASE_URI=url,
        UPLOAD_DIR=f"{workdir}/uploads",
        RATELIMIT_ENABLED=False,
        BCRYPT_ROUNDS=12,
        LOG_LEVEL="WARNING",
    )
    client = app.test_client()
    with app.app_context():
        flask_migrate.upgrade()
    email = f"bench-{time.time_ns()}@example.com"
    client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        timings.append(time.perf_counter() - start)
        assert response.status_code == 200, response.json
    print(f"login at bcrypt cost 12: median {sorted(timings)[2] * 1000:.0f} ms over 5 logins")

    with app.app_context():
        user = db.session.scalars(db.select(User).where(User.email == email)).one()
        user.role = "admin"
        db.session.commit()
    token = response.json["auth_token"]
    files = [photo(n) for n in range(10)]
    data = {"images": [(io.BytesIO(content), f"photo{n}.jpg", "image/jpeg") for n, content in enumerate(files)]}
    start = time.perf_counter()
    response = client.post(
        "/v1/images", data=data, content_type="multipart/form-data", headers={"Authorization": f"Bearer {token}"}
    )
    elapsed = time.perf_counter() - start
    assert response.status_code == 201, response.json
    megabytes = sum(map(len, files)) / 1e6
    print(f"upload of ten 1920x1080 JPEGs ({megabytes:.1f} MB) in one request: {elapsed * 1000:.0f} ms")


if __name__ == "__main__":
    main()
