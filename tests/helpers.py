"""Shared fixtures: a migrated database, apps, accounts and small factories.

Tests run against SQLite by default and against PostgreSQL when
TEST_DATABASE_URL is set. The schema is built once per run by the
migrations (never by create_all), and every table is emptied after each test.
"""

import atexit
import io
import itertools
import os
import shutil
import socket
import tempfile
import threading
import time
import unittest
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import flask_migrate
from flask import has_app_context
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import create_engine, event, func, select, text

from app import create_app, mail
from app.extensions import db
from app.models import Actor, ActorTally, User

_TMP = tempfile.mkdtemp(prefix="api-tests-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)

DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_TMP}/test.db"
IS_POSTGRES = DATABASE_URL.startswith("postgres")
PASSWORD = "correct horse battery"
# Flask-Limiter keeps the first app's key prefix for every later app in the process:
# every test that enables rate limits uses this one, unique to the run.
RATELIMIT_TEST_PREFIX = f"ratelimit-test-{uuid.uuid4().hex}"

BASE_CONFIG = {
    "SQLALCHEMY_DATABASE_URI": DATABASE_URL,
    "UPLOAD_DIR": os.path.join(_TMP, "uploads"),
    "RATELIMIT_ENABLED": False,
    "RATELIMIT_STORAGE_URI": "memory://",
    "BCRYPT_ROUNDS": 4,
    "LOG_LEVEL": "CRITICAL",
}

# For test classes whose requests must really run at once (APITestCase.concurrently): no
# fair-admission gate, so every thread reaches the database.
CONCURRENT = {"FAIR_SLOTS": 0}

_state = {"migrated": False, "app": None}


def _reset_schema():
    from config import normalize_database_url

    if IS_POSTGRES:
        engine = create_engine(normalize_database_url(DATABASE_URL))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()


class OwnTransactionClient(FlaskClient):
    """A test client whose every request is its own unit of work, as a real client's is.

    A test pushes an app context and its requests run in it, so they share the test's session:
    whatever the test's own code left open there is committed first, and the request begins
    its own transaction (app.transactions)."""

    def open(self, *args, **kwargs):
        if has_app_context() and db.session.registry.has() and db.session().in_transaction():
            db.session.commit()
        return super().open(*args, **kwargs)


def make_app(**overrides):
    """A testing app on the test database, migrated once per run."""
    app = create_app("testing", **{**BASE_CONFIG, **overrides})
    app.test_client_class = OwnTransactionClient
    if not _state["migrated"]:
        _reset_schema()
        with app.app_context():
            flask_migrate.upgrade()
        _state["migrated"] = True
    return app


def shared_app():
    if _state["app"] is None:
        _state["app"] = make_app()
    return _state["app"]


@contextmanager
def fresh_database():
    """The URL of a new, empty database of the kind under test (dropped afterwards)."""
    from tests.liveserver import LiveServer  # it imports this module

    if IS_POSTGRES:
        server = LiveServer()
        server._admin(f'CREATE DATABASE "{server.database}"')
        try:
            yield server.database_url
        finally:
            server.stop()
    else:
        with tempfile.TemporaryDirectory(prefix="api-fresh-", dir=_TMP) as directory:
            yield f"sqlite:///{directory}/fresh.db"


def empty_tables():
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


class APITestCase(unittest.TestCase):
    """Each test gets a client on the shared app and leaves the tables empty."""

    app_overrides = None

    def setUp(self):
        self.app = make_app(**self.app_overrides) if self.app_overrides else shared_app()
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.client = self.app.test_client()

    def tearDown(self):
        db.session.rollback()
        empty_tables()
        db.session.remove()
        if self.app_overrides:
            db.engine.dispose()
        self.ctx.pop()

    # -- accounts ------------------------------------------------------------

    def register(self, email=None, password=PASSWORD):
        email = email or f"user{next(_counter)}@example.com"
        response = self.client.post("/v1/auth/register", json={"email": email, "password": password})
        self.assertEqual(response.status_code, 201, response.json)
        return response.json

    def account(self, role="user", email=None):
        """A registered account with `role`: returns (user_id, headers)."""
        body = self.register(email)
        user_id = body["user"]["id"]
        if role != "user":
            user = db.session.get(User, user_id)
            user.role = role
            db.session.commit()
        return user_id, bearer(body["auth_token"])

    def headers_for(self, role="user"):
        return self.account(role)[1]

    # -- concurrency ---------------------------------------------------------

    def concurrently(self, n, send):
        """`send(client, index)` on n threads at once (each its own test client, all released
        together by a barrier); the responses, in index order. The app's fair-admission gate must
        let them run at once (`app_overrides = CONCURRENT`): one slot would serialize them, and the
        race would never happen."""
        slots = self.app.config["FAIR_SLOTS"]
        if 0 < slots < n:
            raise AssertionError(f"{n} concurrent requests through {slots} fair-admission slot(s) never race")
        barrier = threading.Barrier(n)
        responses = [None] * n

        def worker(index):
            with self.app.app_context():
                client = self.app.test_client()
                barrier.wait()
                responses[index] = send(client, index)

        in_parallel(worker, [(index,) for index in range(n)])
        return responses

    # -- assertions ----------------------------------------------------------

    def assertError(self, response, status, message=None):
        self.assertEqual(response.status_code, status, response.get_data(as_text=True)[:500])
        self.assertEqual(response.mimetype, "application/json")
        body = response.json
        self.assertIs(body["success"], False)
        self.assertEqual(body["error"], status)
        self.assertIsInstance(body["message"], str)
        if message is not None:
            self.assertEqual(body["message"], message)
        return body

    def assertFieldError(self, response, field, status=422):
        body = self.assertError(response, status)
        self.assertIn(field, body.get("errors", {}), body)
        return body


class MailTestCase(APITestCase):
    """Mail goes to a real SMTP server on loopback (`self.sink`, tests/smtp_sink.py), sent by the
    app's own sender thread, on a database of the class's own: any sender takes any due mail of
    its database (as instances do), so on the shared one another test app's sender could take
    this class's mail. Retries come quickly (MAIL_RETRY_SECONDS)."""

    mail_settings = {}

    @classmethod
    def setUpClass(cls):
        from tests.smtp_sink import SmtpSink  # it imports this module

        url = cls.enterClassContext(fresh_database())
        cls.sink = SmtpSink().start()
        cls.addClassCleanup(cls.sink.stop)
        settings = {"SQLALCHEMY_DATABASE_URI": url, "SMTP_URL": cls.sink.url, "MAIL_RETRY_SECONDS": 0.2}
        cls.mail_app = create_app("testing", **{**BASE_CONFIG, **settings, **cls.mail_settings})
        with cls.mail_app.app_context():
            flask_migrate.upgrade()
        mail.start_sender(cls.mail_app)  # as gunicorn's worker does (tests write mail outside requests too)
        cls.addClassCleanup(cls._close_app)

    @classmethod
    def _close_app(cls):
        cls.mail_app.extensions["mail"].stop()
        with cls.mail_app.app_context():
            db.engine.dispose()

    def setUp(self):
        self.app = self.mail_app
        self.ctx = self.app.app_context()
        self.ctx.push()
        self.client = self.app.test_client()

    def new_address(self):
        return f"mail{next(_counter)}@example.com"

    def wait_until(self, condition, timeout=15):
        deadline = time.monotonic() + timeout
        while not condition():
            self.assertLess(time.monotonic(), deadline, "not so within the time allowed")
            time.sleep(0.05)

    def mails_to(self, address, count=1, timeout=15):
        """The mails that reached `address`, once there are `count` (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while len(mails := self.sink.to(address)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(mails)} of {count} mails reached {address} within {timeout} s")
            time.sleep(0.02)
        return mails


_counter = itertools.count(1)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def wait_until_mail_sent(app, timeout=15):
    """Until no mail waits in the outbox of `app`'s database (a sender of this process took them)."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while mail.count_waiting():
            if time.monotonic() > deadline:
                raise AssertionError(f"mail still waits after {timeout} s")
            db.session.rollback()
            time.sleep(0.05)
        db.session.rollback()


def in_parallel(target, argument_lists):
    """Run `target` once per argument list, each on its own thread, and wait for all."""
    threads = [threading.Thread(target=target, args=args) for args in argument_lists]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def free_port():
    """A loopback TCP port nothing listens on, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def count_queries():
    """Count the SQL statements run inside the block."""
    statements = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@contextmanager
def captured_statements():
    """The SQL statements run inside the block, each with its parameters (to EXPLAIN it)."""
    captured = []

    def record(conn, cursor, statement, parameters, *args):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield captured
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def actor_tallies():
    """The actor tallies that count anyone: {(gender_key, age): total}."""
    rows = db.session.execute(
        select(ActorTally.gender_key, ActorTally.age, ActorTally.total).where(ActorTally.total != 0)
    )
    return {(gender_key, age): total for gender_key, age, total in rows}


def tallied_actors():
    """What the actor tallies must be: the actors counted afresh by (lower(gender), age)."""
    key = func.lower(Actor.gender)
    rows = db.session.execute(select(key, Actor.age, func.count()).group_by(key, Actor.age))
    return {(gender_key, age): total for gender_key, age, total in rows}


def image_bytes(fmt="PNG", size=(64, 48), color=(200, 30, 30), **save_args):
    picture = PILImage.new("RGB", size, color)
    out = io.BytesIO()
    picture.save(out, format=fmt, **save_args)
    return out.getvalue()


class SlowClients:
    """`count` connections to a server that each send `head` at once, then `trickle` one byte
    every `interval` seconds, all from one thread, until stopped (a slowloris, bounded)."""

    def __init__(self, port, count, head, trickle, interval):
        self.sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(head)
        self.trickle, self.interval = trickle, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def _send(self):
        for byte in itertools.cycle(self.trickle[i : i + 1] for i in range(len(self.trickle))):
            for sock in self.sockets:
                try:
                    sock.send(byte)
                except OSError:  # the server hung up on this one
                    pass
            if self._stop.wait(self.interval):
                return

    def answers(self, timeout=1.0):
        """What the server sent each connection so far (b"" for none, within `timeout`)."""
        received = []
        for sock in self.sockets:
            sock.settimeout(timeout)
            try:
                received.append(sock.recv(4096))
            except OSError:
                received.append(b"")
        return received

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored, to take a real
    database server out of the app's reach without touching the server; or frozen and thawed:
    while frozen it keeps every socket open but forwards nothing and accepts no new connection
    (the kernel still completes handshakes and acknowledges data), like a host gone silent."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = None
        self._sockets = []
        self._lock = threading.Lock()
        self._fatal_answers = 0
        self._flowing = threading.Event()
        self._flowing.set()

    @classmethod
    def to_database(cls, database_url):
        """A proxy in front of the server `database_url` names (port 5432 if it names none)."""
        parts = urlsplit(database_url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url(self, database_url):
        """`database_url` through this proxy; sslmode=disable keeps the stream readable."""
        parts = urlsplit(database_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        query = "&".join(filter(None, [parts.query, "sslmode=disable"]))
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    def starting_up(self, connections):
        """The next `connections` new connections hear what a PostgreSQL server says while it
        starts (FATAL 57P03) and are closed; later ones are forwarded again."""
        self._fatal_answers = connections

    @staticmethod
    def _refuse(client):
        fields = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"
        with client:
            request = client.recv(8)
            if int.from_bytes(request[4:8], "big") == StatementCounter.SSL_REQUEST:
                client.sendall(b"N")
            client.recv(65536)  # the startup message
            client.sendall(b"E" + (4 + len(fields)).to_bytes(4, "big") + fields)

    def start(self):
        if self._listener:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(50)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def freeze(self):
        self._flowing.clear()

    def thaw(self):
        """Forward again, what was held first."""
        self._flowing.set()

    def _accept(self, listener):
        while True:
            self._flowing.wait()
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._fatal_answers:
                self._fatal_answers -= 1
                threading.Thread(target=self._refuse, args=(client,), daemon=True).start()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                if self._listener is not listener:  # cut while this one was being made: cut it too
                    for sock in (client, upstream):
                        sock.close()
                    continue
                self._sockets.append(client)
                self._sockets.append(upstream)
            for src, dst, watch in ((client, upstream, self._watcher()), (upstream, client, None)):
                threading.Thread(target=self._pipe, args=(src, dst, watch, self._flowing), daemon=True).start()

    def _watcher(self):
        """A callable fed with the bytes a client sends (None: nothing watches them)."""
        return None

    @staticmethod
    def _pipe(src, dst, watch, flowing):
        try:
            while flowing.wait() and (data := src.recv(65536)):
                flowing.wait()  # frozen while this recv() waited: hold the data
                if watch:
                    watch(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                TcpProxy._hang_up(sock)

    @staticmethod
    def _hang_up(sock):
        """Shut down, then close: a thread blocked in recv() on a merely closed socket keeps it
        open (and, for a listener, accepting), so the database would never hear that its client
        left and would keep the transaction and its locks."""
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # the peer is gone already
            pass
        sock.close()

    def stop(self):
        with self._lock:  # no connection slips in between closing the listener and the sockets
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        for sock in ([listener] if listener else []) + sockets:
            self._hang_up(sock)  # for the listener, this wakes the blocked accept()


class StatementCounter(TcpProxy):
    """A TcpProxy that reads the PostgreSQL wire protocol the app sends and keeps the text of
    every query message (simple `Q` and extended `P`), so a test counts true round trips:
    BEGIN, ROLLBACK and pings included, which SQLAlchemy's events never see.
    Connect with `sslmode=disable` so the stream stays readable."""

    SSL_REQUEST = 80877103

    def __init__(self, target_host, target_port):
        super().__init__(target_host, target_port)
        self.statements = []

    def _watcher(self):
        state = {"buffer": b"", "started": False}

        def watch(data):
            state["buffer"] += data
            while True:
                buffer = state["buffer"]
                if not state["started"]:  # untyped: SSLRequest, then the startup message
                    if len(buffer) < 8:
                        return
                    length = int.from_bytes(buffer[:4], "big")
                    state["started"] = int.from_bytes(buffer[4:8], "big") != self.SSL_REQUEST
                    state["buffer"] = buffer[length:]
                    continue
                if len(buffer) < 5:
                    return
                length = int.from_bytes(buffer[1:5], "big")
                if len(buffer) < 1 + length:
                    return
                kind, body = buffer[:1], buffer[5 : 1 + length]
                if kind == b"Q":
                    self.statements.append(body.rstrip(b"\0").decode())
                elif kind == b"P":
                    self.statements.append(body.split(b"\0")[1].decode())
                state["buffer"] = buffer[1 + length :]

        return watch
