"""Idempotency keys: who holds one, and the answer a finished request left in it.

A key is taken by an INSERT that the unique (user_id, key) constraint decides,
committed at once as `running`; the request's work and its answer are then
committed together, by the request (app.api.idempotency). Every later write names the
holder's `lock_token`, so a request whose key was taken over can no longer record anything.
"""

import uuid
from datetime import timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import delete, select, update

from app import database
from app.errors import APIError
from app.extensions import db
from app.models import IdempotencyKey
from app.models.base import utcnow
from app.models.idempotency import DONE, RUNNING
from app.transactions import commit_early

KEY_REUSED = "Idempotency-Key was used with a different request"
IN_PROGRESS = "A request with this Idempotency-Key is in progress"
ATTEMPTS = 3


class Fingerprint(NamedTuple):
    method: str
    path: str
    body_sha256: str


class Holder(NamedTuple):
    """The request that holds a key: it alone may keep an answer in it, or let it go."""

    user_id: int
    key: str
    lock_token: str


def take(user_id, key, fingerprint):
    """(holder, None) if this request runs; (None, kept row) if it gets a kept answer.

    A key whose first request is still running is 409, unless that request has
    been running longer than IDEMPOTENCY_RUNNING_TIMEOUT_SECONDS: it is taken for
    dead and the key taken over. An expired key counts as no key at all.
    """
    for _ in range(ATTEMPTS):
        holder = _insert(user_id, key, fingerprint)
        if holder:
            return holder, None
        row = db.session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        ).first()
        if row is None:  # let go of since our INSERT: try again
            continue
        now = utcnow()
        if row.expires_at > now:
            if (row.method, row.path, row.body_sha256) != fingerprint:
                raise APIError(422, KEY_REUSED)
            if row.state == DONE:
                return None, row
            if row.locked_at > now - timedelta(seconds=current_app.config["IDEMPOTENCY_RUNNING_TIMEOUT_SECONDS"]):
                raise APIError(409, IN_PROGRESS)
        holder = _take_over(row, fingerprint)
        if holder:
            return holder, None
    raise APIError(409, IN_PROGRESS)


def _fresh_lease(fingerprint):
    now = utcnow()
    return {
        **fingerprint._asdict(),
        "state": RUNNING,
        "lock_token": uuid.uuid4().hex,
        "locked_at": now,
        "expires_at": now + timedelta(seconds=current_app.config["IDEMPOTENCY_KEY_TTL_SECONDS"]),
    }


def _insert(user_id, key, fingerprint):
    lease = _fresh_lease(fingerprint)
    stmt = database.insert(IdempotencyKey).values(user_id=user_id, key=key, **lease)
    if db.session.execute(stmt.on_conflict_do_nothing(index_elements=["user_id", "key"])).rowcount != 1:
        return None
    commit_early()  # the key is seen as taken (running) before the work starts, whatever its fate
    return Holder(user_id, key, lease["lock_token"])


def _take_over(row, fingerprint):
    """Take an expired key, or one whose request died, unless someone else just did."""
    lease = _fresh_lease(fingerprint)
    taken = db.session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row.id, IdempotencyKey.lock_token == row.lock_token)
        .values(**lease, status_code=None, headers=None, body=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    commit_early()  # the key is seen as taken over (running) before the work starts, whatever its fate
    return Holder(row.user_id, row.key, lease["lock_token"]) if taken else None


def _held(holder):
    return (
        IdempotencyKey.user_id == holder.user_id,
        IdempotencyKey.key == holder.key,
        IdempotencyKey.lock_token == holder.lock_token,
    )


def keep_answer(holder, status_code, headers, body):
    """Record the answer in the current transaction; False if the key was taken over."""
    kept = db.session.execute(
        update(IdempotencyKey)
        .where(*_held(holder))
        .values(state=DONE, status_code=status_code, headers=headers, body=body)
        .execution_options(synchronize_session=False)
    ).rowcount
    return kept == 1


def release(holder):
    """Let the key go (the request failed on our side), so that a retry runs afresh."""
    db.session.execute(delete(IdempotencyKey).where(*_held(holder)).execution_options(synchronize_session=False))


def purge_expired():
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    return result.rowcount
