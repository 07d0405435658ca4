from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

RUNNING = "running"
DONE = "done"


class IdempotencyKey(db.Model):
    """One `Idempotency-Key` of one user: the request it was first used with and, once
    that request finished, the answer every repeat gets again."""

    __tablename__ = "idempotency_keys"
    # The constraint, not a prior SELECT, decides who takes a key.
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    # The request's fingerprint: a repeat must match it exactly.
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    body_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    # Whoever holds the key now: a takeover of a dead request changes it, so the
    # dead request (should it wake up) can no longer record its answer.
    lock_token: Mapped[str] = mapped_column(String(32), nullable=False)
    locked_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    headers: Mapped[str | None] = mapped_column(Text)  # JSON object
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
