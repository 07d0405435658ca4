"""Accounts: registration, credentials, roles, leaving, and the last-admin rule."""

import unicodedata

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select

from app import database, replicas
from app.auth import (
    MSG_INVALID,
    MSG_REVOKED,
    REFRESH,
    decode_token,
    hash_password,
    load_token_user,
    missing_permission,
    refresh_claims_to_revoke,
    revoke,
    verify_password,
)
from app.errors import conflict, invalid, not_found, unauthorized
from app.extensions import db
from app.models import DeletedExternalAccount, User
from app.models.base import utcnow
from app.permissions import ADMIN_ROLE, DEFAULT_ROLE
from app.services import mail_tokens, sessions, verification
from app.services.crud import flush_or_conflict
from app.transactions import commit_early

MAX_EMAIL_LENGTH = 254  # users.email
INVALID_CREDENTIALS = "Invalid email or password"
WRONG_PASSWORD = "Incorrect password."  # the field error of a password that proves who you are
MANAGE_USERS = "manage:users"
EMAIL_TAKEN = "Email already registered"
EXTERNAL_PASSWORD = "This account signs in through the external identity provider: change its password there"
LAST_ADMIN = "Cannot delete the last admin"
EXTERNAL_ROLE = "This account's permissions come from the external identity provider: change them there"


def normalize_email(email):
    """The one form of an e-mail address, as people read it: the form stored, looked up at login
    and counted by the login rate limit. One account per mailbox.

    NFKC first ("ﬁle" is "file", full-width letters are ASCII), then email-validator's checks
    (what cannot be a mailbox raises its EmailNotValidError, a ValueError that says why) and its
    IDNA form of the domain ("bücher.example" is "xn--bcher-kva.example", lower-case), and the
    local part case-folded (email-validator keeps its case: most mail servers do not).
    """
    checked = validate_email(unicodedata.normalize("NFKC", email.strip()), check_deliverability=False)
    local_part = unicodedata.normalize("NFKC", checked.local_part.casefold())
    address = f"{local_part}@{checked.ascii_domain}"
    if len(address) > MAX_EMAIL_LENGTH:
        raise EmailNotValidError(f"The email address is too long (at most {MAX_EMAIL_LENGTH} characters).")
    return address


def register(email, password, role=DEFAULT_ROLE, verified=False):
    """A new account (flushed; 409 if the e-mail is taken, 422 if it cannot be a mailbox). Unless
    `verified` (an operator vouches for the address), it is mailed a verification link in the same
    transaction."""
    try:
        address = normalize_email(email)
    except EmailNotValidError as error:
        raise invalid({"email": [str(error)]}) from None
    user = User(email=address, password_hash=hash_password(password), role=role)
    if verified:
        user.email_verified_at = utcnow()
    db.session.add(user)
    flush_or_conflict(EMAIL_TAKEN)
    if not verified:
        verification.send_verification(user)
    return user


def sign_up(email, password, client):
    """Register and sign in: the new account and the tokens of its first session."""
    user = register(email, password)
    return user, sessions.issue_tokens(user, sessions.start_session(user, client))


def check_credentials(email, password):
    """The user whose credentials these are, or a 401 that says nothing more."""
    try:
        address = normalize_email(email)
    except EmailNotValidError:  # no account has it: the same answer, after the same password check
        address = None
    user = db.session.scalars(select(User).where(User.email == address)).first() if address else None
    commit_early()  # the read ends before bcrypt runs: no lock (SQLite's write lock) waits on the hash
    if not verify_password(password, user.password_hash if user else None):
        raise unauthorized(INVALID_CREDENTIALS)
    return user


def log_in(email, password, client):
    """The tokens of the session that a login with these credentials starts."""
    user = check_credentials(email, password)
    return sessions.issue_tokens(user, sessions.start_session(user, client))


def check_current_password(user, password):
    if user.is_external:
        raise conflict(EXTERNAL_PASSWORD)
    commit_early()  # the authentication's read ends before bcrypt runs: no lock waits on the hashes
    if not verify_password(password, user.password_hash):
        raise invalid({"current_password": [WRONG_PASSWORD]}, "Current password is incorrect")


def set_password(user, new_password):
    """A new password: every session ends, every token issued before stops working, and so does
    every password reset link sent before (flushed)."""
    user.password_hash = hash_password(new_password)
    sessions.end_every_session(user)
    mail_tokens.void(user.id, mail_tokens.RESET)


def change_password(user, current_password, new_password, client):
    """PUT /v1/auth/password: the tokens of a new session (every other one has ended)."""
    check_current_password(user, current_password)
    set_password(user, new_password)
    return sessions.issue_tokens(user, sessions.start_session(user, client))


def rotate_refresh_token(token, client):
    """Spend a refresh token, once (a second use is a revoked token): the next tokens of its session."""
    claims = decode_token(token, REFRESH)
    user = load_token_user(claims)
    if "sid" in claims:
        session = sessions.continue_session(claims, client)
    else:  # issued before sessions: spent through the blacklist, and continued in a new session
        if not revoke(claims):  # the jti is unique: of two concurrent uses, one inserts it
            raise unauthorized(MSG_REVOKED)
        session = sessions.start_session(user, client)
    return sessions.issue_tokens(user, session)


def log_out(access_claims, refresh_token=None):
    """Revoke the access token and, if given, the same user's refresh token (ending its session)."""
    refresh_claims = refresh_claims_to_revoke(refresh_token, access_claims["sub"]) if refresh_token else None
    # An external token without a jti lives until it expires. Of concurrent logouts with one token,
    # the one that revoked it wins; the others come second, and a revoked token is 401 like any use of it.
    if access_claims["jti"] and not revoke(access_claims):
        raise unauthorized(MSG_REVOKED)
    if refresh_claims and "sid" in refresh_claims:
        sessions.end_session_of(refresh_claims)
    elif refresh_claims:
        revoke(refresh_claims)


def lock_admins(acting=None):
    """Lock every admin's row until the request commits (in id order), and check that `acting`, the
    user who asks for the change (None: the command line), is still an admin: 403 otherwise.

    Every change of an account's role or existence runs it first, before it loads that account
    (`for_write`): such changes queue here, and each sees what the one before left. The locking
    SELECT, once it waited, reads the rows as the writer before committed them (READ COMMITTED):
    an admin demoted or deleted meanwhile is not among them, so of two admins demoting each other
    at once, the second is refused. SQLite renders no FOR UPDATE; there the request has held the
    database's write lock since its first statement, its authentication included.
    """
    admins = db.session.scalars(select(User.id).where(User.role == ADMIN_ROLE).order_by(User.id).with_for_update())
    if acting is not None and not acting.is_external and acting.id not in set(admins):
        raise missing_permission(MANAGE_USERS)


def change_role(user, role):
    """Give `user` (loaded after `lock_admins`) `role`, unless that leaves no admin (409)."""
    if user.is_external:
        raise conflict(EXTERNAL_ROLE)
    was_admin, user.role = user.role == ADMIN_ROLE, role
    db.session.flush()
    _keep_an_admin(was_admin, "Cannot demote the last admin")
    return user


def delete_user(user, gone=not_found):
    """Delete an account (loaded after `lock_admins`), unless that leaves no admin (409); `gone()` is
    the error if it went meanwhile. Its buckets and items and sessions go with it (ON DELETE CASCADE),
    its images stay with no owner (SET NULL), and so every token of it stops at once. An external
    account's tokens are the provider's: its sub is remembered, so that those issued before now stay
    out (app.oidc)."""
    replicas.wrote_for(user)  # a bulk DELETE passes the ORM by: the account's next reads must see it
    if user.is_external:
        _remember_deleted(user.external_id)
    if db.session.execute(delete(User).where(User.id == user.id)).rowcount == 0:
        raise gone()
    _keep_an_admin(user.role == ADMIN_ROLE, LAST_ADMIN)


def _remember_deleted(external_id):
    now = utcnow()
    stmt = database.insert(DeletedExternalAccount).values(external_id=external_id, deleted_at=now)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["external_id"], set_={"deleted_at": now}))


def leave(user, password):
    """DELETE /v1/auth/me: the account deletes itself, given its password (an external account has none)."""
    if not user.is_external:
        commit_early()  # the authentication's read ends before bcrypt runs: no lock waits on the hash
        if not verify_password(password or "", user.password_hash):
            raise invalid({"password": [WRONG_PASSWORD]}, "Password is incorrect")
    lock_admins()  # as every change of an account's existence: the admins' rows first
    delete_user(user, gone=lambda: unauthorized(MSG_INVALID))  # deleted meanwhile: its token is invalid


def _keep_an_admin(was_admin, refusal):
    """409 if the write just made took the last admin away. Never check-then-write: the admins are
    counted after the write, in its transaction, under `lock_admins`. A deployment that has no admin
    at all (none was ever made) refuses nothing: no write of a user takes its last admin away."""
    if was_admin and db.session.scalar(select(func.count(User.id)).where(User.role == ADMIN_ROLE)) == 0:
        raise conflict(refusal)
