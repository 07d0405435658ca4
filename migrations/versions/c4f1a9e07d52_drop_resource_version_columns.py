"""Drop the resources' version columns: If-Match is checked against the row as locked for the write

Revision ID: c4f1a9e07d52
Revises: 97cffbe83f91
Create Date: 2026-12-06 04:10:00.000000

"""

from alembic import op


revision = "c4f1a9e07d52"
down_revision = "97cffbe83f91"
branch_labels = None
depends_on = None


VERSIONED_TABLES = ("actors", "buckets", "images", "items", "movies", "users")


def upgrade():
    # Plain ALTER TABLE on both databases (SQLite 3.35+ drops a column in place): a batch
    # operation would rebuild each SQLite table without its expression indexes.
    for table in VERSIONED_TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN version")


def downgrade():
    for table in VERSIONED_TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN version INTEGER DEFAULT 1 NOT NULL")
