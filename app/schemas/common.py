"""Fields and schema builders shared by every resource.

The same schemas validate requests, shape responses and feed the OpenAPI document.
"""

import re
import unicodedata
from datetime import date

from marshmallow import ValidationError, fields, validate, validates_schema

from app.schemas.base import Schema

MAX_ID = 2**31 - 1
# [0-9], not \d: \d matches every script's digits ("２", "٣"), which int() reads as numbers.
_LOOSE_DATE = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$")
_ASCII_DIGITS = re.compile(r"^[0-9]+$")


# What shows nothing: spaces and line breaks of every script, control and format characters
# (zero-width spaces and joiners, BOM, direction marks), and the letters and symbols drawn empty.
BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})
BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # Hangul fillers, the Braille blank
# Marks that show nothing by themselves, though they change the character before them (so never
# trimmed): the combining grapheme joiner and the variation selectors.
INVISIBLE_MARKS = frozenset(["\u034f", *map(chr, range(0xFE00, 0xFE10)), *map(chr, range(0xE0100, 0xE01F0))])


def shows_nothing(char):
    return unicodedata.category(char) in BLANK_CATEGORIES or char in BLANK_CHARACTERS


def trim(text):
    """`text` without what shows nothing at either end (str.strip() leaves zero-width spaces)."""
    start, end = 0, len(text)
    while start < end and shows_nothing(text[start]):
        start += 1
    while end > start and shows_nothing(text[end - 1]):
        end -= 1
    return text[start:end]


def is_blank(text):
    return all(shows_nothing(char) or char in INVISIBLE_MARKS for char in text)


class Text(fields.String):
    """A string that is trimmed (unless told not to) and never carries NUL bytes.

    `min_length`/`max_length` count characters after trimming, so "   " is blank, and so is
    a string of nothing but invisible characters ("\u200b\u200b").
    """

    def __init__(self, *, min_length=None, max_length=None, trim=True, **kwargs):
        validators = list(kwargs.pop("validate", None) or [])
        if min_length is not None or max_length is not None:
            validators.insert(0, validate.Length(min=min_length, max=max_length))
        super().__init__(validate=validators, **kwargs)
        self.trim = trim
        self.min_length = min_length

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        if self.trim:
            text = trim(text)
        if self.min_length and is_blank(text):
            raise ValidationError("Must not be blank.")
        return text


class StrictInteger(fields.Integer):
    """A JSON integer: not a string, a float or a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class QueryInteger(fields.Integer):
    """An integer in a query string: ASCII digits only.

    Python's int() also reads "1_0", "+5", " 5 " and other scripts' digits ("２");
    a client that sends those has made a mistake, and it is a 400, not a guess.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not _ASCII_DIGITS.match(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """A JSON boolean: `true` or `false`, nothing that merely looks like one."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UTCDateTime(fields.DateTime):
    """ISO 8601 in UTC with a `Z`, to the second (values are stored as naive UTC)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is None and value.year >= 1000:  # what we store: isoformat is the faster way there
            return value.isoformat(timespec="seconds") + "Z"
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class LooseDate(fields.Date):
    """Reads `YYYY-MM-DD` and the unpadded `2020-8-12`; always writes `YYYY-MM-DD`."""

    def _deserialize(self, value, attr, data, **kwargs):
        match = _LOOSE_DATE.match(value) if isinstance(value, str) else None
        if not match:
            raise ValidationError("Not a valid date: use YYYY-MM-DD.")
        try:
            return date(*(int(part) for part in match.groups()))
        except ValueError:
            raise ValidationError("Not a valid date: no such day.") from None


class ResourceSchema(Schema):
    """What every stored resource answers with: its id and when it was created and last changed."""

    id = fields.Integer(dump_only=True)
    created_at = UTCDateTime(dump_only=True)
    modified_at = UTCDateTime(dump_only=True)


def id_list(**kwargs):
    return fields.List(StrictInteger(validate=validate.Range(min=1, max=MAX_ID)), **kwargs)


class PaginationSchema(Schema):
    page = fields.Integer(allow_none=True, metadata={"description": "Null in cursor mode"})
    per_page = fields.Integer()
    total = fields.Integer(allow_none=True, metadata={"description": "Null in cursor mode"})
    pages = fields.Integer(allow_none=True, metadata={"description": "Null in cursor mode"})
    next = fields.String(allow_none=True, metadata={"description": "Link to the next page, or null"})
    prev = fields.String(allow_none=True, metadata={"description": "Link to the previous page; null in cursor mode"})
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as `cursor` for the page after this one; null on the last page"}
    )


class ErrorSchema(Schema):
    success = fields.Boolean(metadata={"example": False})
    error = fields.Integer(metadata={"description": "The HTTP status", "example": 404})
    message = fields.String(metadata={"example": "Resource not found"})
    errors = fields.Dict(
        metadata={
            "description": "Per-field validation messages (422, 400): at most 20 fields, "
            "the message counts the rest (`Validation failed (3 more fields not listed)`)",
            "maxProperties": 20,
        }
    )


class DeletedSchema(Schema):
    success = fields.Boolean()
    deleted = fields.Integer()


class MessageSchema(Schema):
    success = fields.Boolean()
    message = fields.String()


class IndexSchema(Schema):
    success = fields.Boolean()
    name = fields.String()
    version = fields.String(metadata={"description": "The release version", "example": "1.1.0"})
    links = fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": "Name -> path"})


class HealthSchema(Schema):
    success = fields.Boolean()
    status = fields.String(metadata={"example": "ok"})
    database = fields.String(metadata={"example": "ok"})


def envelope(name, key, schema, *, many=False, paginated=None):
    """A response schema: `{"success": true, key: <schema>}`, plus pagination for lists
    (unless `paginated=False`, as for the list an upload answers)."""
    shape = {"success": fields.Boolean(), key: fields.Nested(schema, many=many)}
    if paginated is None:
        paginated = many
    if paginated:
        shape["pagination"] = fields.Nested(PaginationSchema)
    return Schema.from_dict(shape, name=name)


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


def list_args(name, sortable, default_sort, *, search=(), mixins=(), **filters):
    """A ListArgs schema with `sort` whitelisted to `sortable`, `q` over `search`, and filters."""
    choices = [*sortable, *(f"-{field}" for field in sortable)]
    fields_ = {
        "sort": fields.String(
            load_default=default_sort,
            validate=validate.OneOf(choices),
            metadata={"description": f"One of {', '.join(sortable)}; prefix with - for descending"},
        ),
        **filters,
    }
    if search:
        fields_["q"] = Text(
            max_length=200, metadata={"description": f"Case-insensitive substring of {' or '.join(search)}"}
        )
    return type(name, (*mixins, ListArgs), fields_)
