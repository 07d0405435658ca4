import secrets
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import ResourceMixin, sort_indexes, utcnow
from app.permissions import DEFAULT_ROLE, permissions_for


def random_token_version():
    return secrets.randbelow(2**30)


class User(ResourceMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = sort_indexes("users", ("email", "role", "created_at"))

    # Stored lower-case, so the plain unique index is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(60), nullable=False)
    role: Mapped[str] = mapped_column(String(32), default=DEFAULT_ROLE, nullable=False)
    # Every token carries the version it was issued under; bumping it (on a
    # password change) invalidates all earlier tokens at once. It starts at random:
    # SQLite gives a deleted user's id to the next account, and the deleted user's
    # tokens must not fit it.
    token_version: Mapped[int] = mapped_column(Integer, default=random_token_version, nullable=False)
    # Kept by services.buckets in the transaction that creates or deletes a bucket.
    bucket_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)

    @property
    def permissions(self):
        return permissions_for(self.role)


class RevokedToken(db.Model):
    """The blacklist: a revoked token's jti, kept until the token expires."""

    __tablename__ = "revoked_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
