"""Counter columns instead of per-row counts, an index per sort key, trigram search

Revision ID: 5e2ef15ade1d
Revises: b44b57f3cc57
Create Date: 2026-11-23 21:44:39.119125

"""

import sqlalchemy as sa
from alembic import op

revision = "5e2ef15ade1d"
down_revision = "b44b57f3cc57"
branch_labels = None
depends_on = None

# table -> (scope column or None, sort keys): each index is (scope, key, id).
SORT_INDEXES = {
    "users": (None, ("email", "role", "created_at")),
    "buckets": ("owner_id", ("id", "name", "created_at", "modified_at")),
    "items": ("bucket_id", ("id", "name", "done", "created_at", "modified_at")),
    "actors": (None, ("name", "age", "created_at")),
    "movies": (None, ("title", "release_date", "created_at")),
    "images": (None, ("title", "size_bytes", "created_at")),
}
# Indexes the sort indexes replace.
OLD_INDEXES = {
    "users": {"ix_users_role": ["role"]},
    "buckets": {"ix_buckets_owner_id_created_at": ["owner_id", "created_at"]},
    "items": {"ix_items_bucket_id_created_at": ["bucket_id", "created_at"], "ix_items_bucket_id_done": ["bucket_id", "done"]},
    "actors": {"ix_actors_name": ["name"], "ix_actors_age": ["age"], "ix_actors_created_at": ["created_at"]},
    "movies": {"ix_movies_title": ["title"], "ix_movies_release_date": ["release_date"], "ix_movies_created_at": ["created_at"]},
    "images": {"ix_images_title": ["title"], "ix_images_size_bytes": ["size_bytes"], "ix_images_created_at": ["created_at"]},
}
# The `q` columns: lower(column) LIKE '%x%' is served by a trigram index on PostgreSQL.
SEARCH_COLUMNS = {
    "users": ("email",),
    "buckets": ("name",),
    "items": ("name", "description"),
    "actors": ("name",),
    "movies": ("title",),
    "images": ("title", "description"),
}
COUNTERS = {
    ("users", "bucket_count"): "SELECT count(*) FROM buckets WHERE buckets.owner_id = users.id",
    ("buckets", "item_count"): "SELECT count(*) FROM items WHERE items.bucket_id = buckets.id",
    ("actors", "movie_count"): "SELECT count(*) FROM movie_actors WHERE movie_actors.actor_id = actors.id",
}


def _sort_index(table, scope, key):
    lead = [scope] if scope else []
    return f"ix_{table}_{'_'.join([*lead, key])}", list(dict.fromkeys([*lead, key, "id"]))


def upgrade():
    for (table, column), count in COUNTERS.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column(column, sa.Integer(), server_default="0", nullable=False))
        op.execute(f"UPDATE {table} SET {column} = ({count})")
    for table, (scope, keys) in SORT_INDEXES.items():
        with op.batch_alter_table(table) as batch_op:
            for name in OLD_INDEXES[table]:
                batch_op.drop_index(name)
            for key in keys:
                batch_op.create_index(*_sort_index(table, scope, key), unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for table, columns in SEARCH_COLUMNS.items():
            for column in columns:
                op.execute(f"CREATE INDEX ix_{table}_{column}_trgm ON {table} USING gin (lower({column}) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table, columns in SEARCH_COLUMNS.items():
            for column in columns:
                op.execute(f"DROP INDEX ix_{table}_{column}_trgm")
    for table, (scope, keys) in SORT_INDEXES.items():
        with op.batch_alter_table(table) as batch_op:
            for key in keys:
                batch_op.drop_index(_sort_index(table, scope, key)[0])
            for name, columns in OLD_INDEXES[table].items():
                batch_op.create_index(name, columns, unique=False)
    for table, column in COUNTERS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column(column)
