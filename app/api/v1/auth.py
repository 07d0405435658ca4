"""/v1/auth: register, login, logout, refresh, me (its export, and leaving), password, sessions,
e-mail verification, password forgot and reset."""

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from app import auth
from app.api.blueprint import Blueprint
from app.api.export import export_response
from app.api.responses import deleted, found, oauth_tokens, registered, tokens
from app.auth import auth_required, current_session_id, current_user
from app.extensions import limiter
from app.fields import DeletedSchema, MessageSchema
from app.http import FORM_MIMETYPE, no_store, read_json_bytes, read_json_object, require_mimetype
from app.schemas.auth import (
    USER,
    AccountDeletionSchema,
    EmailVerifiedResponse,
    EmailVerifySchema,
    LoginSchema,
    LogoutSchema,
    OAuthTokenSchema,
    PasswordChangeSchema,
    PasswordForgotSchema,
    PasswordResetSchema,
    RefreshSchema,
    RegisterResponseSchema,
    RegisterSchema,
    SessionListResponse,
    TokenRequestSchema,
    TokenSchema,
)
from app.schemas.export import EXPORT_HEADERS, AccountExportSchema
from app.services import accounts, exports, password_reset, verification
from app.services import sessions as session_service
from app.services.accounts import WRONG_PASSWORD
from app.services.sessions import Client

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens")
# Cache-Control: no-store on answers that carry tokens (the first five), on /v1/auth/me (the next
# three) and on the verified account; every other authenticated answer here is the API's
# `private, no-cache` (the contract's "Headers every client can rely on").
NO_STORE_VIEWS = {"register", "login", "issue_token", "refresh", "change_password"}
NO_STORE_VIEWS |= {"me", "delete_me", "account_export", "verify_email"}


@blp.after_request
def _no_store_for_tokens_and_account(response):
    if request.endpoint.rpartition(".")[2] in NO_STORE_VIEWS:
        no_store(response)
    return response


def _login_limit_key():
    """Per address and account: guessing one account's password is slowed down,
    while many people behind one address can still log in. The JSON login and the OAuth2
    token endpoint (a form) share the count, so two doors give no extra guesses.

    The body is read within the JSON size limit; one the view will refuse counts per address.
    Nothing may escape from here: Flask-Limiter takes any error for a store outage."""
    try:
        if request.mimetype == FORM_MIMETYPE:
            read_json_bytes(current_app.config["MAX_JSON_BYTES"])  # kept, so that the view still has the body
            email = request.form.get("username")
        else:
            email = read_json_object(current_app.config["MAX_JSON_BYTES"]).get("email")
    except Exception:  # refused (the view answers why) or the client went away
        email = None
    return f"{get_remote_address()}|{_account_key(email)}"


def _account_key(email):
    """The account a login names: its e-mail as stored, or what was sent if no mailbox has it."""
    if not isinstance(email, str):
        return ""
    try:
        return accounts.normalize_email(email)
    except ValueError:
        return email


def _failed(response):
    return response.status_code == 401


# Only failed attempts count, twice: per address and account, and per address across accounts
# (password spraying: one password tried on many accounts from one address).
login_limit = limiter.shared_limit(
    lambda: current_app.config["RATELIMIT_LOGIN"], scope="login", key_func=_login_limit_key, deduct_when=_failed
)
login_address_limit = limiter.shared_limit(
    lambda: current_app.config["RATELIMIT_LOGIN_ADDRESS"],
    scope="login-address",
    key_func=get_remote_address,
    deduct_when=_failed,
)


def _account_limit_key():
    """The account a bearer token speaks for (the client address without a valid token)."""
    identity = auth.bearer_identity()
    return "|".join(identity) if identity else get_remote_address()


def _wrong_password(response):
    """A 422 that says a password given to prove who you are was wrong (not a weak new one)."""
    errors = (response.get_json(silent=True) or {}).get("errors") or {} if response.status_code == 422 else {}
    return [WRONG_PASSWORD] in (errors.get("current_password"), errors.get("password"))


# A stolen access token must not become a way to guess the account's password: wrong passwords
# given to change it or to leave count per account, like failed logins (RATELIMIT_LOGIN).
password_check_limit = limiter.shared_limit(
    lambda: current_app.config["RATELIMIT_LOGIN"],
    scope="password-check",
    key_func=_account_limit_key,
    deduct_when=_wrong_password,
)


def limited(*limits):
    """Flask-Limiter's `limits` on a view (the first outermost), and their 429 in its document."""

    def decorator(view):
        view = blp.alt_response(429, response="TOO_MANY_REQUESTS")(view)
        for limit in reversed(limits):
            view = limit(view)
        return view

    return decorator


@blp.route("/register", methods=["POST"], operation_ids={"post": "register"}, index_link="register")
@limited(limiter.limit(lambda: current_app.config["RATELIMIT_REGISTER"], key_func=get_remote_address))
@blp.arguments(RegisterSchema)
@blp.response(201, RegisterResponseSchema)
@blp.alt_response(409, response="CONFLICT")
def register(data):
    """Create an account (role `user`) and log it in: a new session."""
    user, pair = accounts.sign_up(data["email"], data["password"], _client())
    return registered(user, pair)


@blp.route("/login", methods=["POST"], operation_ids={"post": "login"}, index_link="login")
@limited(login_limit, login_address_limit)
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def login(data):
    """Exchange e-mail and password for an access and a refresh token: a new session."""
    return tokens(accounts.log_in(data["email"], data["password"], _client()), "Successfully logged in")


@blp.route("/token", methods=["POST"], operation_ids={"post": "issueToken"})
@limited(login_limit, login_address_limit)
@require_mimetype(FORM_MIMETYPE)
@blp.arguments(TokenRequestSchema, location="form")
@blp.response(200, OAuthTokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def issue_token(data):
    """OAuth2 password grant (RFC 6749 section 4.3): what the docs page's Authorize button uses.

    Form-encoded `grant_type=password&username=<e-mail>&password=...`. Errors come in this API's envelope
    (401 `Invalid email or password`, 422 for a missing field or another grant type), not RFC 6749's.
    """
    return oauth_tokens(accounts.log_in(data["username"], data["password"], _client()))


@blp.route("/logout", methods=["POST"], operation_ids={"post": "logout"})
@auth_required
@blp.arguments(LogoutSchema, required=False)
@blp.response(200, MessageSchema)
def logout(data):
    """Revoke the access token, and the refresh token if given (which ends its session).

    A second logout with the same token is 401 (`Token has been revoked...`), like any use of a revoked token."""
    accounts.log_out(g.token_claims, data.get("refresh_token"))
    return {"success": True, "message": "Successfully logged out"}


@blp.route("/refresh", methods=["POST"], operation_ids={"post": "refresh"})
@blp.arguments(RefreshSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def refresh(data):
    """Trade a refresh token for a new pair in the same session; the old refresh token is revoked.

    A refresh token of an ended session, or one spent already, is 401 `Token has been revoked...`.
    Tokens carry their session's id (`sid`). A refresh token issued before this API had sessions (no
    `sid`) is spent once and continued in a new session; such an access token works until it expires."""
    return tokens(accounts.rotate_refresh_token(data["refresh_token"], _client()), "Successfully refreshed")


@blp.route("/me", methods=["GET"], operation_ids={"get": "getMe"}, index_link="me")
@auth_required
@blp.one(USER, method="GET")
def me():
    """Your account, role and permissions."""
    return found("user", current_user())


@blp.route("/me", methods=["DELETE"], operation_ids={"delete": "deleteMe"})
@limited(password_check_limit)
@auth_required
@blp.arguments(AccountDeletionSchema, required=False)
@blp.response(200, DeletedSchema)
@blp.alt_response(409, response="CONFLICT")
def delete_me(data):
    """Delete your account.

    Give your password (`{"password": "..."}`); an external (OpenID Connect) account has none here and
    sends no body (a password it sends is ignored). A wrong or missing password is 422 `Password is
    incorrect`; the last admin cannot leave (409). Your buckets and items are deleted, every token of
    the account stops working at once, and the images you uploaded stay in the shared repository with
    `owner_id` null. The address can register again, as a new account that no old token fits."""
    user = current_user()
    user_id = user.id  # read before the row goes
    accounts.leave(user, data.get("password"))
    return deleted(user_id)


@blp.route("/me/export", methods=["GET"], operation_ids={"get": "getAccountExport"})
@auth_required
@blp.response(200, AccountExportSchema, headers=EXPORT_HEADERS)
def account_export():
    """Download your account's data: one JSON file.

    `{"user", "buckets": [{...bucket fields, "items": [...]}], "images": [...], "success": true}`, each
    object as the API answers it elsewhere; buckets, items and images by id; `images` are those you
    uploaded. Streamed (memory stays flat however big the account), from one snapshot on PostgreSQL.
    `success` comes last: should the database fail mid-way, the transfer is broken off (no last chunk;
    curl exits with 18) and what arrived is not valid JSON, so a cut answer never looks complete.
    At most EXPORTS_AT_ONCE exports run per worker process; one more is 503 with Retry-After."""
    return export_response(exports.open_export(current_user()))


@blp.route("/password", methods=["PUT"], operation_ids={"put": "changePassword"})
@limited(password_check_limit)
@auth_required
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(409, response="CONFLICT")
def change_password(data):
    """Change your password; the new tokens returned start a new session.

    Every session ends and every token issued before stops working. An external account has no
    password here: 409."""
    pair = accounts.change_password(current_user(), data["current_password"], data["new_password"], _client())
    return tokens(pair, "Password changed")


@blp.route("/sessions", methods=["GET"], operation_ids={"get": "getSessions"})
@auth_required
@blp.response(200, SessionListResponse)
def sessions():
    """List your sessions: your signed-in devices.

    A session is one login (JSON or the OAuth2 token endpoint) or registration, continued by the
    refresh tokens rotated from it. Ended and expired sessions are not listed; `current` marks the
    one this request's token belongs to; the most recently used come first. `last_used_at` is the
    session's last login or refresh (when tokens were last issued in it), not its last request.
    `user_agent` and `ip` are those of that login or refresh; `ip` is the client address as the rate
    limits see it (behind `TRUSTED_PROXIES`, the address the proxy names). At most 100 sessions
    live per account: a login beyond that ends the least recently used. An external (OpenID
    Connect) account has no sessions here: its list is empty."""
    return found("sessions", session_service.live_sessions(current_user(), current_session_id()))


@blp.route("/sessions/<int:session_id>", methods=["DELETE"], operation_ids={"delete": "endSession"})
@auth_required
@blp.response(200, DeletedSchema)
def end_session(session_id):
    """End one of your sessions: sign that device out.

    The session's refresh token and every access token issued in it stop working at once, on every
    instance. Ending your current session signs this client out too. Another user's session, or one
    that has ended or expired, is 404."""
    session_service.end_session(current_user(), session_id)
    return deleted(session_id)


def _client():
    """Where the request comes from, as its session shows it."""
    return Client(request.headers.get("User-Agent"), get_remote_address())


@blp.route("/email/verify", methods=["POST"], operation_ids={"post": "verifyEmail"})
@blp.arguments(EmailVerifySchema)
@blp.response(200, EmailVerifiedResponse)
@blp.alt_response(400, response="BAD_REQUEST")
def verify_email(data):
    """Verify your e-mail address with the token of the mailed link (no bearer token needed).

    The token works once, within EMAIL_VERIFY_HOURS (48) of its mail; one that is unknown, used,
    expired or altered is 400 `Invalid or expired token`."""
    user = verification.verify_email(data["token"])
    return {"success": True, "message": "E-mail verified", "user": user}


@blp.route("/email/verify/request", methods=["POST"], operation_ids={"post": "requestVerification"})
@auth_required
@blp.response(202, MessageSchema)
@blp.alt_response(409, response="CONFLICT")
def request_verification():
    """Mail a new verification link to your address (202); 409 if it is verified already.

    At most 3 verification mails go to an address per hour (the one sent at registration
    included); past that the answer is the same 202, and no mail is sent. An external account's
    address belongs to its identity provider: 409."""
    verification.request_verification(current_user())
    return {"success": True, "message": "Verification e-mail sent"}, 202


@blp.route("/password/forgot", methods=["POST"], operation_ids={"post": "forgotPassword"})
@limited(limiter.limit(lambda: current_app.config["RATELIMIT_PASSWORD_FORGOT"], key_func=get_remote_address))
@blp.arguments(PasswordForgotSchema)
@blp.response(202, MessageSchema)
def forgot_password(data):
    """Mail a password reset link to the address, if it has an account (no bearer token needed).

    The answer (status, body and, closely, time) is the same whether or not it has one; nothing
    is sent for an address without an account or of an external account, and at most 3 mails
    go to an address per hour (more requests: the same 202). Per client address,
    RATELIMIT_PASSWORD_FORGOT (default 60 per minute) applies: 429 with `Retry-After`.
    The link works once, within PASSWORD_RESET_MINUTES (30)."""
    password_reset.request_reset(data["email"])
    return {"success": True, "message": "If that address has an account, a reset link is on its way"}, 202


@blp.route("/password/reset", methods=["POST"], operation_ids={"post": "resetPassword"})
@blp.arguments(PasswordResetSchema)
@blp.response(200, MessageSchema)
@blp.alt_response(400, response="BAD_REQUEST")
def reset_password(data):
    """Set a new password with the token of the mailed link (no bearer token needed).

    Like a password change, it ends every session: every token issued before stops working.
    Every other reset link sent before stops working too, and the address counts as verified.
    `new_password` follows the register rules (422, and the token stays usable); a token that
    is unknown, used, expired or altered is 400 `Invalid or expired token`."""
    password_reset.reset_password(data["token"], data["new_password"])
    return {"success": True, "message": "Password has been reset"}
