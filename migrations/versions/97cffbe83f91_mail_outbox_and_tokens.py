"""Mail: the outbox, the tokens mails carry, and users.email_verified_at

`mail_outbox` holds the mails written in a request's transaction until a sender delivers them
(app.mail); its index on (failed_at, next_attempt_at) serves the senders' scan for due mails and
the count of waiting ones. `mail_tokens` keeps the SHA-256 of each verification and reset token,
looked up by that digest (unique), counted per address and hour, and voided per user.
Existing accounts start unverified (`email_verified_at` null): nobody proved their address yet.

Revision ID: 97cffbe83f91
Revises: d7a3c9e5f1b2
Create Date: 2026-12-06 03:09:35.805112

"""

import sqlalchemy as sa
from alembic import op

revision = "97cffbe83f91"
down_revision = "d7a3c9e5f1b2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("failed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mail_outbox_failed_at_next_attempt_at", "mail_outbox", ["failed_at", "next_attempt_at"])
    op.create_table(
        "mail_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("address_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mail_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_mail_tokens_token_hash")),
    )
    op.create_index(
        "ix_mail_tokens_address_key_purpose_created_at", "mail_tokens", ["address_key", "purpose", "created_at"]
    )
    op.create_index(op.f("ix_mail_tokens_expires_at"), "mail_tokens", ["expires_at"])
    op.create_index("ix_mail_tokens_user_id_purpose", "mail_tokens", ["user_id", "purpose"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified_at", sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_verified_at")
    op.drop_table("mail_tokens")
    op.drop_table("mail_outbox")
