"""An account's data, read for its export a few rows at a time, so that memory stays flat however big it is.

PostgreSQL: one REPEATABLE READ, READ ONLY transaction (one snapshot: a bucket's `item_count` matches its
items), read through server-side cursors (psycopg2 named cursors, SQLAlchemy's `yield_per`): the buckets by
id, and beside them all their items by (bucket, id), merged as they come. SQLite: chunks of EXPORT_CHUNK
rows by keyset (`id > last`), each read in full, so that no read lock is held while a slow client reads;
a write between two chunks may or may not show (there is no snapshot across them).

The export reads on a connection of its own, held until the answer has been sent (or the client went
away): exports run outside the fair-admission gate, so at most EXPORTS_AT_ONCE run in each worker process
at once, and one more is 503 (they must not take the pool's connections from the requests behind the gate).
"""

import threading

from flask import current_app
from sqlalchemy import select, text
from sqlalchemy.orm import Session, selectinload

from app.auth import MSG_INVALID
from app.errors import APIError, unauthorized
from app.extensions import db
from app.models import Bucket, Image, Item, User

EXPORT_CHUNK = 1000
TOO_MANY = "Too many account exports are running: please retry shortly"
RETRY_SECONDS = 10
BUCKETS, ITEMS = Bucket.__table__, Item.__table__


def _slots():
    return current_app.extensions.setdefault(
        "export_slots", threading.BoundedSemaphore(current_app.config["EXPORTS_AT_ONCE"])
    )


def open_export(user):
    """The export of `user`'s account, its snapshot taken: read it once, then close it.

    503 when EXPORTS_AT_ONCE exports already run in this process; 401 if the account is gone."""
    slots = _slots()
    if not slots.acquire(blocking=False):
        raise APIError(503, TOO_MANY, headers={"Retry-After": str(RETRY_SECONDS)})
    try:
        db.session.close()  # the request's connection goes back first: an export holds one, not two
        return AccountExport(user, slots)
    except BaseException:
        slots.release()
        raise


class AccountExport:
    """`user` (as the request authenticated it), then `buckets()` with their items, then `images()`."""

    def __init__(self, user, slots):
        self.user = user
        self._connection = db.engine.connect()
        self._session = Session(bind=self._connection)
        self._postgres = self._connection.dialect.name == "postgresql"
        try:
            if self._postgres:
                self._session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            if self._session.scalar(select(User.id).where(User.id == user.id)) is None:
                raise unauthorized(MSG_INVALID)  # deleted since its token was checked
        except BaseException:
            self._disconnect()
            raise
        self._slots = slots  # from here on, close() gives the slot up

    def buckets(self):
        """(bucket row, iterator of its item rows) per bucket, by id. Consume each bucket's items
        before asking for the next bucket."""
        if self._postgres:
            return _merged(self._stream(_owned_buckets(self.user.id)), self._stream(_owned_items(self.user.id)))
        return ((bucket, self._chunked_items(bucket["id"])) for bucket in self._chunked_buckets())

    def images(self):
        """The images the account uploaded, by id, with their tags."""
        stmt = select(Image).where(Image.owner_id == self.user.id).options(selectinload(Image.tag_rows))
        if self._postgres:
            yield from self._session.scalars(stmt.order_by(Image.id).execution_options(yield_per=EXPORT_CHUNK))
            return
        after = 0
        while chunk := self._session.scalars(stmt.where(Image.id > after).order_by(Image.id).limit(EXPORT_CHUNK)).all():
            yield from chunk
            after = chunk[-1].id

    def close(self):
        """Give the connection back and the slot up; safe to call more than once."""
        slots, self._slots = self._slots, None
        if slots is not None:
            try:
                self._disconnect()
            finally:
                slots.release()

    def _disconnect(self):
        self._session.close()
        self._connection.close()

    def _stream(self, stmt):
        """Rows of `stmt` from a server-side cursor, a chunk at a time."""
        return _as_dicts(self._connection.execution_options(yield_per=EXPORT_CHUNK).execute(stmt))

    def _chunked_buckets(self):
        after = 0
        while chunk := self._rows(_owned_buckets(self.user.id).where(BUCKETS.c.id > after).limit(EXPORT_CHUNK)):
            yield from chunk
            after = chunk[-1]["id"]

    def _chunked_items(self, bucket_id):
        stmt = select(ITEMS).where(ITEMS.c.bucket_id == bucket_id).order_by(ITEMS.c.id).limit(EXPORT_CHUNK)
        after = 0
        while chunk := self._rows(stmt.where(ITEMS.c.id > after)):
            yield from chunk
            after = chunk[-1]["id"]

    def _rows(self, stmt):
        return list(_as_dicts(self._connection.execute(stmt)))


def _as_dicts(result):
    """Each row as a dict: what the schemas read fastest (a Row's names cost a lookup each)."""
    keys = tuple(result.keys())
    return (dict(zip(keys, row, strict=True)) for row in result)


def _owned_buckets(owner_id):
    return select(BUCKETS).where(BUCKETS.c.owner_id == owner_id).order_by(BUCKETS.c.id)


def _owned_items(owner_id):
    """All the owner's items, bucket by bucket in the order of _owned_buckets, each bucket's by id:
    the owner's buckets in index order, each one's items in index order (no sort of the whole)."""
    return (
        select(ITEMS)
        .join(BUCKETS, BUCKETS.c.id == ITEMS.c.bucket_id)
        .where(BUCKETS.c.owner_id == owner_id)
        .order_by(BUCKETS.c.id, ITEMS.c.id)
    )


def _merged(buckets, items):
    """Pair each bucket with its run of `items` (both ordered by bucket id), reading each stream once."""
    items = iter(items)
    pending = [next(items, None)]  # the next item not yet handed out

    def run_of(bucket_id):
        while pending[0] is not None and pending[0]["bucket_id"] <= bucket_id:
            item, pending[0] = pending[0], next(items, None)
            if item["bucket_id"] == bucket_id:
                yield item

    for bucket in buckets:
        yield bucket, run_of(bucket["id"])
