from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import utcnow

USER_AGENT_LENGTH = 255
IP_LENGTH = 45  # the longest text form of an IPv6 address (with an embedded IPv4 one)


class UserSession(db.Model):
    """One sign-in of one device: a login (or registration) and the refresh tokens rotated from it.

    Every token carries its session's id (`sid`); a token whose session row is gone is revoked
    (app.auth.TOKEN_USER), so ending a session is deleting its row. Ids are never reused, not even
    by SQLite (AUTOINCREMENT): a token of an ended session must never fit a later one.
    """

    __tablename__ = "sessions"
    __table_args__ = (
        # A user's sessions, most recently used first: the list, the cap at login, ending them all.
        Index("ix_sessions_user_id_last_used_at", "user_id", "last_used_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    # The jti of the one refresh token that may continue the session: a refresh replaces it with a
    # conditional UPDATE, so of two uses of one refresh token (or a refresh and an end) one wins.
    refresh_jti: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # The last login or refresh of the session (when tokens were last issued in it), not its last
    # request: that would add a write to every read.
    last_used_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # When its current refresh token expires: after that nothing can continue it.
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    # As seen at the last login or refresh; the address as the rate limiter sees it (TRUSTED_PROXIES).
    user_agent: Mapped[str | None] = mapped_column(String(USER_AGENT_LENGTH), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(IP_LENGTH), nullable=True)

    # Whether it is the caller's own session: set for the list (services.sessions.live_sessions).
    current = False
