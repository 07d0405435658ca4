"""Access tokens of an external OpenID Connect issuer (Auth0 or any other), beside our own.

With OIDC_ISSUER set, a bearer token whose (unverified) `iss` is that issuer is
verified here: with a key of the issuer's JWKS picked by `kid`, and only with
the asymmetric algorithms of OIDC_ALGORITHMS. Every other token goes to the
HS256 check of app.auth, so a token is never verified with a key or algorithm
of the other kind. Key URLs in a token's header (`jku`, `x5u`, `jwk`, `x5c`)
are never followed: such a token is refused.

The first request of an external `sub` creates its local account; its
permissions are the token's claim, read again on every request. Once that account
is deleted, the sub's tokens issued before are invalid (deleted_external_accounts).
"""

import hashlib
import string
import threading
import time
from datetime import timezone

import jwt
from flask import current_app
from sqlalchemy import false, select

from app import database
from app.errors import APIError
from app.extensions import db
from app.models import DeletedExternalAccount, RevokedToken, User
from app.models.base import utcnow
from app.permissions import PERMISSIONS
from app.transactions import commit_early

REQUIRED_CLAIMS = ["aud", "exp", "iat", "sub"]
KEY_URL_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
SUB_CHARACTERS = frozenset(string.printable) - frozenset(string.whitespace)
MAX_SUB_LENGTH = 255  # users.external_id
MAX_EMAIL_LENGTH = 254  # users.external_email
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z: the last `exp` a revocation row can hold
MSG_UNREACHABLE = "The identity provider cannot be reached: try again shortly"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "An access token of the external OpenID Connect issuer (e.g. Auth0), when OIDC_ISSUER is set: "
        "RS256 (OIDC_ALGORITHMS) verified against the issuer's JWKS, `aud` = OIDC_AUDIENCE; "
        "permissions from the `permissions` claim (OIDC_PERMISSIONS_CLAIM)."
    ),
}


class IssuerUnreachable(Exception):
    """The JWKS could not be fetched and no cached key fits."""


class KeyCache:
    """The issuer's signing keys by `kid`, kept in this process.

    Keys are fresh for `lifetime` seconds; a stale set, or an unknown `kid`,
    makes the next request fetch the set again. Fetches (of any cause) happen
    at most once every `min_interval` seconds, so a flood of made-up kids costs
    one fetch. A failed fetch keeps the keys already known: while the issuer is
    down, a known key keeps working. One lock serialises fetches, so threads
    (gunicorn gthread) never fetch twice for one need; a fresh, known key is
    read without it.
    """

    def __init__(self, url, lifetime, min_interval, timeout):
        # PyJWKClient does the HTTP (no redirects, http/https only) and parses
        # the keys; the caching policy above is ours.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        self.lifetime = lifetime
        self.min_interval = min_interval
        self._keys = {}
        self._fetched_at = None  # monotonic time of the last successful fetch
        self._attempted_at = None  # ... of the last attempt
        self._last_failed = False
        self._lock = threading.Lock()

    def key(self, kid):
        """The key for `kid`, or None if the issuer has no such key.

        Raises IssuerUnreachable when the set cannot be fetched and no known key fits.
        """
        key = self._keys.get(kid)
        if key is not None and self._fresh():
            return key
        with self._lock:
            if (kid not in self._keys or not self._fresh()) and self._may_fetch():
                self._fetch()
            key = self._keys.get(kid)
            if key is None and self._last_failed:
                raise IssuerUnreachable()
            return key

    def _fresh(self):
        return self._fetched_at is not None and time.monotonic() - self._fetched_at < self.lifetime

    def _may_fetch(self):
        return self._attempted_at is None or time.monotonic() - self._attempted_at >= self.min_interval

    def _fetch(self):
        self._attempted_at = time.monotonic()
        try:
            signing_keys = self._client.get_signing_keys()
        except (jwt.PyJWTError, ValueError) as error:  # unreachable, not JSON, or no usable key
            current_app.logger.warning("OIDC JWKS fetch failed: %s", error)
            self._last_failed = True
            return
        self._keys = {key.key_id: key for key in signing_keys}
        self._fetched_at = time.monotonic()
        self._last_failed = False


def init_app(app):
    config = app.config
    if config["OIDC_ISSUER"]:
        app.extensions["oidc_keys"] = KeyCache(
            config["OIDC_JWKS_URL"],
            lifetime=config["OIDC_JWKS_LIFETIME_SECONDS"],
            min_interval=config["OIDC_JWKS_MIN_REFETCH_SECONDS"],
            timeout=config["OIDC_JWKS_TIMEOUT_SECONDS"],
        )


def is_issuers(token):
    """Whether `token` claims to come from the configured issuer (not yet verified)."""
    issuer = current_app.config["OIDC_ISSUER"]
    if not issuer:
        return False
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return claims.get("iss") == issuer


def decode(token):
    """The verified claims of an issuer's token; jwt errors for a bad token."""
    config = current_app.config
    header = jwt.get_unverified_header(token)
    if KEY_URL_HEADERS & header.keys():
        raise jwt.InvalidTokenError("Key URLs in the header are not followed")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise jwt.InvalidTokenError("No kid")
    try:
        key = current_app.extensions["oidc_keys"].key(kid)
    except IssuerUnreachable:
        retry_after = max(1, round(config["OIDC_JWKS_MIN_REFETCH_SECONDS"]))
        raise APIError(503, MSG_UNREACHABLE, headers={"Retry-After": str(retry_after)}) from None
    if key is None:
        raise jwt.InvalidTokenError("Unknown kid")
    claims = jwt.decode(
        token,
        key,
        algorithms=config["OIDC_ALGORITHMS"],
        audience=config["OIDC_AUDIENCE"],
        issuer=config["OIDC_ISSUER"],
        leeway=config["OIDC_LEEWAY_SECONDS"],
        options={"require": REQUIRED_CLAIMS},
    )
    sub = claims["sub"]
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB_LENGTH or not set(sub) <= SUB_CHARACTERS:
        raise jwt.InvalidTokenError("Bad sub")
    return claims


def granted_permissions(claims):
    """The token's permissions that the API knows; a space-separated string (like `scope`) works too."""
    granted = claims.get(current_app.config["OIDC_PERMISSIONS_CLAIM"])
    if isinstance(granted, str):
        granted = granted.split()
    if not isinstance(granted, list):
        return frozenset()
    return PERMISSIONS.intersection(name for name in granted if isinstance(name, str))


def revocation_id(claims):
    """What a logout blacklists: a digest of issuer and jti, of fixed length and
    never equal to one of our own jtis. None for a token without a jti."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        return None
    # Any text: a JSON escape can carry a lone surrogate, which only "surrogatepass" encodes.
    return hashlib.sha256(f"{claims['iss']}\n{jti}".encode("utf-8", "surrogatepass")).hexdigest()


def _email(claims):
    """The `email` claim, trimmed, if it is text an account can keep; else None (ignored)."""
    email = claims.get("email")
    if isinstance(email, str) and 0 < len(email.strip()) <= MAX_EMAIL_LENGTH and _storable(email):
        return email.strip()
    return None


def _storable(text):
    """No NUL and no lone surrogate (a JSON escape can carry both): PostgreSQL keeps neither in a text."""
    try:
        text.encode()  # UTF-8 has no form for a lone surrogate
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _account_row(sub, jti):
    """One query: the account, whether the token is blacklisted, and when an earlier account of the
    sub was deleted (or None)."""
    revoked = select(RevokedToken.id).where(RevokedToken.jti == jti).exists() if jti else false()
    stmt = (
        select(User, revoked, DeletedExternalAccount.deleted_at)
        .outerjoin(DeletedExternalAccount, DeletedExternalAccount.external_id == User.external_id)
        .where(User.external_id == sub)
    )
    return db.session.execute(stmt).first()


def _check_not_of_a_deleted_account(claims, deleted_at):
    """A token issued before its sub's account was deleted (at `deleted_at`) belonged to that account: invalid."""
    if deleted_at is not None and claims["iat"] <= deleted_at.replace(tzinfo=timezone.utc).timestamp():
        raise jwt.InvalidTokenError("Issued to a deleted account")


def _create_account(sub, email):
    """Insert the account; under concurrent first requests the unique external_id
    lets one insert win, and the others insert nothing and read its row."""
    stmt = database.insert(User).values(external_id=sub, external_email=email)
    db.session.execute(stmt.on_conflict_do_nothing(index_elements=["external_id"]))


def account(claims):
    """The local account of a verified token (created on first sight) and whether
    the token was revoked. Its permissions are set from the token."""
    sub, email, jti = claims["sub"], _email(claims), revocation_id(claims)
    row = _account_row(sub, jti)
    if row is None:
        deleted = db.session.get(DeletedExternalAccount, sub)
        _check_not_of_a_deleted_account(claims, deleted.deleted_at if deleted else None)
        _create_account(sub, email)
        row = _account_row(sub, jti)
        if row is None:  # deleted by an admin in between
            raise jwt.InvalidTokenError("No account")
        commit_early()  # the account exists from its token's first sight, whatever this request's fate
    user, revoked, deleted_at = row
    _check_not_of_a_deleted_account(claims, deleted_at)
    if _mirror_profile(user, email, claims.get("email_verified")):
        commit_early()  # even a GET (which commits nothing) keeps what the provider says
    user.token_permissions = granted_permissions(claims)
    return user, revoked


def _mirror_profile(user, email, email_verified):
    """The provider owns the profile: keep its `email` and `email_verified` claims (when the
    token carries them). True if anything changed."""
    changed = False
    if email and user.external_email != email:
        user.external_email = email
        changed = True
    if isinstance(email_verified, bool) and user.email_verified != email_verified:
        user.email_verified_at = utcnow() if email_verified else None
        changed = True
    return changed


def local_claims(claims, user):
    """The token as the rest of the API sees its own: the local id as `sub`, the
    revocation id (or None) as `jti`."""
    return {"sub": str(user.id), "jti": revocation_id(claims), "exp": min(claims["exp"], MAX_TIMESTAMP)}
