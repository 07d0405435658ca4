"""Columns every stored resource shares, and the folded keys of names that must be unique."""

import unicodedata
from datetime import datetime, timezone

from sqlalchemy import DateTime, Index, Integer, String, event
from sqlalchemy.orm import Mapped, declared_attr, mapped_column


def utcnow():
    """Naive UTC: SQLite keeps no zone, so every database stores UTC without one."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class ResourceMixin:
    """A resource's identity and its creation and modification times, and the indexes its list
    sorts by, made from two declarations of the model:

    - `sort_keys`: what its list sorts by (app.pagination.Listing), `id` first;
    - `list_scope`: the column its list is always narrowed to (a bucket's items: `bucket_id`), if any.

    Other table arguments (constraints) go in `table_constraints`.
    """

    sort_keys = ("id",)
    list_scope = None
    table_constraints = ()

    @declared_attr.directive
    def __table_args__(cls):
        return (*sort_indexes(cls.__tablename__, cls.sort_keys, cls.list_scope), *cls.table_constraints)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    modified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)


def sort_indexes(table, keys, scope=None):
    """An index per sort key of a model (ResourceMixin), led by the list's scope (owner, bucket) and
    closed by the id tie-breaker: any page of any sort, deep or not, is one index range scan.
    Without a scope, `id` is the primary key's."""
    lead = (scope,) if scope else ()
    return tuple(
        Index(f"ix_{table}_{'_'.join((*lead, key))}", *lead, *dict.fromkeys((key, "id")))
        for key in keys
        if lead or key != "id"
    )


def fold(text):
    """A name as people read it, for the rules that say two names are one: NFC and case-folded.

    "Café" in either Unicode form is one name, and so are "Σίσυφος" and "ΣΊΣΥΦΟΣ" (casefold(),
    unlike lower(), maps the final sigma too). NFC again after folding, which may decompose.
    """
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())


def folded_key(source, length):
    """A column that keeps `fold(<source column>)`, for a unique index and for `q` (app.pagination).

    A bulk INSERT (seed) gets it from this default; the model sets it whenever the ORM sets
    `source` (see `keeps_folded`). `length` allows for folding's growth (up to 3 characters from 1).
    """

    def default(context):
        return fold(context.get_current_parameters()[source])

    return mapped_column(String(length), nullable=False, default=default, info={"folds": source})


def keeps_folded(model, source, key):
    """Whenever the ORM sets `model.<source>`, set `model.<key>` to its fold too."""

    @event.listens_for(getattr(model, source), "set")
    def _fold(target, value, _old, _initiator):
        setattr(target, key, fold(value))
