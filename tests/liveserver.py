"""A live gunicorn on a fresh PostgreSQL database, for race and fault tests.

    def tearDownModule():
        stop_shared_server()

    class MyRace(LiveServerTestCase):
        server_env = {"RATELIMIT_STORAGE_URI": "redis://..."}   # optional overrides

        def test_x(self):
            user_id, headers = self.server.account("admin")
            answers = self.server.fire(20, "POST", "/v1/auth/logout", headers=headers)
            self.assertNo5xx(answers)
            self.assertEqual(self.server.scalar("SELECT count(*) FROM revoked_tokens WHERE user_id = :u", u=user_id), 1)

The server runs in production mode (a random SECRET_KEY, gthread workers, gunicorn.conf.py) on a
free loopback port, against a database created and migrated for it and dropped afterwards.
Only bcrypt's cost is lowered (BCRYPT_ROUNDS=4) so that making accounts stays fast.
These tests need TEST_DATABASE_URL (PostgreSQL); on SQLite they are skipped. `RaceTestCase` runs its
races on both: against the live gunicorn on PostgreSQL, and on SQLite against an `InProcessServer`
(the same interface: threads through the Flask test client, each request in an app context of its
own, as a served request is).
"""

import ctypes
import json as jsonlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from app.extensions import db
from tests.helpers import empty_tables, free_port, in_parallel, make_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
IS_POSTGRES = TEST_DATABASE_URL.startswith("postgres")
PASSWORD = "correct horse battery"
SKIP_REASON = "live-server tests need PostgreSQL (set TEST_DATABASE_URL)"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _with_database(url, name):
    from config import normalize_database_url

    parts = urlsplit(normalize_database_url(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Answer:
    """One HTTP answer: status, headers (lower-case names) and the body, parsed when it is JSON."""

    status: int
    headers: dict
    raw: bytes
    json: object = field(default=None)

    @property
    def message(self):
        return self.json.get("message") if isinstance(self.json, dict) else None


class Concurrent:
    """Requests at once, accounts and SQL, for any server with `request(method, path, **kwargs)` and `engine`."""

    def fire(self, n, method, path, **kwargs):
        """The same request n times at once."""
        return self.at_once([(method, path, kwargs)] * n)

    def at_once(self, requests):
        """Send (method, path, kwargs) requests from one thread each, released together.

        Returns the answers in the order given; a connection error is an Answer with status 0.
        """
        barrier = threading.Barrier(len(requests))
        answers = [None] * len(requests)

        def send(index, method, path, kwargs):
            barrier.wait()
            try:
                answers[index] = self.request(method, path, **kwargs)
            except OSError as error:
                answers[index] = Answer(0, {}, str(error).encode())

        in_parallel(send, [(i, *r) for i, r in enumerate(requests)])
        return answers

    def account(self, role="user", email=None):
        """A new account with `role`: (user_id, Authorization headers)."""
        email = email or f"{uuid.uuid4().hex[:16]}@example.com"
        answer = self.request("POST", "/v1/auth/register", {"email": email, "password": PASSWORD})
        if answer.status != 201:
            raise AssertionError(f"register: {answer.status} {answer.raw[:300]!r}")
        user_id = answer.json["user"]["id"]
        if role != "user":
            self.execute("UPDATE users SET role = :role WHERE id = :id", role=role, id=user_id)
        return user_id, bearer(answer.json["auth_token"])

    def tokens(self, email):
        """A fresh login of `email`: the login answer's body."""
        return self.request("POST", "/v1/auth/login", {"email": email, "password": PASSWORD}).json

    def scalar(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql, **params):
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def execute(self, sql, **params):
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)


class LiveServer(Concurrent):
    def __init__(self, env=None, workers=2, threads=None, access_log=False, database_of=None):
        """`threads` per worker: gunicorn.conf.py's unless given; `access_log`: gunicorn's access
        lines go to the log (see log()) instead of /dev/null. `database_of` another LiveServer: a
        second instance on its database (which that one creates and drops)."""
        self.env_overrides = dict(env or {})
        self.workers, self.threads = workers, threads
        self.access_log = access_log
        self.owns_database = database_of is None
        self.database = database_of.database if database_of else f"api_live_{uuid.uuid4().hex[:12]}"
        self.database_url = _with_database(TEST_DATABASE_URL, self.database)
        # One key for the server's life (restarts too), shared by an instance on the same database.
        self.secret_key = database_of.secret_key if database_of else secrets.token_urlsafe(48)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = tempfile.mkdtemp(prefix="api-live-")
        self.log_path = os.path.join(self.workdir, "gunicorn.log")
        self.process = None
        self.engine = None

    # -- lifecycle ------------------------------------------------------------

    @property
    def env(self):
        env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "COVERAGE_FILE")}
        env.update(
            APP_ENV="production",
            SECRET_KEY=self.secret_key,
            DATABASE_URL=self.database_url,
            BCRYPT_ROUNDS="4",
            UPLOAD_DIR=os.path.join(self.workdir, "uploads"),
            LOG_LEVEL="WARNING",
            RATELIMIT_STORAGE_URI="memory://",
            # Production runs one request per worker at a time; races are the point here, so four.
            FAIR_SLOTS="4",
        )
        env.update(self.env_overrides)
        return env

    def start(self):
        if self.owns_database:
            self._admin(f'CREATE DATABASE "{self.database}"')
        self.engine = create_engine(self.database_url, poolclass=NullPool)  # holds no idle connection
        if self.owns_database:
            subprocess.run(
                [sys.executable, "manage.py", "db", "upgrade"], cwd=ROOT, env=self.env, check=True, capture_output=True
            )
        self._launch()
        return self

    def restart(self):
        """Stop gunicorn (SIGTERM, as a deployment does) and start it again on the same database."""
        self._terminate()
        self._launch()

    def _launch(self):
        env = self.env
        command = [os.path.join(BIN, "gunicorn"), "-c", os.path.join(ROOT, "gunicorn.conf.py")]
        command += ["--workers", str(self.workers)] + (["--threads", str(self.threads)] if self.threads else [])
        access_log = "-" if self.access_log else "/dev/null"
        command += ["--bind", f"127.0.0.1:{self.port}", "--access-logfile", access_log, "app:create_app()"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()  # else a server that never came up outlives the test, holding its connections
            raise

    def _wait_until_up(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log()}")
            try:
                if self.request("GET", "/v1/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer within {seconds} s:\n{self.log()}")

    def _terminate(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self):
        self._terminate()
        if self.engine is not None:
            self.engine.dispose()
        if self.owns_database:
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", self.workdir], check=False)

    def _admin(self, statement):
        engine = create_engine(_with_database(TEST_DATABASE_URL, "postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    # -- HTTP -----------------------------------------------------------------

    def request(self, method, path, json=None, headers=None, data=None, timeout=30):
        """One request; never raises for an HTTP status."""
        headers = dict(headers or {})
        if json is not None:
            data = jsonlib.dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return _answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return _answer(error.code, error.headers, error.read())


class InProcessServer(Concurrent):
    """The app in this process on the test database (SQLite), with LiveServer's interface."""

    def __init__(self):
        self.app = make_app(FAIR_SLOTS=4)  # as LiveServer: several requests of a worker at once
        with self.app.app_context():
            self.engine = db.engine

    def request(self, method, path, json=None, headers=None, data=None, timeout=None):
        with self.app.app_context():  # a session of its own, closed when the request ends
            response = self.app.test_client().open(path, method=method, json=json, headers=headers, data=data)
            return _answer(response.status_code, response.headers, response.get_data())

    def log(self):
        return ""


def _die_with_parent():
    """In the child before exec: if the test process dies (killed, timed out), so does gunicorn,
    instead of living on with its database connections."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _answer(status, headers, raw):
    headers = {name.lower(): value for name, value in headers.items()}
    body = None
    if headers.get("content-type", "").startswith("application/json"):
        try:
            body = jsonlib.loads(raw)
        except ValueError:
            body = None
    return Answer(status, headers, raw, body)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


_shared = {}


def shared_server():
    """The default server, shared by the test classes of a module that override nothing."""
    if "server" not in _shared:
        _shared["server"] = LiveServer().start()
    return _shared["server"]


def stop_shared_server():
    """Call from the module's tearDownModule: the server and its database connections go."""
    server = _shared.pop("server", None)
    if server is not None:
        server.stop()


class ServerAssertions:
    def assertNo5xx(self, answers):
        """No answer is a server error, every answer is JSON, and the server logged no traceback."""
        bad = [(a.status, a.raw[:200]) for a in answers if a.status >= 500 or a.status == 0 or a.json is None]
        self.assertEqual(bad, [], f"server errors; log:\n{self.server.log()[-3000:]}")
        self.assertNotIn("Traceback", self.server.log())

    def assertStatuses(self, answers, allowed):
        self.assertNo5xx(answers)
        unexpected = [(a.status, a.message) for a in answers if a.status not in allowed]
        self.assertEqual(unexpected, [])


@unittest.skipUnless(IS_POSTGRES, SKIP_REASON)
class LiveServerTestCase(ServerAssertions, unittest.TestCase):
    """A live server for the class: the module's shared one (stop it in tearDownModule), or
    its own when `server_env` or the worker counts override anything. Tests check invariants
    on their own rows."""

    server_env = {}
    server_workers = 2
    server_threads = 8
    server_access_log = False

    @classmethod
    def _own_server(cls):
        return bool(cls.server_env) or (cls.server_workers, cls.server_threads, cls.server_access_log) != (2, 8, False)

    @classmethod
    def setUpClass(cls):
        if cls._own_server():
            server = LiveServer(cls.server_env, cls.server_workers, cls.server_threads, cls.server_access_log)
            cls.server = server.start()
        else:
            cls.server = shared_server()

    @classmethod
    def tearDownClass(cls):
        if cls._own_server():
            cls.server.stop()


class RaceTestCase(ServerAssertions, unittest.TestCase):
    """Races on either database: the module's shared live gunicorn on PostgreSQL (stop it in
    tearDownModule), the app in this process on SQLite (its tables emptied after each test)."""

    @classmethod
    def setUpClass(cls):
        cls.server = shared_server() if IS_POSTGRES else InProcessServer()

    def tearDown(self):
        if not IS_POSTGRES:
            with self.server.app.app_context():
                empty_tables()
