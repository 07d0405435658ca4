"""stored_files: one lock row per content address

Revision ID: b56cb7ca8e7c
Revises: e21034e982f4
Create Date: 2026-11-23 21:42:00.506283

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b56cb7ca8e7c'
down_revision = 'e21034e982f4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stored_files',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_stored_files'))
    )


def downgrade():
    op.drop_table('stored_files')
