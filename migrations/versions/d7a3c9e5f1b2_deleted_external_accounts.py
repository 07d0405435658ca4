"""deleted_external_accounts: when the account of an external sub was deleted

A token of the external issuer issued before that moment belonged to the deleted account: it is
invalid, and makes no new account either (app.oidc). Empty at first: accounts deleted earlier are
not known.

Revision ID: d7a3c9e5f1b2
Revises: c4f8e1a2d3b5
Create Date: 2026-11-25 14:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "d7a3c9e5f1b2"
down_revision = "c4f8e1a2d3b5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "deleted_external_accounts",
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("external_id", name=op.f("pk_deleted_external_accounts")),
    )


def downgrade():
    op.drop_table("deleted_external_accounts")
