"""Catalogue totals kept as counters, an index for the actors' filters

`catalogue_counts` holds one row per catalogue collection (actors, movies) with its number of
rows: the total of the unfiltered list, kept by the services in the transaction that inserts or
deletes a row. The actors' gender index becomes (lower(gender), age, id), with gender itself
included on PostgreSQL, so that the total of a gender/age filter is an index-only scan.

Revision ID: 3c9d0f4a7b21
Revises: b5b372992e06
Create Date: 2026-11-24 00:30:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "3c9d0f4a7b21"
down_revision = "b5b372992e06"
branch_labels = None
depends_on = None

COLLECTIONS = ("actors", "movies")


def upgrade():
    op.create_table(
        "catalogue_counts",
        sa.Column("collection", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("collection", name=op.f("pk_catalogue_counts")),
    )
    for table in COLLECTIONS:
        op.execute(f"INSERT INTO catalogue_counts (collection, total) SELECT '{table}', count(*) FROM {table}")
    op.drop_index("ix_actors_lower_gender", table_name="actors")
    op.create_index(
        "ix_actors_lower_gender_age",
        "actors",
        [sa.literal_column("lower(gender)"), "age", "id"],
        unique=False,
        postgresql_include=["gender"],
    )


def downgrade():
    op.drop_index("ix_actors_lower_gender_age", table_name="actors")
    op.create_index("ix_actors_lower_gender", "actors", [sa.literal_column("lower(gender)")], unique=False)
    op.drop_table("catalogue_counts")
