"""Accounts: registration, credentials, roles, and the last-admin rule."""

from sqlalchemy import delete, func, select, update

from app.auth import (
    MSG_REVOKED,
    REFRESH,
    decode_token,
    hash_password,
    load_token_user,
    refresh_claims_to_revoke,
    revoke,
    verify_password,
)
from app.errors import conflict, invalid, not_found, unauthorized
from app.extensions import db
from app.models import User
from app.permissions import ADMIN_ROLE, DEFAULT_ROLE
from app.services.crud import insert_or_conflict

INVALID_CREDENTIALS = "Invalid email or password"
EMAIL_TAKEN = "Email already registered"
EXTERNAL_PASSWORD = "This account signs in through the external identity provider: change its password there"
EXTERNAL_ROLE = "This account's permissions come from the external identity provider: change them there"


def normalize_email(email):
    return email.strip().lower()


def register(email, password, role=DEFAULT_ROLE):
    user = User(email=normalize_email(email), password_hash=hash_password(password), role=role)
    return insert_or_conflict(user, EMAIL_TAKEN)


def check_credentials(email, password):
    """The user whose credentials these are, or a 401 that says nothing more."""
    user = db.session.scalars(select(User).where(User.email == normalize_email(email))).first()
    if not verify_password(password, user.password_hash if user else None):
        raise unauthorized(INVALID_CREDENTIALS)
    return user


def check_current_password(user, password):
    if user.is_external:
        raise conflict(EXTERNAL_PASSWORD)
    if not verify_password(password, user.password_hash):
        raise invalid({"current_password": ["Incorrect password."]}, "Current password is incorrect")


def change_password(user, new_password):
    user.password_hash = hash_password(new_password)
    user.token_version += 1
    db.session.flush()


def rotate_refresh_token(token):
    """Spend a refresh token: its user, once; a second use is a revoked token."""
    claims = decode_token(token, REFRESH)
    user = load_token_user(claims)
    # The jti is unique: of two concurrent uses of one token, only one inserts it.
    if not revoke(claims):
        raise unauthorized(MSG_REVOKED)
    return user


def log_out(access_claims, refresh_token=None):
    """Revoke the access token and, if given, the same user's refresh token."""
    refresh_claims = refresh_claims_to_revoke(refresh_token, access_claims["sub"]) if refresh_token else None
    # An external token without a jti lives until it expires. Of concurrent logouts with one token,
    # the one that revoked it wins; the others come second, and a revoked token is 401 like any use of it.
    if access_claims["jti"] and not revoke(access_claims):
        raise unauthorized(MSG_REVOKED)
    if refresh_claims:
        revoke(refresh_claims)


def change_role(user, role):
    if user.is_external:
        raise conflict(EXTERNAL_ROLE)
    # A bulk UPDATE skips the ORM's version bump: move it here, so If-Match sees this write.
    change = update(User).where(User.id == user.id).values(role=role, version=User.version + 1)
    _write_keeping_an_admin(change, "Cannot demote the last admin")


def delete_user(user):
    _write_keeping_an_admin(delete(User).where(User.id == user.id), "Cannot delete the last admin")


def _write_keeping_an_admin(statement, refusal):
    """Run `statement` on one user's row, unless it leaves no admin (409).

    Never check-then-write: two admins demoting each other at once would both see
    another admin. PostgreSQL locks the admin rows first, so such writes queue and
    each counts what the one before left; SQLite runs one writer at a time. The
    count is taken after the write, inside the same transaction.
    """
    db.session.execute(select(User.id).where(User.role == ADMIN_ROLE).order_by(User.id).with_for_update())
    if db.session.execute(statement).rowcount == 0:  # deleted meanwhile
        raise not_found()
    if db.session.scalar(select(func.count(User.id)).where(User.role == ADMIN_ROLE)) == 0:
        raise conflict(refusal)
