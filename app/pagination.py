"""Collections in one place: each list's declaration, search, sort, filters, totals, pages, cursors and links.

A list is declared once (`Listing`, like DRF's `ordering_fields`/`search_fields`/`filterset_fields`):
its sort keys are its model's (`sort_keys`, each backed by an index), and the query schema's `sort`
choices, the ORDER BY, the `q` columns, the filters' conditions, the total and the cursor keyset all
come from that declaration. A view hands it the rows it may list and the query's args:
`BUCKETS.page(select(Bucket).where(...), args, of=current_user)`.
"""

import base64
import copy
import hashlib
import hmac
import math
import threading
from collections import OrderedDict
from datetime import date, datetime
from typing import Any, Callable, NamedTuple
from urllib.parse import urlencode

import orjson
from flask import current_app, g, request
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import func, or_, tuple_

from app.errors import APIError
from app.extensions import db
from app.fields import MAX_ID, QueryInteger, Schema, Text
from app.models.base import fold

LIKE_ESCAPE = "\\"
# Query parameters that move through a list rather than choose which list it is.
POSITION_ARGS = ("page", "per_page", "cursor")
BAD_CURSOR = "Invalid cursor: it was altered, or it belongs to another list, sort, filter or user"


def contains_ci(column, text):
    """Case-insensitive substring match in which % and _ are literal characters.

    A folded key column (app.models.base.folded_key) is matched by the fold of `text`, so either
    Unicode form of a name finds it; any other column by lower(). On PostgreSQL a trigram index on
    the key, or on lower(column), serves this very expression.
    """
    folded = "folds" in column.info
    text = fold(text) if folded else text.lower()
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return (column if folded else func.lower(column)).like(f"%{escaped}%", escape=LIKE_ESCAPE)


class Filter(NamedTuple):
    """A list's filter: its query parameter's field, and `where(value)`, the condition the value puts
    on the listed rows (None: none)."""

    field: Any
    where: Callable


class Listing:
    """One collection: its resource, sort keys (its model's), searched columns, filters, and where
    its total comes from.

    `total(narrowing, parent)` is the list's total read from what is kept, or None: the rows are then
    counted. `narrowing` holds the args that narrow the list (`q`, the filters given; {} when none
    does), `parent` loads the list's parent (see `page`); `kept` makes the usual one. `revision(parent)`
    is a number that every write to the listed rows moves, in its transaction: a counted total is
    then counted once per revision, and reused (`CountCache`).
    """

    def __init__(self, resource, *, search=(), filters=None, checks=(), total=None, revision=None):
        """A list of `resource` (an app.fields.Resource): its answer's key and its model come from there."""
        filters = filters or {}
        key, model = resource.list_key, resource.model
        self.resource = resource
        self.key = key
        self.tie_breaker = model.id
        self.sortable = {name: _sort_key(key, name, getattr(model, name)) for name in model.sort_keys}
        self.search = [getattr(model, name) for name in search]
        self.conditions = {name: declared.where for name, declared in filters.items()}
        self.total = total
        self.revision = revision
        self.args = list_args(
            f"{model.__name__}ListArgs",
            model.sort_keys,
            checks=checks,
            search=[column.info.get("folds", column.key) for column in self.search],  # a key searches its source
            **{name: declared.field for name, declared in filters.items()},
        )

    def within(self, *, total, without=()):
        """This list inside a parent (an actor's movies): its own total, without the filters the
        parent makes pointless (the actor_id of movies listed by actor)."""
        variant = copy.copy(self)
        variant.total, variant.revision = total, None
        if without:
            variant.conditions = {name: where for name, where in self.conditions.items() if name not in without}
            variant.args = self.args(exclude=without)
        return variant

    def page(self, stmt, args, of=None):
        """The page `args` ask for, of the rows of `stmt` that `q` and the filters leave.

        `of` loads the list's parent (the owner of buckets, the bucket of items; it answers 404 if the
        caller may not see it), once and only when it is needed: for a total or revision kept on it,
        or to tell an empty page of the parent from no parent at all.
        """
        parent = _Parent(of)
        narrowing = self._narrowing(args)
        if narrowing:
            stmt = stmt.where(*self._where(narrowing))
        name, column, descending = self._sort_column(args["sort"])
        keys = (column, self.tie_breaker)
        order = [key.desc() if descending else key.asc() for key in keys]
        binding = _binding(args)
        per_page = args["per_page"]
        if "cursor" in args:
            after = _decode_cursor(args["cursor"], binding, column)
            boundary = tuple_(*keys) < tuple_(*after) if descending else tuple_(*keys) > tuple_(*after)
            rows = _fetch(stmt.where(boundary).order_by(*order).limit(per_page + 1))
            return Page(self, args, parent.seen(rows[:per_page]), _next_cursor(rows, per_page, name, binding))
        page = args.get("page", 1)
        offset = (page - 1) * per_page
        count = self._total(stmt, narrowing, parent, binding)
        if offset >= count:
            return Page(self, args, parent.seen([]), None, page=page, total=count)
        if offset >= current_app.config["MAX_PAGE_OFFSET"]:
            raise APIError(
                400,
                f"Page numbers reach {current_app.config['MAX_PAGE_OFFSET']} rows deep: "
                "walk further with cursor=<pagination.next_cursor>",
                errors={"page": ["Too deep: use cursor instead."]},
            )
        rows = _fetch(self._at_offset(stmt, order, per_page + 1, offset))
        return Page(self, args, rows[:per_page], _next_cursor(rows, per_page, name, binding), page=page, total=count)

    def _total(self, stmt, narrowing, parent, binding):
        """The page mode's total: kept, else counted (once per revision, where the list has one)."""
        kept = self.total(narrowing, parent) if self.total else None
        if kept is not None:
            return kept
        if self.revision is None:
            return _count_rows(stmt)
        return _count_once(stmt, (binding, self.revision(parent())))

    def _at_offset(self, stmt, order, limit, offset):
        """`limit` rows of `stmt` in `order`, `offset` rows deep. Past the first page, the rows the
        offset skips are walked as ids only, which the sort index holds (an index-only scan on
        PostgreSQL), and only the page's own rows are read from the table: a "deferred join"."""
        if not offset:
            return stmt.order_by(*order).limit(limit)
        skipped = stmt.with_only_columns(self.tie_breaker, maintain_column_froms=True).correlate(None)
        ids = skipped.order_by(*order).limit(limit).offset(offset)
        return stmt.where(self.tie_breaker.in_(ids)).order_by(*order)

    def _narrowing(self, args):
        """The args that narrow the list: the filters given, and a searched `q`."""
        narrowing = {name: args[name] for name in self.conditions if name in args}
        if args.get("q") and self.search:
            narrowing["q"] = args["q"]
        return narrowing

    def _where(self, narrowing):
        """The conditions the narrowing args put on the rows: each filter's, then the search's."""
        for name, value in narrowing.items():
            if name == "q":
                yield or_(*(contains_ci(column, value) for column in self.search))
            elif (condition := self.conditions[name](value)) is not None:
                yield condition

    def _sort_column(self, sort):
        name = sort.lstrip("-")
        return name, self.sortable[name], sort.startswith("-")


def kept(read):
    """A Listing's `total` from a count kept of the whole list: `read(parent)` when nothing narrows
    the list (buckets: `lambda owner: owner.bucket_count`); counted when something does."""
    return lambda narrowing, parent: None if narrowing else read(parent())


class _Parent:
    """A list's parent, loaded once and only when asked for (Listing.page's `of`)."""

    __slots__ = ("_load", "_loaded")

    def __init__(self, load):
        self._load = load
        self._loaded = None

    def __call__(self):
        if self._loaded is None and self._load is not None:
            self._loaded = self._load()
        return self._loaded

    def seen(self, rows):
        """`rows`, once an empty page has made sure the parent is there (404 if not)."""
        if not rows and self._load is not None:
            self()
        return rows


def _sort_key(listing, name, column):
    """A NULL key would fall out of the keyset comparison: a nullable text column (an
    external account has no e-mail login nor role) sorts with NULL read as ''."""
    if not column.nullable:
        return column
    if column.type.python_type is not str:
        raise ValueError(f"{listing}: sort field {name} must be NOT NULL")
    return func.coalesce(column, "")


def _fetch(stmt):
    return db.session.scalars(stmt).unique().all()


def _count_once(stmt, key):
    """The number of `stmt`'s rows, counted once while `key` stays the same."""
    totals = current_app.extensions["list_totals"]
    total = totals.get(key)
    if total is None:
        total = _count_rows(stmt)
        totals.put(key, total)
    return total


def _count_rows(stmt):
    return db.session.scalar(stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None))


class CountCache:
    """The totals of narrowed lists (a `q` search), by (list, revision of its rows), per process.

    Exact, because the key changes with the rows: the revision moves in the transaction of every
    write to them, and the request reads it (with the user, by auth) before it counts. A request
    that started before a write may reuse a total counted after it, or the other way round: both
    are answers of a request concurrent with that write. Paging through a search, or the same
    search from many clients, counts once. The oldest entry goes first once `size` are kept.
    """

    def __init__(self, size):
        self._size = size
        self._totals = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            return self._totals.get(key)

    def put(self, key, total):
        with self._lock:
            self._totals[key] = total
            if len(self._totals) > self._size:
                self._totals.popitem(last=False)


def init_app(app):
    app.extensions["list_totals"] = CountCache(app.config["LIST_TOTALS_CACHED"])


# -- the query schema ----------------------------------------------------------


class ListArgs(Schema):
    """Query parameters every collection takes (unknown parameters are ignored)."""

    page = QueryInteger(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Page number (default 1), up to MAX_PAGE_OFFSET rows deep; not with `cursor`"},
    )
    per_page = QueryInteger(load_default=20, validate=validate.Range(min=1, max=100))
    # URL-safe ASCII only: anything else cannot be a cursor, and a long non-ASCII value would
    # swell past gunicorn's request-line limit before the app could answer 400.
    cursor = fields.String(
        validate=[validate.Length(min=1, max=1000), validate.Regexp(r"^[A-Za-z0-9_.=-]+$")],
        metadata={"description": "`pagination.next_cursor` of the previous page: walks a list of any length"},
    )

    @validates_schema
    def page_or_cursor(self, data, **kwargs):
        if "page" in data and "cursor" in data:
            raise ValidationError("Give page or cursor, not both.", "cursor")


def list_args(name, sortable, *, search=(), checks=(), **filters):
    """A ListArgs schema with `sort` whitelisted to `sortable` (the first is the default), `q` over
    `search`, the filters, and `checks` (schema classes whose validators relate the filters)."""
    choices = [*sortable, *(f"-{field}" for field in sortable)]
    fields_ = {
        "sort": fields.String(
            load_default=sortable[0],
            validate=validate.OneOf(choices),
            metadata={"description": f"One of {', '.join(sortable)}; prefix with - for descending"},
        ),
        **filters,
    }
    if search:
        fields_["q"] = Text(
            max_length=200, metadata={"description": f"Case-insensitive substring of {' or '.join(search)}"}
        )
    return type(name, (*checks, ListArgs), fields_)


# -- cursors -------------------------------------------------------------------
# A cursor is the last row's (sort key, id), signed with SECRET_KEY together with
# everything that chooses the list: endpoint, path ids, sort, q, filters and user.
# A cursor used anywhere else fails the signature check.


def _binding(args):
    chosen = {name: str(value) for name, value in args.items() if name not in POSITION_ARGS}
    user = g.get("current_user")
    return orjson.dumps(
        [request.endpoint, request.view_args, chosen, user.id if user else None], option=orjson.OPT_SORT_KEYS
    )


def _signature(binding, payload):
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"cursor\0" + binding + b"\0" + payload, hashlib.sha256).digest()[:16]


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _next_cursor(rows, per_page, name, binding):
    if len(rows) <= per_page:
        return None
    last = rows[per_page - 1]
    value = getattr(last, name)
    value = "" if value is None else value  # as _sort_key reads it
    payload = orjson.dumps([value.isoformat() if isinstance(value, date) else value, last.id])
    return f"{_b64(payload)}.{_b64(_signature(binding, payload))}"


def _decode_cursor(cursor, binding, column):
    try:
        encoded, signature = cursor.split(".")
        payload = _unb64(encoded)
        valid = hmac.compare_digest(_unb64(signature), _signature(binding, payload))
    except ValueError:  # not two parts, or not base64
        valid = False
    if not valid:
        raise APIError(400, BAD_CURSOR, errors={"cursor": ["Invalid cursor."]})
    value, last_id = orjson.loads(payload)
    python_type = column.type.python_type
    if python_type is datetime:
        value = datetime.fromisoformat(value)
    elif python_type is date:
        value = date.fromisoformat(value)
    return value, last_id


# -- the page ------------------------------------------------------------------


class Page:
    """One page of a list; `page` and `total` are None in cursor mode."""

    def __init__(self, listing, args, items, next_cursor, *, page=None, total=None):
        self.listing = listing
        self.items = items
        self.per_page = args["per_page"]
        self.page = page
        self.total = total
        self.pages = math.ceil(total / self.per_page) if total is not None else None
        self.next_cursor = next_cursor
        # What every link repeats after its page or cursor: per_page, then the list's own arguments.
        kept = [(k, v) for k, v in request.args.items(multi=True) if k not in POSITION_ARGS]
        self._tail = urlencode([("per_page", self.per_page), *kept])
        self.links = self._links()

    def _url(self, position, value):
        return f"{request.path}?{urlencode({position: value})}&{self._tail}"

    def _links(self):
        by_cursor = self._url("cursor", self.next_cursor) if self.next_cursor else None
        if self.page is None:
            return {"next": by_cursor, "first": self._url("page", 1)}
        last = max(self.pages, 1)
        # Past the page window, `next` walks on by cursor.
        within_window = self.page * self.per_page < current_app.config["MAX_PAGE_OFFSET"]
        following = self._url("page", self.page + 1) if within_window else by_cursor
        return {
            "next": following if self.page < self.pages else None,
            "prev": self._url("page", min(self.page - 1, last)) if self.page > 1 else None,
            "first": self._url("page", 1),
            "last": self._url("page", last),
        }

    def metadata(self):
        return {
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
            "next": self.links["next"],
            "prev": self.links.get("prev"),
            "next_cursor": self.next_cursor,
        }

    def link_header(self):
        return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in self.links.items() if url)
