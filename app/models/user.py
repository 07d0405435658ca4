import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import ResourceMixin, utcnow
from app.permissions import permissions_for


def random_token_version():
    return secrets.randbelow(2**30)


class User(ResourceMixin, db.Model):
    __tablename__ = "users"
    sort_keys = ("id", "email", "role", "created_at")
    # Local: e-mail, password and role. External: the issuer's sub, and none of those.
    table_constraints = (
        CheckConstraint(
            "(external_id IS NULL AND email IS NOT NULL AND password_hash IS NOT NULL AND role IS NOT NULL)"
            " OR (external_id IS NOT NULL AND email IS NULL AND password_hash IS NULL AND role IS NULL)",
            name="local_or_external",
        ),
    )

    # A local account's login, stored lower-case, so the plain unique index is
    # case-insensitive. Null for an external account.
    email: Mapped[str | None] = mapped_column(String(254), unique=True, nullable=True)
    # Null for an external account: it never signs in with a password here.
    password_hash: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # Null for an external account: the issuer owns its permissions. No column
    # default (it would fill the null in): accounts.register gives DEFAULT_ROLE.
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The issuer's `sub` of an external account; unique, so its first concurrent
    # requests create one account.
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    # The token's `email` claim, kept apart from `email`: the provider's address is
    # not a login here and may equal a local account's.
    external_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # Every token carries the version it was issued under; bumping it (on a
    # password change) invalidates all earlier tokens at once. It starts at random:
    # SQLite gives a deleted user's id to the next account, and the deleted user's
    # tokens must not fit it.
    token_version: Mapped[int] = mapped_column(Integer, default=random_token_version, nullable=False)
    # Kept by services.buckets in the transaction that creates or deletes a bucket.
    bucket_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    # Moves on every write to the user's buckets, in its transaction: the cached totals of their
    # searched list are keyed by it (app.pagination). Read with the user on every request (auth), it
    # costs no statement. It starts at random for the reason token_version does.
    buckets_revision: Mapped[int] = mapped_column(
        Integer, default=random_token_version, server_default="0", nullable=False
    )

    # When the address was proven (a verification or reset link followed); null while it is not.
    # An external account mirrors its token's `email_verified` claim here (app.oidc).
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    # An external account's permissions, set from each request's token (see app.oidc).
    token_permissions = ()

    @property
    def is_external(self):
        return self.external_id is not None

    @property
    def email_verified(self):
        return self.email_verified_at is not None

    @property
    def public_email(self):
        return self.external_email if self.is_external else self.email

    @property
    def permissions(self):
        if self.is_external:
            return sorted(self.token_permissions)
        return permissions_for(self.role)


class RevokedToken(db.Model):
    """The blacklist: a revoked token's jti, kept until the token expires."""

    __tablename__ = "revoked_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class DeletedExternalAccount(db.Model):
    """When the last local account of an external `sub` was deleted: a token of that sub issued
    before then belonged to the deleted account and opens nothing, not even a new account (app.oidc).
    A later token of the sub makes a new, empty account, as the provider vouches for the person anew."""

    __tablename__ = "deleted_external_accounts"

    external_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
