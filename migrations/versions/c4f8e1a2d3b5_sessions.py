"""sessions: one row per sign-in of a device, continued by its rotated refresh tokens

Tokens issued from now on carry their session's id (`sid`); a token whose session row is gone is
revoked. Tokens issued before carry none: their access tokens live until they expire, and a refresh
of such a refresh token spends it (blacklist) and starts a session (services.accounts).
AUTOINCREMENT on SQLite: an ended session's id is never given to a later one.

Revision ID: c4f8e1a2d3b5
Revises: 7a1e5c2d9f30
Create Date: 2026-11-25 09:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "c4f8e1a2d3b5"
down_revision = "7a1e5c2d9f30"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("refresh_jti", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_sessions_user_id_last_used_at", "sessions", ["user_id", "last_used_at", "id"], unique=False)


def downgrade():
    op.drop_index("ix_sessions_user_id_last_used_at", table_name="sessions")
    op.drop_table("sessions")
