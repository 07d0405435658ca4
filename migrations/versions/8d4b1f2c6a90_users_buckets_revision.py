"""users.buckets_revision: the version of a user's buckets, that keys their list's cached totals

Every write to a user's buckets moves it, in the same transaction (services.buckets); a
`q` search's exact total is then counted once per revision and reused (app.pagination).
Existing users start at 0: no process has cached a total under a revision that did not exist.

Revision ID: 8d4b1f2c6a90
Revises: 3c9d0f4a7b21
Create Date: 2026-11-24 03:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "8d4b1f2c6a90"
down_revision = "3c9d0f4a7b21"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("buckets_revision", sa.Integer(), server_default="0", nullable=False))


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("buckets_revision")
