"""Columns every stored resource shares."""

from datetime import datetime, timezone

from sqlalchemy import DateTime, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column


def utcnow():
    """Naive UTC: SQLite keeps no zone, so every database stores UTC without one."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class ResourceMixin:
    """A resource's identity and its creation and modification times."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    modified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)


def sort_indexes(table, keys, scope=None):
    """An index per sort key, led by the list's scope (owner, bucket) and closed by the
    id tie-breaker: any page of any sort, deep or not, is one index range scan."""
    lead = (scope,) if scope else ()
    return tuple(Index(f"ix_{table}_{'_'.join((*lead, key))}", *lead, *dict.fromkeys((key, "id"))) for key in keys)
