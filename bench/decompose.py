"""Where the CPU of one bucket's GET goes: the app's own Python, and each way of reaching the database.

Usage: DATABASE_URL=postgresql://... .venv/bin/python bench/decompose.py   (seeded with `manage.py seed`)

Each line serves `GET /v1/buckets/<id>` through a WSGI callable in this process (the same environ
every time, no HTTP server), best of 3 x 2,000 requests by this process's CPU clock, beside the
CPU that PostgreSQL's backends spent per request (their /proc/<pid>/stat, so it must run on the
database's machine). The variants change only how the request's two statements (the token's user,
the bucket) are run, so the difference between two lines is what that way of running them costs:

- as shipped: the ORM, as app/ does;
- Core rows: the same statements by SQLAlchemy Core on the session's connection, rows as mappings;
- raw DBAPI: the same SQL on the session's own psycopg2 connection (SQLAlchemy's pool and session
  around it, nothing else of it);
- answered from memory: no statement at all (the session is never opened).

Beside them, list page 1 as shipped, hello-world (bench/hello.py), and the shared/bench yardstick
(raw psycopg2, one connection per worker, no session) on both reads. Writes
bench/results/decompose.md.
"""

import importlib.util
import os
import sys
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import psycopg2
from sqlalchemy import bindparam, select
from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import auth, create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Bucket, RevokedToken, User, UserSession  # noqa: E402
from app.services import buckets  # noqa: E402

REQUESTS, ROUNDS = 2000, 3
FLOOR = Path(os.environ.get("BENCH_FLOOR_DIR", ROOT.parent / "shared" / "bench")) / "ceiling_db.py"
USERS, REVOKED, BUCKETS = User.__table__, RevokedToken.__table__, Bucket.__table__
SESSIONS = UserSession.__table__
# The app's two statements (app.auth.TOKEN_USER, app.services.buckets.OWNED_BUCKET) on the tables.
TOKEN_USER = select(
    USERS,
    select(REVOKED.c.id).where(REVOKED.c.jti == bindparam("jti")).exists().label("is_revoked"),
    select(SESSIONS.c.id)
    .where(SESSIONS.c.id == bindparam("sid"), SESSIONS.c.user_id == bindparam("user_id"))
    .exists()
    .label("session_live"),
).where(USERS.c.id == bindparam("user_id"))
OWNED_BUCKET = select(BUCKETS).where(
    BUCKETS.c.id == bindparam("bucket_id"), BUCKETS.c.owner_id == bindparam("owner_id")
)


class BucketRow(dict):
    """A bucket as a mapping: what the API would answer and hash if it read rows, not entities."""


def _user(row, claims):
    if row is None or row["is_revoked"] or not row["session_live"] or row["token_version"] != claims["ver"]:
        raise auth.unauthorized(auth.MSG_REVOKED)
    return SimpleNamespace(id=row["id"])


def _params(claims):
    return {"jti": claims["jti"], "user_id": int(claims["sub"]), "sid": claims["sid"]}


def core_user(claims):
    return _user(db.session.connection().execute(TOKEN_USER, _params(claims)).mappings().first(), claims)


def core_bucket(bucket_id, owner):
    params = {"bucket_id": bucket_id, "owner_id": owner.id}
    return BucketRow(db.session.connection().execute(OWNED_BUCKET, params).mappings().first())


@lru_cache
def _sql(stmt, dialect):
    return str(stmt.compile(dialect=dialect))


def _raw(stmt, params):
    """The statement's SQL for psycopg2, compiled by SQLAlchemy once, run on the pooled connection."""
    connection = db.session.connection()
    with connection.connection.dbapi_connection.cursor() as cursor:
        cursor.execute(_sql(stmt, connection.dialect), params)
        names = [column.name for column in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def raw_user(claims):
    return _user(_raw(TOKEN_USER, _params(claims)), claims)


def raw_bucket(bucket_id, owner):
    return BucketRow(_raw(OWNED_BUCKET, {"bucket_id": bucket_id, "owner_id": owner.id}))


def memory(app, params):
    """The user and the bucket `params` name, read once, then handed to every request."""
    with app.app_context():
        bucket = BucketRow(db.session.connection().execute(OWNED_BUCKET, params).mappings().first())
        db.session.close()
    user = SimpleNamespace(id=params["owner_id"])
    return (lambda _claims: user), (lambda _bucket_id, _owner: bucket)


def _bucket_params(owner_id):
    first = select(BUCKETS.c.id).where(BUCKETS.c.owner_id == owner_id).order_by(BUCKETS.c.id).limit(1)
    return {"bucket_id": db.session.scalar(first), "owner_id": owner_id}


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def _backends(dsn):
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute(BACKENDS)
            return [pid for (pid,) in cursor.fetchall()]
    finally:
        connection.close()


def _cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serve(wsgi, environ, count):
    for _ in range(count):
        for _chunk in wsgi(dict(environ), lambda *_args: None):
            pass


def measure(wsgi, environ, dsn):
    """(ms of this process's CPU, ms of PostgreSQL's CPU) per request."""
    _serve(wsgi, environ, 200)
    pids = _backends(dsn)
    before = {pid: _cpu_seconds(pid) for pid in pids}
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time()
        _serve(wsgi, environ, REQUESTS)
        best = min(best, (time.process_time() - started) / REQUESTS * 1000)
    database = sum(_cpu_seconds(pid) - before[pid] for pid in pids) / (ROUNDS * REQUESTS) * 1000
    return best, database


def main():
    dsn = os.environ["DATABASE_URL"].replace("postgresql+psycopg2://", "postgresql://")
    os.environ.setdefault("SECRET_KEY", "d" * 48)
    app = create_app("production", RATELIMIT_ENABLED=False, LOG_LEVEL="ERROR")
    login = app.test_client().post("/v1/auth/login", json={"email": "demo@example.com", "password": "password123"})
    token = login.json["auth_token"]
    with app.app_context():
        params = _bucket_params(int(auth.decode_token(token, auth.ACCESS)["sub"]))
    headers = {"Authorization": f"Bearer {token}"}
    environ = _environ(f"/v1/buckets/{params['bucket_id']}", headers)
    list_environ = _environ("/v1/buckets?page=1&per_page=20", headers)
    shipped = auth.load_token_user, buckets.owned_bucket
    variants = {
        "as shipped (ORM)": shipped,
        "Core rows": (core_user, core_bucket),
        "raw DBAPI through the pool": (raw_user, raw_bucket),
        "answered from memory": memory(app, params),
    }
    lines = []
    for name, (load_user, load_bucket) in variants.items():
        auth.load_token_user, buckets.owned_bucket = load_user, load_bucket
        assert app.test_client().get(environ["PATH_INFO"], headers=headers).status_code == 200
        lines.append((f"one bucket: API, {name}", *measure(app, environ, dsn)))
    auth.load_token_user, buckets.owned_bucket = shipped
    lines.append(("list page 1: API, as shipped (ORM)", *measure(app, list_environ, dsn)))
    lines.append(("hello-world", *measure(_load(ROOT / "bench" / "hello.py", "hello").app, _environ("/"), dsn)))
    if FLOOR.exists():
        floor = _load(FLOOR, "floor").app
        lines.append(("one bucket: shared/bench yardstick (raw psycopg2)", *measure(floor, environ, dsn)))
        lines.append(("list page 1: shared/bench yardstick (raw psycopg2)", *measure(floor, list_environ, dsn)))
    write(lines)


def _environ(path, headers=None):
    path, _, query = path.partition("?")
    return EnvironBuilder(path=path, query_string=query, headers=headers).get_environ()


def write(lines):
    table = ["| request, served by | app CPU ms | PostgreSQL CPU ms |", "|---|---:|---:|"]
    table += [f"| {name} | {app_ms:.3f} | {database_ms:.3f} |" for name, app_ms, database_ms in lines]
    when = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}"
    heading = f"# CPU per request, in process, {when}"
    text = "\n".join([heading, "", *table, ""])
    (ROOT / "bench" / "results" / "decompose.md").write_text(text)
    print(text)


if __name__ == "__main__":
    os.environ.setdefault("APP_ENV", "production")
    main()
