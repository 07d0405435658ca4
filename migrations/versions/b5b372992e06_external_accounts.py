"""external accounts: users signed in through an OIDC issuer

An external account has an `external_id` (the issuer's `sub`) and maybe an
`external_email`, and no e-mail login, password or role; a local account has
those three and no `external_id`. The check constraint keeps the two apart.

Revision ID: b5b372992e06
Revises: b56cb7ca8e7c
Create Date: 2026-11-23 21:41:40.978106

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "b5b372992e06"
down_revision = "b56cb7ca8e7c"
branch_labels = None
depends_on = None

LOCAL_OR_EXTERNAL = (
    "(external_id IS NULL AND email IS NOT NULL AND password_hash IS NOT NULL AND role IS NOT NULL)"
    " OR (external_id IS NOT NULL AND email IS NULL AND password_hash IS NULL AND role IS NULL)"
)


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("external_email", sa.String(length=254), nullable=True))
        batch_op.alter_column("email", existing_type=sa.VARCHAR(length=254), nullable=True)
        batch_op.alter_column("password_hash", existing_type=sa.VARCHAR(length=60), nullable=True)
        batch_op.alter_column("role", existing_type=sa.VARCHAR(length=32), nullable=True)
        batch_op.create_unique_constraint(batch_op.f("uq_users_external_id"), ["external_id"])
        batch_op.create_check_constraint("local_or_external", LOCAL_OR_EXTERNAL)
    if op.get_bind().dialect.name == "postgresql":  # q on /v1/users searches it (pg_trgm is on already)
        op.execute("CREATE INDEX ix_users_external_email_trgm ON users USING gin (lower(external_email) gin_trgm_ops)")


def downgrade():
    # Accounts of the external issuer cannot exist without these columns.
    op.execute("DELETE FROM users WHERE external_id IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_users_external_email_trgm")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_users_local_or_external"), type_="check")
        batch_op.drop_constraint(batch_op.f("uq_users_external_id"), type_="unique")
        batch_op.alter_column("role", existing_type=sa.VARCHAR(length=32), nullable=False)
        batch_op.alter_column("password_hash", existing_type=sa.VARCHAR(length=60), nullable=False)
        batch_op.alter_column("email", existing_type=sa.VARCHAR(length=254), nullable=False)
        batch_op.drop_column("external_email")
        batch_op.drop_column("external_id")
