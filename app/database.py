"""How the app talks to its database: round trips, session settings, and outages.

- GET and HEAD run on autocommit connections (PostgreSQL): each read is its own
  transaction, as under READ COMMITTED anyway, with no BEGIN and no ROLLBACK round trip.
  Writes keep one transaction per request, committed or rolled back by the app.
- No pre-ping: a connection that died (database restarted or cut) fails its statement;
  SQLAlchemy then invalidates the whole pool, and the request runs once more on a new
  connection if that is safe (a GET or HEAD, or nothing reached the database yet); anything
  else answers 503.
- Each new PostgreSQL connection gets `jit = off` and `statement_timeout`, once.
"""

import logging
import sqlite3

import psycopg2
from flask import g, has_request_context, request
from flask_sqlalchemy.session import Session
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from app.extensions import db

log = logging.getLogger("app.database")

READ_METHODS = frozenset({"GET", "HEAD"})
# SQLSTATEs that mean "the database cannot serve now", not "this statement is wrong":
# connection exceptions (08), shutdown / starting up (57P01-57P03), statement_timeout
# (57014), and insufficient resources such as too many connections (53).
OUTAGE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "57014", "53")
SQLITE_BUSY = "database is locked"
TRANSIENT_CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@event.listens_for(Session, "after_begin")
def _reads_autocommit(_session, _transaction, connection):
    """A GET or HEAD's connection runs in autocommit (set on the driver, before any statement).

    Set on psycopg2 directly, not through SQLAlchemy's isolation_level: that one restores the
    level on check-in with an extra `SET default_transaction_isolation` round trip.
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


def init_app(app):
    with app.app_context():
        engine = db.engine
    app.teardown_appcontext(end_session)  # registered after Flask-SQLAlchemy's, so it runs first
    if engine.dialect.name != "postgresql":
        return
    sql = session_settings(app.config["DB_STATEMENT_TIMEOUT_MS"], app.config["DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"])

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        autocommit_before = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET inside a transaction would end with its rollback
        with dbapi_connection.cursor() as cursor:
            cursor.execute(sql)
        dbapi_connection.autocommit = autocommit_before

    event.listen(engine, "checkin", _back_to_transactions)


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


def is_outage(exc):
    """Whether `exc` means the database cannot serve (503) rather than a bug (500)."""
    if isinstance(exc, DisconnectionError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
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
