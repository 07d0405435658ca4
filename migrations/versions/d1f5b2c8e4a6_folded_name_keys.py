"""Names compared as people read them: buckets.name_key and movies.title_key (NFC, case-folded)

A bucket's name is unique per owner, a movie's title per release date, as people read them: by
`fold` (app.models.base: NFC, then casefold), which SQL cannot compute on both databases. Each
keeps its folded key in a column of its own, under a unique index that replaces the one on
lower(); on PostgreSQL `q` is served by a trigram index on the key instead of lower().

Rows that become duplicates once folded (the same owner's "Café" in both Unicode forms, or
"Σίσυφος" and "ΣΊΣΥΦΟΣ") are never merged: the upgrade stops before changing anything and lists
them, for an operator to rename one, then run it again.

Revision ID: d1f5b2c8e4a6
Revises: c4e8a1f7b3d2
Create Date: 2026-12-06 12:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "d1f5b2c8e4a6"
down_revision = "c4e8a1f7b3d2"
branch_labels = None
depends_on = None

BATCH = 5000
# table, name column, key column, key length, what a name is unique within, old index, new index
KEYS = (
    ("buckets", "name", "name_key", 300, "owner_id", "uq_buckets_owner_id_lower_name", "uq_buckets_owner_id_name_key"),
    (
        "movies",
        "title",
        "title_key",
        600,
        "release_date",
        "uq_movies_lower_title_release_date",
        "uq_movies_title_key_release_date",
    ),
)


class NameCollision(RuntimeError):
    pass


def _duplicates(connection, fold, table, name, scope):
    """Rows whose folded names are equal within one scope: streamed in scope order, so only one
    scope's names are held at a time."""
    duplicates, seen, current = [], {}, object()
    rows = connection.execute(sa.text(f"SELECT id, {scope}, {name} FROM {table} ORDER BY {scope}, id"))
    for row_id, row_scope, row_name in rows:
        if row_scope != current:
            seen, current = {}, row_scope
        first = seen.setdefault(fold(row_name), (row_id, row_name))
        if first[0] != row_id:
            pair = f"{table}.id {first[0]} ({first[1]!r}) and {table}.id {row_id} ({row_name!r})"
            duplicates.append(f"  {pair}, {scope} {row_scope}")
    return duplicates


def _fill(connection, fold, table, name, key):
    """Set every row's key, a batch of ids at a time."""
    last = 0
    select = sa.text(f"SELECT id, {name} FROM {table} WHERE id > :last ORDER BY id LIMIT {BATCH}")
    update = sa.text(f"UPDATE {table} SET {key} = :key WHERE id = :id")
    while rows := connection.execute(select, {"last": last}).all():
        connection.execute(update, [{"id": row_id, "key": fold(row_name)} for row_id, row_name in rows])
        last = rows[-1][0]


def upgrade():
    from app.models.base import fold  # the models' own fold: the keys must be what the app computes

    connection = op.get_bind()
    duplicates = [
        line for table, name, _, _, scope, *_ in KEYS for line in _duplicates(connection, fold, table, name, scope)
    ]
    if duplicates:
        raise NameCollision(
            "These rows are one name once compared as people read them (NFC, case-folded); nothing was "
            "changed. Rename one of each pair, then upgrade again:\n" + "\n".join(duplicates)
        )
    postgres = connection.dialect.name == "postgresql"
    for table, name, key, length, scope, old_index, new_index in KEYS:
        # Outside the batch: SQLite's batch mode does not see an index on an expression.
        op.drop_index(old_index, table_name=table)
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column(key, sa.String(length=length), nullable=True))
        _fill(connection, fold, table, name, key)
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(key, existing_type=sa.String(length=length), nullable=False)
            batch_op.create_index(new_index, [scope, key] if table == "buckets" else [key, scope], unique=True)
        if postgres:
            op.execute(f"DROP INDEX ix_{table}_{name}_trgm")
            op.execute(f"CREATE INDEX ix_{table}_{key}_trgm ON {table} USING gin ({key} gin_trgm_ops)")


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, name, key, length, scope, old_index, new_index in KEYS:
        if postgres:
            op.execute(f"DROP INDEX ix_{table}_{key}_trgm")
            op.execute(f"CREATE INDEX ix_{table}_{name}_trgm ON {table} USING gin (lower({name}) gin_trgm_ops)")
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(new_index)
            batch_op.drop_column(key)
        lowered = sa.literal_column(f"lower({name})")
        op.create_index(old_index, table, [scope, lowered] if table == "buckets" else [lowered, scope], unique=True)
