"""The collection helper every list endpoint uses: search, sort, page, links."""

import math
from functools import cached_property
from urllib.parse import urlencode

from flask import request
from sqlalchemy import func, or_

from app.extensions import db

LIKE_ESCAPE = "\\"


def contains_ci(column, text):
    """Case-insensitive substring match in which % and _ are literal characters."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped.lower()}%", escape=LIKE_ESCAPE)


def _order_by(sort, sortable, tie_breaker):
    descending = sort.startswith("-")
    column = sortable[sort.lstrip("-")]
    if descending:
        return [column.desc(), tie_breaker.desc()]
    return [column.asc(), tie_breaker.asc()]


class Page:
    def __init__(self, items, page, per_page, total):
        self.items = items
        self.page = page
        self.per_page = per_page
        self.total = total
        self.pages = math.ceil(total / per_page) if total else 0

    def _url(self, page):
        params = [("page", page), ("per_page", self.per_page)]
        params += [(k, v) for k, v in request.args.items(multi=True) if k not in ("page", "per_page")]
        return f"{request.path}?{urlencode(params)}"

    @cached_property
    def links(self):
        return {
            "next": self._url(self.page + 1) if self.page < self.pages else None,
            "prev": self._url(min(self.page - 1, max(self.pages, 1))) if self.page > 1 else None,
            "first": self._url(1),
            "last": self._url(max(self.pages, 1)),
        }

    def metadata(self):
        links = self.links
        return {
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
            "next": links["next"],
            "prev": links["prev"],
        }

    def link_header(self):
        return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in self.links.items() if url)

    def respond(self, key):
        """(body, status, headers) for a flask-smorest view."""
        body = {"success": True, key: self.items, "pagination": self.metadata()}
        return body, 200, {"Link": self.link_header()}


def paginate(stmt, args, *, search=(), sortable, tie_breaker):
    """Run `stmt` as one page: `args` holds page, per_page, q and sort (already validated).

    Two queries whatever the page size: the count and the page itself.
    """
    if args.get("q") and search:
        stmt = stmt.where(or_(*(contains_ci(column, args["q"]) for column in search)))
    count = stmt.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    total = db.session.scalar(count)
    page, per_page = args["page"], args["per_page"]
    ordered = stmt.order_by(*_order_by(args["sort"], sortable, tie_breaker))
    items = db.session.scalars(ordered.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items, page, per_page, total)
