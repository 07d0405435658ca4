"""Columns every stored resource shares."""

from datetime import datetime, timezone

from sqlalchemy import DateTime, Index, Integer, event
from sqlalchemy.orm import Mapped, mapped_column, object_session


def utcnow():
    """Naive UTC: SQLite keeps no zone, so every database stores UTC without one."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class ResourceMixin:
    """A resource's identity and its creation and modification times."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    modified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)
    # Moves on every write of the row through the ORM, so that `If-Match` can be checked
    # by a conditional UPDATE (app.api.conditional); never shown to clients.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1", nullable=False)


@event.listens_for(ResourceMixin, "before_update", propagate=True)
def _bump_version(_mapper, _connection, target):
    # Computed by the database (version + 1), so two concurrent writers never leave
    # the same version behind; a flush with no net change still writes nothing.
    if object_session(target).is_modified(target):
        target.version = type(target).version + 1


def sort_indexes(table, keys, scope=None):
    """An index per sort key, led by the list's scope (owner, bucket) and closed by the
    id tie-breaker: any page of any sort, deep or not, is one index range scan."""
    lead = (scope,) if scope else ()
    return tuple(Index(f"ix_{table}_{'_'.join((*lead, key))}", *lead, *dict.fromkeys((key, "id"))) for key in keys)
