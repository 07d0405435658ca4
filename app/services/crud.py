"""Small pieces every resource's create/update/delete is made of."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.errors import conflict, invalid
from app.extensions import db


def require_changes(data):
    """An empty PATCH is refused: it would silently do nothing."""
    if not data:
        raise invalid({"_schema": ["Provide at least one field to change."]})


def apply_changes(obj, data):
    for field, value in data.items():
        setattr(obj, field, value)


def commit_or_conflict(message):
    """Commit; a unique index refusing the write becomes a 409 with `message`.

    The index, not a prior SELECT, decides, so the rule holds under concurrency.
    """
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise conflict(message) from None


def flush_or_conflict(message):
    """Flush (to learn a new row's id mid-transaction); a unique index refusing it is a 409."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise conflict(message) from None


def insert_or_conflict(obj, message):
    db.session.add(obj)
    commit_or_conflict(message)
    return obj


def update_or_conflict(obj, data, message):
    apply_changes(obj, data)
    commit_or_conflict(message)
    return obj


def get_locked_or_404(model, ident):
    """The row, locked until commit (PostgreSQL), loaded after the lock so it is the latest committed state.

    Locking first in a statement of its own matters: a FOR UPDATE on a query that also joins a
    collection would keep the collection as it was before the wait.
    """
    db.session.execute(sa.select(model.id).where(model.id == ident).with_for_update())
    return db.get_or_404(model, ident)


def update(obj, data):
    apply_changes(obj, data)
    db.session.commit()
    return obj


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
