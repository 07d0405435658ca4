"""How the app talks to its database: round trips, session settings, and outages.

- GET and HEAD run on autocommit connections (PostgreSQL): each read is its own
  transaction, as under READ COMMITTED anyway, with no BEGIN and no ROLLBACK round trip.
  Writes keep one transaction per request, committed or rolled back by the app (app.transactions).
- SQLite: the app, not the driver, begins transactions: BEGIN IMMEDIATE for a write request or a
  CLI command (the write lock, held until the commit), nothing for a read.
- No pre-ping: a connection that died (database restarted or cut) fails its statement;
  SQLAlchemy then invalidates the whole pool, and the request runs once more on a new
  connection if that is safe (a GET or HEAD, or nothing reached the database yet); anything
  else answers 503.
- Each new PostgreSQL connection gets `jit = off` and `statement_timeout`, once.
- A database that stops answering (a host gone silent, packets dropped, a frozen proxy or
  process) is a 503 within seconds, not a hang: every wait for the server is bounded on the
  client (`wait_for_server`), and requests that waited while it was found silent do not try
  again (`SILENCE`).
"""

import hashlib
import logging
import select
import sqlite3
import time
from contextlib import contextmanager
from functools import partial

import psycopg2
from flask import g, has_app_context, has_request_context, request
from flask_sqlalchemy.session import Session
from psycopg2 import extensions
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.extensions import db

log = logging.getLogger("app.database")

READ_METHODS = frozenset({"GET", "HEAD"})
# SQLSTATEs that mean "the database cannot serve now", not "this statement is wrong":
# connection exceptions (08), shutdown / starting up (57P01-57P03), statement_timeout
# (57014), and insufficient resources such as too many connections (53).
OUTAGE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "57014", "53")
SQLITE_BUSY = "database is locked"
TRANSIENT_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
CONSTRAINT_CONFLICT_SQLSTATES = frozenset({"23505", "23503"})  # unique violation, foreign key violation
SQLITE_CONSTRAINT_CONFLICTS = ("UNIQUE constraint failed", "FOREIGN KEY constraint failed")
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@event.listens_for(Session, "after_begin")
def _reads_autocommit(_session, _transaction, connection):
    """A GET or HEAD's connection runs in autocommit (set on the driver, before any statement).

    Set on psycopg2 directly (its public `autocommit`), not through SQLAlchemy's public
    isolation_level ("AUTOCOMMIT", by a read-only bind): that one restores the level on check-in
    with `SET default_transaction_isolation TO DEFAULT`, one more round trip per read request,
    measured on the wire (tests/test_database.py's proxy): a bucket's GET 2 statements -> 3,
    /v1/health 1 -> 2.
    A read request must therefore not open a savepoint (begin_nested) or need two writes
    to be atomic: it has no transaction to hold them.
    """
    if connection.dialect.name == "postgresql" and has_request_context() and request.method in READ_METHODS:
        connection.connection.dbapi_connection.autocommit = True


def _back_to_transactions(dbapi_connection, _record):
    if dbapi_connection is not None:
        dbapi_connection.autocommit = False


def session_settings(statement_timeout_ms, idle_in_transaction_timeout_ms):
    """SQL run once on each new PostgreSQL connection (one round trip, outside any transaction).

    A SET rather than the `options` startup parameter, which PgBouncer refuses. The idle
    timeout ends a transaction whose client vanished mid-way (a cut network), so its row
    locks do not outlive it until TCP keepalive notices, hours later.
    """
    return (
        f"SET jit = off; SET statement_timeout = {int(statement_timeout_ms)}; "
        f"SET idle_in_transaction_session_timeout = {int(idle_in_transaction_timeout_ms)}"
    )


class TimedConnection(extensions.connection):
    """A psycopg2 connection that knows how long to wait for its server (`wait_for_server`):
    `connect_seconds` for the handshake, then `answer_seconds` for each statement (None: no bound),
    and whom to tell when it waited in vain (its server's `Silence`)."""

    def __init__(self, dsn, *args, connect_seconds, answer_seconds, silence, **kwargs):
        self.wait_seconds, self.silence = connect_seconds, silence
        super().__init__(dsn, *args, **kwargs)
        self.wait_seconds = answer_seconds


class Silence:
    """When the database was last found silent (a wait past its bound) in this process.

    A request that was already waiting then (for a fair-admission slot, a pooled connection, its
    own retry) answers 503 at once instead of trying a connection of its own: one after another,
    each would wait out the connect timeout, and the last in line would wait far past the
    contract's 10 seconds. Requests that arrive later try again, so recovery is immediate.
    """

    def __init__(self):
        self.found_at = float("-inf")

    def found(self):
        self.found_at = time.monotonic()

    def arrived_before(self, arrival):
        return arrival <= self.found_at


SILENCE = Silence()
_POLL_EVENTS = {extensions.POLL_READ: select.POLLIN, extensions.POLL_WRITE: select.POLLOUT}


def wait_for_server(connection):
    """psycopg2's wait callback: wait for the server, at most the connection's `wait_seconds`.

    Neither libpq nor PostgreSQL bounds this wait: the statement timeout runs on the server,
    which may never see the statement; TCP keepalives and tcp_user_timeout catch a host that
    vanished, but not one whose kernel still acknowledges (a frozen process or proxy). Past
    the bound psycopg2 closes the connection, and SQLAlchemy takes it (and the pool) as dead.
    Uses poll(), not select(): a worker may hold descriptors past select's 1024.
    """
    seconds = getattr(connection, "wait_seconds", None)
    deadline = None if seconds is None else time.monotonic() + seconds
    while (state := connection.poll()) != extensions.POLL_OK:
        poller = select.poll()
        poller.register(connection.fileno(), _POLL_EVENTS[state])
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0) * 1000
        if not poller.poll(remaining):
            connection.silence.found()
            raise psycopg2.OperationalError(f"the database did not answer within {seconds} s")


@contextmanager
def unbounded_waits():
    """Run COPY, which psycopg2 refuses while a wait callback is set (command-line use only)."""
    extensions.set_wait_callback(None)
    try:
        yield
    finally:
        extensions.set_wait_callback(wait_for_server)


def connect_parameters(config, silence=SILENCE):
    """The connection class that bounds every wait, and libpq's TCP settings, which let the kernel
    notice a host that vanished (not a frozen one). No libpq connect_timeout: with a wait callback
    libpq connects asynchronously and ignores it; TimedConnection bounds the handshake instead."""
    answer_ms = config["DB_ANSWER_TIMEOUT_MS"]
    return {
        "keepalives": 1,
        "keepalives_idle": config["DB_KEEPALIVE_SECONDS"],
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": config["DB_TCP_USER_TIMEOUT_MS"],
        "connection_factory": partial(
            TimedConnection,
            connect_seconds=config["DB_CONNECT_TIMEOUT_SECONDS"],
            answer_seconds=answer_ms / 1000 if answer_ms else None,
            silence=silence,
        ),
    }


def note_arrival():
    """before_request (app.pipeline), on PostgreSQL: when the request arrived (see Silence)."""
    g.arrived_at = time.monotonic()


def is_postgresql(app):
    with app.app_context():
        return db.engine.dialect.name == "postgresql"


def init_app(app):
    """The engine's events; the request's hooks (note_arrival, end_session) are app.pipeline's."""
    with app.app_context():
        primary, engines = db.engine, list(db.engines.values())  # and the read replicas (app.replicas)
    if primary.dialect.name == "sqlite":
        event.listen(primary, "begin", _sqlite_begin)
    if primary.dialect.name != "postgresql":
        return
    extensions.set_wait_callback(wait_for_server)  # process-wide; without a bound it just waits
    for engine in engines:
        # Each server is found silent on its own: a silent read replica (app.replicas) is skipped,
        # and must not make the primary's waiting requests give up.
        configure_connections(engine, app.config, SILENCE if engine is primary else Silence())
        event.listen(engine, "checkin", _back_to_transactions)


def configure_connections(engine, config, silence=SILENCE):
    """Each new PostgreSQL connection of `engine` (the app's pool, a read replica's, the mail sender's
    own): bounded waits, and the session settings, once. Nothing to do on SQLite. `silence` is its
    server's (the primary's by default)."""
    if engine.dialect.name != "postgresql":
        return
    parameters = connect_parameters(config, silence)

    @event.listens_for(engine, "do_connect")
    def _bounded(_dialect, _record, _cargs, cparams):
        if has_request_context() and silence.arrived_before(g.get("arrived_at", float("inf"))):
            raise psycopg2.OperationalError("the database was found silent while this request waited")
        cparams.update(parameters)

    sql = session_settings(config["DB_STATEMENT_TIMEOUT_MS"], config["DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"])

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        autocommit_before = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET inside a transaction would end with its rollback
        with dbapi_connection.cursor() as cursor:
            cursor.execute(sql)
        dbapi_connection.autocommit = autocommit_before


def _sqlite_begin(connection):
    """Who begins a transaction on SQLite (SQLAlchemy's pysqlite recipe: the driver's own handling
    off, isolation_level None, where the app decides). The driver would BEGIN (deferred) only before
    the first INSERT, UPDATE or DELETE, after the reads a write depends on.

    A write request, or a CLI command (`g.command`, app.transactions.command_transaction), takes the
    database's write lock with its first statement and holds it until it commits: what it read
    cannot change before it writes, as a row locked FOR UPDATE cannot on PostgreSQL. Another writer
    waits for the lock, up to the busy timeout (then 503). A read request takes no lock: each of its
    statements runs on its own, as in autocommit. Other code (a test's own statements, a shell, the
    mail sender's thread) keeps the driver's default.
    """
    dbapi_connection = connection.connection.dbapi_connection
    if has_request_context():
        writes = request.method not in READ_METHODS
    elif has_app_context() and g.get("command", False):
        writes = True
    else:
        dbapi_connection.isolation_level = ""  # the driver's default (deferred), for this transaction
        return
    dbapi_connection.isolation_level = None
    if writes:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def end_session(_exc=None):
    """Close the request's session; a connection that died with it is dropped, never raised.

    A rollback on a dead connection raises, and outside the error handler that would be
    the WSGI server's own HTML 500.
    """
    if not db.session.registry.has():  # the request never used the database
        return
    try:
        db.session.close()
    except Exception as exc:  # logged in one line: an outage is not a bug
        log.warning("closing the session failed (%s); dropping its connection", exc.__class__.__name__)
        db.session().invalidate()  # the scoped session does not proxy invalidate()


def rollback():
    """Undo whatever the request began, even on a connection that is gone."""
    try:
        db.session.rollback()
    except Exception:
        db.session().invalidate()  # the scoped session does not proxy invalidate()


def retry_read_once(dispatch):
    """Run a view; if its connection had died, run it once more on a fresh one.

    Safe for a GET or HEAD (reads change nothing), and for any request whose failure came
    before the database answered anything (nothing of it reached the database). The pool was
    already invalidated by SQLAlchemy, so the second run gets a new connection, or a 503.
    """
    try:
        return dispatch()
    except DBAPIError as exc:
        retry = request.method in READ_METHODS or not g.get("database_answered")
        if not (exc.connection_invalidated and retry):
            raise
        log.warning("database connection lost; running the request once more")
        end_session()
        return dispatch()


@event.listens_for(Engine, "after_cursor_execute")
def _database_answered(*_args):
    if has_request_context():
        g.database_answered = True


def insert(table):
    """INSERT into `table` in the session's dialect, so ON CONFLICT (DO NOTHING / DO UPDATE) is at hand
    on PostgreSQL and SQLite alike."""
    return _INSERTS[db.session.get_bind().dialect.name](table)


def lock_name(name):
    """Hold a lock on `name` until the transaction ends: transactions that lock the same name run
    one after the other from here (a count that decides an insert, where no row exists yet to lock).

    PostgreSQL: a transaction-level advisory lock on a 64-bit digest of the name. SQLite: nothing to
    take, a write request holds the database's write lock from its first statement (_sqlite_begin).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def database_is_reachable():
    """The one liveness check: /v1/health and the error classifier both ask it."""
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except DBAPIError:
        return False
    finally:
        rollback()


def is_transient_conflict(exc):
    """PostgreSQL gave up on one of two concurrent transactions (deadlock, serialization):
    nothing was written, and the same request sent again can succeed (409, not 500)."""
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "pgcode", None) in TRANSIENT_CONFLICT_SQLSTATES


def is_constraint_conflict(exc):
    """A unique or foreign key constraint refused a write that no service answered itself (with its
    own 409 message): the rows changed under the request, typically when it commits. Other integrity
    errors (NOT NULL, CHECK) are bugs."""
    if not isinstance(exc, IntegrityError):
        return False
    code = getattr(exc.orig, "pgcode", None)
    if code is not None:
        return code in CONSTRAINT_CONFLICT_SQLSTATES
    return str(exc.orig).startswith(SQLITE_CONSTRAINT_CONFLICTS)


def is_outage(exc):
    """Whether `exc` means the database cannot serve (503) rather than a bug (500)."""
    if isinstance(exc, (DisconnectionError, PoolTimeoutError)):
        return True  # a pool timeout: every connection is held by requests the database keeps waiting
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, psycopg2.OperationalError):
        # No SQLSTATE: the client lost or never got a connection (refused, closed,
        # "the database system is starting up" during the handshake).
        code = exc.orig.pgcode
        return code is None or code.startswith(OUTAGE_SQLSTATE_PREFIXES)
    if isinstance(exc.orig, sqlite3.OperationalError) and SQLITE_BUSY in str(exc.orig):
        return True  # another writer held the file past the busy timeout: busy now, not broken
    return not database_is_reachable()
