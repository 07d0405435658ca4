"""/v1/auth: register, login, logout, refresh, me, password."""

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from app.api.responses import found, oauth_tokens, registered, tokens
from app.auth import auth_required, current_user
from app.extensions import limiter
from app.http import FORM_MIMETYPE, Blueprint, no_store, read_json_object, require_mimetype
from app.schemas.auth import (
    LoginSchema,
    LogoutSchema,
    OAuthTokenSchema,
    PasswordChangeSchema,
    RefreshSchema,
    RegisterResponseSchema,
    RegisterSchema,
    TokenRequestSchema,
    TokenSchema,
    UserResponse,
)
from app.schemas.common import MessageSchema
from app.services import accounts

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Accounts and tokens")
blp.after_request(no_store)  # tokens and the account itself


def _login_limit_key():
    """Per address and account: guessing one account's password is slowed down,
    while many people behind one address can still log in. The JSON login and the OAuth2
    token endpoint (a form) share the count, so two doors give no extra guesses.

    The body is read within the JSON size limit; one the view will refuse counts per address.
    Nothing may escape from here: Flask-Limiter takes any error for a store outage."""
    try:
        if request.mimetype == FORM_MIMETYPE:
            email = request.form.get("username")
        else:
            email = read_json_object(current_app.config["MAX_JSON_BYTES"]).get("email")
    except Exception:  # refused (the view answers why) or the client went away
        email = None
    account = accounts.normalize_email(email) if isinstance(email, str) else ""
    return f"{get_remote_address()}|{account}"


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


@blp.route("/register", methods=["POST"])
@limiter.limit(lambda: current_app.config["RATELIMIT_REGISTER"], key_func=get_remote_address)
@blp.arguments(RegisterSchema)
@blp.response(201, RegisterResponseSchema)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def register(data):
    """Create an account (role `user`) and log it in."""
    user = accounts.register(data["email"], data["password"])
    return registered(user)


@blp.route("/login", methods=["POST"])
@login_limit
@login_address_limit
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def login(data):
    """Exchange e-mail and password for an access and a refresh token."""
    user = accounts.check_credentials(data["email"], data["password"])
    return tokens(user, "Successfully logged in")


@blp.route("/token", methods=["POST"])
@login_limit
@login_address_limit
@require_mimetype(FORM_MIMETYPE)
@blp.arguments(TokenRequestSchema, location="form")
@blp.response(200, OAuthTokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
def issue_token(data):
    """OAuth2 password grant (RFC 6749 section 4.3): what the docs page's Authorize button uses.

    Form-encoded `grant_type=password&username=<e-mail>&password=...`. Errors come in this API's envelope
    (401 `Invalid email or password`, 422 for a missing field or another grant type), not RFC 6749's.
    """
    user = accounts.check_credentials(data["username"], data["password"])
    return oauth_tokens(user)


@blp.route("/logout", methods=["POST"])
@auth_required
@blp.arguments(LogoutSchema, required=False)
@blp.response(200, MessageSchema)
def logout(data):
    """Revoke the access token, and the refresh token if given.

    A second logout with the same token is 401 (`Token has been revoked...`), like any use of a revoked token."""
    accounts.log_out(g.token_claims, data.get("refresh_token"))
    return {"success": True, "message": "Successfully logged out"}


@blp.route("/refresh", methods=["POST"])
@blp.arguments(RefreshSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
def refresh(data):
    """Trade a refresh token for a new pair; the old refresh token is revoked."""
    user = accounts.rotate_refresh_token(data["refresh_token"])
    return tokens(user, "Successfully refreshed")


@blp.route("/me", methods=["GET"])
@auth_required
@blp.response(200, UserResponse)
def me():
    """Your account, role and permissions."""
    return found("user", current_user())


@blp.route("/password", methods=["PUT"])
@auth_required
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(409, response="CONFLICT")
def change_password(data):
    """Change your password: every token issued before stops working; new tokens are returned.

    An external account has no password here: 409."""
    user = current_user()
    accounts.check_current_password(user, data["current_password"])
    accounts.change_password(user, data["new_password"])
    return tokens(user, "Password changed")
