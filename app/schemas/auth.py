from marshmallow import ValidationError, fields, validate

from app.fields import Resource, Schema, Text, UTCDateTime, envelope
from app.models import User
from app.permissions import ROLES

PASSWORD_MIN_BYTES = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores (and bcrypt 5 refuses) anything longer


def check_password_strength(password):
    """Return what is wrong with a new password, or None."""
    size = len(password.encode("utf-8"))
    if size < PASSWORD_MIN_BYTES:
        return f"Must be at least {PASSWORD_MIN_BYTES} bytes."
    if size > PASSWORD_MAX_BYTES:
        return f"Must be at most {PASSWORD_MAX_BYTES} bytes in UTF-8."
    return None


class NewPassword(Text):
    def __init__(self, **kwargs):
        super().__init__(trim=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        password = super()._deserialize(value, attr, data, **kwargs)
        problem = check_password_strength(password)
        if problem:
            raise ValidationError(problem)
        return password


class RegisterSchema(Schema):
    # Checked and normalised by accounts.register (accounts.normalize_email): one rule for every door.
    email = Text(required=True, min_length=3, max_length=254, metadata={"format": "email"})
    password = NewPassword(required=True, metadata={"description": "8 to 72 bytes in UTF-8"})


class LoginSchema(Schema):
    email = Text(required=True, max_length=254)
    password = Text(required=True, trim=False, max_length=1024)


class RefreshSchema(Schema):
    refresh_token = Text(required=True, min_length=1, max_length=4096)


class LogoutSchema(Schema):
    refresh_token = Text(min_length=1, max_length=4096)


class PasswordChangeSchema(Schema):
    current_password = Text(required=True, trim=False, max_length=1024)
    new_password = NewPassword(required=True)


class AccountDeletionSchema(Schema):
    # Any string is a candidate, checked against the hash (accounts.leave): one that cannot be the
    # password (too long, a NUL) is wrong like any other, and null is none given. Both are answered
    # as the contract says: 422 `Password is incorrect`, `{"password": ["Incorrect password."]}`.
    password = fields.String(
        allow_none=True,
        metadata={"description": "Your password (required for an account of this API; an external account has none)"},
    )


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String(
        dump_only=True,
        attribute="public_email",
        allow_none=True,
        metadata={"description": "An external account's `email` claim (or null); never its login here"},
    )
    role = fields.String(dump_only=True, allow_none=True, metadata={"description": "Null for an external account"})
    permissions = fields.List(
        fields.String(),
        dump_only=True,
        metadata={"description": "The role's; an external account's come from its token (empty in admin views)"},
    )
    external_id = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The external issuer's `sub`; null for an account of this API"},
    )
    email_verified = fields.Boolean(
        dump_only=True,
        metadata={
            "description": "Whether the address was proven by following a mailed link (verification or "
            "password reset). An external account shows its provider's `email_verified` claim as last seen."
        },
    )
    created_at = UTCDateTime(dump_only=True)


def mailed_token():
    """Any string: one that is not a live token is 400 `Invalid or expired token`, whatever its shape."""
    return fields.String(
        required=True, metadata={"description": "The token of the mailed link (its `token` query parameter)"}
    )


class EmailVerifySchema(Schema):
    token = mailed_token()


class PasswordForgotSchema(Schema):
    # Checked and normalised by password_reset.request_reset (accounts.normalize_email), as at register.
    email = Text(required=True, min_length=3, max_length=254, metadata={"format": "email"})


class PasswordResetSchema(Schema):
    token = mailed_token()
    new_password = NewPassword(required=True, metadata={"description": "8 to 72 bytes in UTF-8"})


class RoleChangeSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class TokenSchema(Schema):
    success = fields.Boolean()
    message = fields.String()
    auth_token = fields.String()
    refresh_token = fields.String()
    expires_in = fields.Integer(metadata={"description": "Seconds until the access token expires"})
    token_type = fields.String(metadata={"example": "Bearer"})


class TokenRequestSchema(Schema):
    """RFC 6749 section 4.3.2; a public client, so client_id and client_secret are accepted and ignored."""

    grant_type = fields.String(required=True, validate=validate.OneOf(["password"]))
    username = Text(required=True, max_length=254, metadata={"description": "Your e-mail address"})
    password = Text(required=True, trim=False, max_length=1024)
    scope = fields.String(metadata={"description": "Ignored: a token carries its user's permissions"})
    client_id = fields.String(metadata={"description": "Ignored"})
    client_secret = fields.String(metadata={"description": "Ignored"})


class OAuthTokenSchema(Schema):
    success = fields.Boolean()
    access_token = fields.String()
    token_type = fields.String(metadata={"example": "bearer"})
    expires_in = fields.Integer(metadata={"description": "Seconds until the access token expires"})
    refresh_token = fields.String()


class SessionSchema(Schema):
    id = fields.Integer(dump_only=True)
    created_at = UTCDateTime(dump_only=True, metadata={"description": "When the login (or registration) started it"})
    last_used_at = UTCDateTime(
        dump_only=True,
        metadata={
            "description": "Its last login or refresh, when tokens were last issued in it (not its last request)"
        },
    )
    user_agent = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "At its last login or refresh; up to 255 characters"}
    )
    ip = fields.String(dump_only=True, allow_none=True, metadata={"description": "The client address then"})
    current = fields.Boolean(dump_only=True, metadata={"description": "Whether it is the session of this request"})


class RegisterResponseSchema(TokenSchema):
    user = fields.Nested(UserSchema)


USER = Resource("User", User, UserSchema, key="user", list_key="users")
SessionListResponse = envelope("SessionListResponse", "sessions", SessionSchema, many=True, paginated=False)
EmailVerifiedResponse = Schema.from_dict(
    {"success": fields.Boolean(), "message": fields.String(), "user": fields.Nested(UserSchema)},
    name="EmailVerifiedResponse",
)
