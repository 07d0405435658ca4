"""The mail outbox, and the tokens that mails carry."""

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow


class OutboxMail(db.Model):
    """A mail waiting to be sent, written in the transaction of the change that caused it
    (app.mail). Deleted once the SMTP server took it; kept with `failed_at` when it never did."""

    __tablename__ = "mail_outbox"
    # The sender's scan (waiting and due, soonest first) and the count of waiting mails.
    __table_args__ = (
        Index("ix_mail_outbox_failed_at_next_attempt_at", "failed_at", "next_attempt_at"),
        # Ids never come back on SQLite either: a mail's Message-ID is made of its id.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    # Null for a stand-in written only so that a request costs the same whoever it names
    # (a reset asked for an unknown address): the sender drops it unsent.
    recipient: Mapped[str | None] = mapped_column(String(254), nullable=True)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    # The plain-text body, encrypted (it holds a live link; app.mail.seal).
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # When the current round of attempts began: the retry schedule counts from here
    # (`manage.py mail retry` starts a new round).
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # When a sender may take it next; a claim moves it past the claim's lease.
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class MailToken(db.Model):
    """A token sent in a mail (e-mail verification, password reset), kept as its SHA-256 only."""

    __tablename__ = "mail_tokens"
    __table_args__ = (
        # How many mails of a kind an address was sent lately (the hourly cap).
        Index("ix_mail_tokens_address_key_purpose_created_at", "address_key", "purpose", "created_at"),
        # A user's tokens, voided together (and deleted with the user).
        Index("ix_mail_tokens_user_id_purpose", "user_id", "purpose"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # Null for the stand-in of a reset asked for an address without an account: never usable.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    # A keyed digest of the address it was sent to: the cap counts per address, and the
    # addresses of people who have no account are not stored.
    address_key: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
