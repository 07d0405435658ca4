"""Small pieces every resource's create/update/delete is made of."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.errors import conflict, not_found
from app.extensions import db


def apply_changes(obj, data):
    for field, value in data.items():
        setattr(obj, field, value)


def flush_or_conflict(message):
    """Flush; a unique index refusing the write becomes a 409 with `message` (the error handler
    rolls the request back).

    The index, not a prior SELECT, decides, so the rule holds under concurrency.
    """
    try:
        db.session.flush()
    except IntegrityError:
        raise conflict(message) from None


def insert_or_conflict(obj, message):
    db.session.add(obj)
    flush_or_conflict(message)
    return obj


def update_or_conflict(obj, data, message):
    apply_changes(obj, data)
    flush_or_conflict(message)
    return obj


def update(obj, data):
    """Change `obj` and flush: what the view answers is what the request commits."""
    apply_changes(obj, data)
    db.session.flush()
    return obj


def locked_or_404(model, ident, **scope):
    """The row `ident` of `model` whose columns equal `scope` (a value, or a scalar subquery such as
    "the id of this bucket if it is this owner's"), locked until the request commits and loaded after
    the lock, so it is the latest committed state; 404 if there is none.

    PostgreSQL: SELECT ... FOR UPDATE, which after waiting for another writer reads the row as that
    writer committed it. A model whose default load joins a collection is locked by a statement of
    its own first: the joined rows of a FOR UPDATE that waited would be as they were before the wait.
    SQLite renders no FOR UPDATE: a write request holds the database's write lock from its first
    statement (app.database), so nothing can change the row before it commits.
    """
    found = sa.select(model).where(model.id == ident, *(getattr(model, name) == value for name, value in scope.items()))
    if _joins_collections(model):
        if db.session.execute(found.with_only_columns(model.id).with_for_update()).first() is None:
            raise not_found()
        found = sa.select(model).where(model.id == ident)
    else:
        found = found.with_for_update()
    resource = db.session.scalars(found.execution_options(populate_existing=True)).unique().first()
    if resource is None:
        raise not_found()
    return resource


def _joins_collections(model):
    return any(relation.lazy == "joined" and relation.uselist for relation in sa.inspect(model).relationships)


def bump(counter, row_ids, by):
    """Add `by` to a counter column in the current transaction: one atomic UPDATE,
    right under concurrent writers, undone with the rest on rollback.

    Returns how many rows it changed: 0 when they were deleted meanwhile.
    """
    model = counter.class_
    ids = [row_ids] if isinstance(row_ids, int) else list(row_ids)
    if by and ids:
        return db.session.execute(
            sa.update(model).where(model.id.in_(ids)).values({counter.key: counter + by})
        ).rowcount
    return 0


def delete_counted(obj):
    """Delete a row; how many went (0 if a concurrent request deleted it first)."""
    model = type(obj)
    return db.session.execute(sa.delete(model).where(model.id == obj.id)).rowcount
