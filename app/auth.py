"""Passwords, JWTs and the decorators that guard endpoints."""

import inspect
import re
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache, wraps

import bcrypt
import jwt
from flask import current_app, g, request
from flask_smorest import Blueprint
from sqlalchemy import bindparam, select, true

import logs
from app import database, oidc
from app.errors import APIError, unauthorized
from app.extensions import db
from app.fields import MAX_ID
from app.models import RevokedToken, User, UserSession
from app.models.base import utcnow

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "jti", "sub", "type", "ver"]
ACCESS, REFRESH = "access", "refresh"
USER_ID = re.compile(r"[0-9]{1,10}", re.ASCII)

MSG_NO_HEADER = "Provide an authorization header"
MSG_MALFORMED = "Malformed authorization header"
MSG_EXPIRED = "Signature expired. Please log in again."
MSG_INVALID = "Invalid token. Please log in again."
MSG_REVOKED = "Token has been revoked. Please log in again."
MSG_VERIFY_FIRST = "Verify your e-mail address first"

# With REQUIRE_VERIFIED_EMAIL, what a local account whose address is not verified may still do
# with its token, as (method, endpoint): read itself, ask for verification, log out, see and end
# its sessions, and leave. Logging in, refreshing and verifying need no bearer token.
UNVERIFIED_MAY = frozenset(
    {
        ("GET", "auth.me"),
        ("POST", "auth.logout"),
        ("POST", "auth.request_verification"),
        ("GET", "auth.sessions"),
        ("DELETE", "auth.end_session"),
        ("DELETE", "auth.delete_me"),
    }
)

# OpenAPI security schemes that carry a bearer token: ours pasted as is or got by the OAuth2
# password grant, or the external OIDC issuer's; any one of them opens a guarded endpoint.
BEARER_SCHEMES = ("bearerAuth", "oauth2Password", "oidcBearer")
BEARER_SECURITY = [{scheme: []} for scheme in BEARER_SCHEMES]


# -- passwords ---------------------------------------------------------------


def hash_password(password):
    rounds = current_app.config["BCRYPT_ROUNDS"]
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def _dummy_hash():
    """A hash at the configured cost, so unknown e-mails take as long as known ones."""
    cached = current_app.extensions.get("dummy_password_hash")
    if cached is None:
        cached = hash_password("not-a-real-password")
        current_app.extensions["dummy_password_hash"] = cached
    return cached


def verify_password(password, password_hash):
    """Constant-ish time: always runs one bcrypt check, even with no user."""
    candidate = password.encode("utf-8")
    if len(candidate) > 72:  # bcrypt 5 refuses these; no stored password can match
        candidate = candidate[:72]
        password_hash = None
    matched = bcrypt.checkpw(candidate, (password_hash or _dummy_hash()).encode("ascii"))
    return matched and password_hash is not None


# -- tokens ------------------------------------------------------------------


def _now():
    return datetime.now(timezone.utc)


def token_lifetime(kind):
    config = current_app.config
    if kind == ACCESS:
        return timedelta(minutes=config["ACCESS_TOKEN_MINUTES"])
    return timedelta(days=config["REFRESH_TOKEN_DAYS"])


def new_jti():
    return uuid.uuid4().hex


def encode_token(user, kind, session_id, jti=None, issued=None):
    """A signed token of `kind` for `user`, issued in the session `session_id` (its `sid`)."""
    issued = issued or _now()
    claims = {
        "sub": str(user.id),
        "iat": issued,
        "exp": issued + token_lifetime(kind),
        "jti": jti or new_jti(),
        "type": kind,
        "ver": user.token_version,
        "sid": session_id,
    }
    return jwt.encode(claims, current_app.config["SECRET_KEY"], algorithm=ALGORITHM)


@contextmanager
def token_errors():
    """Any token failure becomes a 401 with the contract's message."""
    try:
        yield
    except jwt.ExpiredSignatureError:
        raise unauthorized(MSG_EXPIRED) from None
    except jwt.PyJWTError:
        raise unauthorized(MSG_INVALID) from None


@lru_cache(maxsize=1024)
def _verified_claims(token, secret):
    """PyJWT's verdict on a token, kept for the tokens in use: a client sends the same one
    request after request. Only a good verdict is kept (a failure raises). Of what PyJWT
    checked, only `exp` can change its mind later, so decode_token checks it on every use."""
    return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS})


def decode_token(token, kind):
    """The verified claims of a `kind` token, or a 401 with the contract's message."""
    with token_errors():
        claims = dict(_verified_claims(token, current_app.config["SECRET_KEY"]))
        if claims["exp"] <= time.time():  # PyJWT's rule, with no leeway
            raise jwt.ExpiredSignatureError
    if (
        claims.get("type") != kind
        or not _is_user_id(claims["sub"])
        or not isinstance(claims["ver"], int)
        or not _is_session_id(claims.get("sid", 1))
    ):
        raise unauthorized(MSG_INVALID)
    return claims


def _is_user_id(sub):
    """ASCII digits only: str.isdigit() and int() also take "²", "٢" and "２"."""
    return isinstance(sub, str) and USER_ID.fullmatch(sub) is not None and 1 <= int(sub) <= MAX_ID


def _is_session_id(sid):
    return type(sid) is int and 1 <= sid <= MAX_ID  # not a bool, which is an int too


# Built once: composing the statement costs more Python than running it (bench/results/profile-*).
_REVOKED = select(RevokedToken.id).where(RevokedToken.jti == bindparam("jti")).exists()
_SESSION_LIVE = (
    select(UserSession.id)
    .where(UserSession.id == bindparam("sid"), UserSession.user_id == bindparam("user_id"))
    .exists()
)
TOKEN_USER = select(User, _REVOKED, _SESSION_LIVE).where(User.id == bindparam("user_id"))
# A token issued before sessions existed carries no `sid` (see start_legacy in services.sessions).
LEGACY_TOKEN_USER = select(User, _REVOKED, true()).where(User.id == bindparam("user_id"))


def load_token_user(claims):
    """The token's user, checked against deletion, revocation, password changes and its ended session.

    One query: the user row, whether the jti is blacklisted, and whether the token's session lives.
    """
    params = {"jti": claims["jti"], "user_id": int(claims["sub"]), "sid": claims.get("sid")}
    row = db.session.execute(TOKEN_USER if params["sid"] else LEGACY_TOKEN_USER, params).first()
    if row is None:
        raise unauthorized(MSG_INVALID)
    user, is_revoked, session_live = row
    if is_revoked or not session_live or claims["ver"] != user.token_version:
        raise unauthorized(MSG_REVOKED)
    return user


def revoke(claims):
    """Blacklist a token until it would have expired anyway (commit to apply).

    Revoking a revoked token changes nothing. True if this call was the one that
    revoked it (of concurrent logouts or refreshes with one token, exactly one).

    An external token's claims are in our shape here (see oidc.local_claims).
    """
    expires_at = datetime.fromtimestamp(claims["exp"], timezone.utc).replace(tzinfo=None)
    row = {"jti": claims["jti"], "user_id": int(claims["sub"]), "expires_at": expires_at, "revoked_at": utcnow()}
    stmt = database.insert(RevokedToken).values(row).on_conflict_do_nothing(index_elements=["jti"])
    result = db.session.execute(stmt)
    return result.rowcount == 1


def refresh_claims_to_revoke(token, subject):
    """The claims of a live refresh token of `subject`, or None if it is dead already."""
    try:
        claims = decode_token(token, REFRESH)
    except APIError as error:
        if error.message == MSG_EXPIRED:  # dead already: nothing to revoke
            return None
        raise
    if claims["sub"] != subject:
        raise unauthorized(MSG_INVALID)
    return claims


def bearer_token():
    header = request.headers.get("Authorization")
    if header is None or not header.strip():
        raise unauthorized(MSG_NO_HEADER)
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise unauthorized(MSG_MALFORMED)
    return parts[1]


def verify_bearer():
    """before_request: check the request's bearer token once, for every later use.

    `g.bearer` is (external, verified claims), or the APIError a guarded endpoint answers;
    the token is routed by its `iss`: the external issuer's to app.oidc, every other to
    our HS256 check. Set on every request, so none reads a previous request's token.
    """
    try:
        token = bearer_token()
        if oidc.is_issuers(token):
            with token_errors():
                g.bearer = True, oidc.decode(token)
        else:
            g.bearer = False, decode_token(token, ACCESS)
    except APIError as error:
        g.bearer = error


def bearer_identity():
    """Who the verified token says sent the request (our user id, or the external issuer and
    subject), or None without a valid token. Never an unverified claim: a forged one would let
    anyone pass for someone else (app.fairness keys on this).

    Verified here first if no hook has yet (rate limits are checked before verify_bearer runs)."""
    if "bearer" not in g:
        verify_bearer()
    if isinstance(g.bearer, APIError):
        return None
    external, claims = g.bearer
    return ("external", claims["iss"], claims["sub"]) if external else ("user", claims["sub"])


def authenticate():
    """The token's user in `g.current_user` (the token was checked by verify_bearer)."""
    if isinstance(g.bearer, APIError):
        raise g.bearer
    external, claims = g.bearer
    if external:
        with token_errors():
            user, revoked = oidc.account(claims)
        if revoked:
            raise unauthorized(MSG_REVOKED)
        g.token_claims = oidc.local_claims(claims, user)
    else:
        g.token_claims = claims
        user = load_token_user(claims)
        _check_verified(user)
    g.current_user = user
    request.environ[logs.USER_ID] = user.id  # for gunicorn's access line (logs.GunicornLogger)
    return user


def _check_verified(user):
    """REQUIRE_VERIFIED_EMAIL: 403 for an unverified local account outside UNVERIFIED_MAY.
    External accounts are exempt: their address is their identity provider's business."""
    if user.email_verified_at is not None or not current_app.config["REQUIRE_VERIFIED_EMAIL"]:
        return
    method = "GET" if request.method == "HEAD" else request.method
    if (method, request.endpoint) not in UNVERIFIED_MAY:
        raise APIError(403, MSG_VERIFY_FIRST)


# -- decorators --------------------------------------------------------------


def _document(wrapper, description, statuses):
    """Security and error responses in the OpenAPI document, through flask-smorest's public `doc`.

    The requirement follows what the view's docstring says past its summary (its first paragraph),
    which a `description` given here would otherwise replace."""
    details = inspect.cleandoc(wrapper.__doc__ or "").partition("\n\n")[2]
    description = f"{details}\n\n{description}" if details else description
    responses = {str(status): reference for status, reference in statuses.items()}
    return Blueprint.doc(security=BEARER_SECURITY, description=description, responses=responses)(wrapper)


def auth_required(view):
    """Require a valid, unrevoked access token; the user is in `g.current_user`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        authenticate()
        return view(*args, **kwargs)

    return _document(
        wrapper,
        "Requires a bearer access token (403 `Verify your e-mail address first` for an account whose "
        "address is not verified, when REQUIRE_VERIFIED_EMAIL is set).",
        {401: "UNAUTHORIZED", 403: "FORBIDDEN"},
    )


def requires_permission(permission):
    """Require a valid token whose user's current role grants `permission`."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = authenticate()
            if permission not in user.permissions:
                raise missing_permission(permission)
            return view(*args, **kwargs)

        return _document(
            wrapper,
            f"Requires a bearer token with the `{permission}` permission.",
            {401: "UNAUTHORIZED", 403: "FORBIDDEN"},
        )

    return decorator


def missing_permission(permission):
    return APIError(403, f"Permission {permission} is required")


def current_user():
    return g.current_user


def current_session_id():
    """The session of the request's token; None for an external token (or one from before sessions)."""
    return g.token_claims.get("sid")
