"""Actor tallies: how many actors per (lower(gender), age)

`actor_tallies` holds one row per (lower(gender), age) with its number of actors, kept by the
services in the transaction that inserts, deletes or moves an actor, so that the total of the
actors list filtered by gender, min_age and max_age is a sum of a few rows instead of a count.
Filled here from the actors already there.

Revision ID: 7a1e5c2d9f30
Revises: 8d4b1f2c6a90
Create Date: 2026-11-24 12:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "7a1e5c2d9f30"
down_revision = "8d4b1f2c6a90"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "actor_tallies",
        sa.Column("gender_key", sa.String(length=30), nullable=False),
        sa.Column("age", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("gender_key", "age", name=op.f("pk_actor_tallies")),
    )
    op.execute(
        "INSERT INTO actor_tallies (gender_key, age, total) "
        "SELECT lower(gender), age, count(*) FROM actors GROUP BY lower(gender), age"
    )


def downgrade():
    op.drop_table("actor_tallies")
