"""Tokens sent in mails (e-mail verification, password reset).

Random (256 bits, URL-safe), kept only as their SHA-256 (a fast hash is right for a random
secret of this size: nothing to guess), expiring, and spent by one conditional UPDATE, so
of two concurrent uses exactly one wins. Unknown, used, expired or altered: one 400.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, insert, select, update

from app import database
from app.errors import APIError
from app.extensions import db
from app.models import MailToken, User
from app.models.base import utcnow

VERIFY, RESET = "verify", "reset"
INVALID_TOKEN = "Invalid or expired token"
# Mails of one kind an address is sent per hour, at most; requests past it send nothing.
MAILS_PER_HOUR = 3


def new_token():
    """A fresh token and its digest."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def address_key(address):
    """A keyed digest of a (normalised) address: what the hourly cap counts by."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"mail address\n" + address.encode(), hashlib.sha256).hexdigest()


def sent_lately(key, purpose):
    """How many `purpose` tokens went to the address of `key` in the last hour.

    Counted under a lock on the address and purpose, held until the request commits: of concurrent
    requests for one address, each counts the tokens the ones before it stored, so no more than
    MAILS_PER_HOUR are ever stored (and mailed) in an hour."""
    database.lock_name(f"mail-tokens|{purpose}|{key}")
    since = utcnow() - timedelta(hours=1)
    return db.session.scalar(
        select(func.count())
        .select_from(MailToken)
        .where(MailToken.address_key == key, MailToken.purpose == purpose, MailToken.created_at > since)
    )


def store(purpose, token_hash, user_id, key, lifetime):
    """Keep a token's digest (in the current transaction)."""
    now = utcnow()
    db.session.execute(
        insert(MailToken).values(
            purpose=purpose,
            token_hash=token_hash,
            user_id=user_id,
            address_key=key,
            created_at=now,
            expires_at=now + lifetime,
        )
    )


def spend(purpose, token):
    """The user a live `purpose` token belongs to, which is used up by this call; 400 for any
    token that is not (unknown, used, expired, altered, of another purpose)."""
    now = utcnow()
    user_id = db.session.execute(
        update(MailToken)
        .where(
            MailToken.token_hash == digest(token),
            MailToken.purpose == purpose,
            MailToken.used_at.is_(None),
            MailToken.expires_at > now,
            MailToken.user_id.is_not(None),
        )
        .values(used_at=now)
        .returning(MailToken.user_id)
    ).scalar()
    user = db.session.get(User, user_id) if user_id is not None else None
    if user is None:  # deleted meanwhile: its tokens went with it
        raise APIError(400, INVALID_TOKEN)
    return user


def void(user_id, purpose):
    """Use up every live `purpose` token of the user (links sent before stop working)."""
    now = utcnow()
    db.session.execute(
        update(MailToken)
        .where(MailToken.user_id == user_id, MailToken.purpose == purpose, MailToken.used_at.is_(None))
        .values(used_at=now)
    )


def purge_expired():
    """Delete tokens expired for more than an hour (the cap looks an hour back); how many."""
    cutoff = utcnow() - timedelta(hours=1)
    return db.session.execute(MailToken.__table__.delete().where(MailToken.expires_at < cutoff)).rowcount


def link(setting, token):
    return current_app.config[setting].replace("{token}", token)
