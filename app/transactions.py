"""Who commits: the request (or the CLI command) is the unit of work.

- Services change rows and flush (`db.session.flush()`, or `crud.flush_or_conflict` where a
  unique index must answer 409); they never commit and never roll back.
- A write request (any method but GET and HEAD) commits exactly once, after its view returned
  and before its answer leaves (`commit_request`, called by app.pipeline.ApiFlask.dispatch_request): a
  commit that fails is answered by the error handler like any failure (409 for a conflict, 503
  for an outage). A request that raised is rolled back once, by the error handler (app.errors).
- A GET or HEAD commits nothing: on PostgreSQL it runs in autocommit (app.database), on SQLite
  outside any transaction.
- A CLI command commits once when it returns and rolls back if it raises (`command_transaction`).
- The few places that must commit before the end call `commit_early()`, each with a one-line
  comment saying why. What they commit is final even if the request fails afterwards.

docs/transactions.md says the same for people adding a service.
"""

from functools import wraps

from flask import g, request

from app.database import READ_METHODS
from app.extensions import db


def commit_early():
    """Commit what this request (or command) has done so far, before its end; the work that follows
    runs in a new transaction (on SQLite, a write request's next statement takes the write lock again).

    Only for work that must be final, or must release its locks, whatever happens to the rest.
    The objects loaded so far are kept as they are, not reloaded (no SELECT when they are used
    again): a write that depends on one of them loads it again under a lock (`for_write`).
    """
    session = db.session()
    expire_on_commit, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire_on_commit


def commit_request():
    """The end of a request whose view returned: a write commits its transaction, once."""
    if request.method in READ_METHODS or not db.session.registry.has():
        return
    session = db.session()
    if session.in_transaction():
        session.commit()


def command_transaction(command):
    """A CLI command as one unit of work: committed when it returns, rolled back if it raises.
    Under the app context (put it below `with_appcontext`): `g.command` tells app.database that it
    writes (on SQLite, it takes the write lock with its first statement)."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        g.command = True
        try:
            result = command(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise
        else:
            db.session.commit()
        finally:
            g.pop("command", None)
        return result

    return wrapper
