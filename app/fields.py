"""What every schema stands on: the Schema base, the fields and envelopes every resource shares, and
the error envelope. The ground floor: it imports nothing of the app.

The same schemas validate requests, shape responses and feed the OpenAPI document.

The Schema base is marshmallow's, with a shorter path for `dump`.

marshmallow stays the single source of validation, serialization and the OpenAPI
document. Its `dump` spends most of its time in per-field indirection (accessor
functions, `missing` checks, keyword plumbing) rather than in formatting. This base
works out once per schema instance which attribute each field reads and under which
key it answers, then calls each field's own `_serialize` (the formatting step
marshmallow's fields are written to override). The output is identical to
marshmallow's; tests/test_schema_dump.py compares the two for every schema.

Whatever this plan cannot express exactly takes marshmallow's own path: schemas with
dump hooks or their own `get_attribute`, and fields that do not read an attribute
(`Function`, `Method`, `Constant`), read a dotted path, or override `serialize`.

Why marshmallow's internals (`_hooks`, `_serialize`, `_format_num`, `_CHECK_ATTRIBUTE`) are used
here, measured (bench/instructions.py, CPU instructions per request, marshmallow's own `dump`
instead of this one): a bucket's GET 3.65 M -> 3.76 M (+3 %), a page of 20 buckets 6.34 M ->
7.49 M (+18 %), a page of 20 movies with casts 14.68 M -> 18.22 M (+24 %). A marshmallow upgrade
that moves them fails tests/test_schema_dump.py, which compares both dumps byte for byte.
"""

import re
import unicodedata
from collections.abc import Mapping
from datetime import date

import marshmallow
from marshmallow import RAISE, ValidationError, fields, missing, validate, validates_schema
from marshmallow.decorators import POST_DUMP, PRE_DUMP

# An error answer names at most this many fields (app.errors cuts the rest and counts them).
MAX_ERROR_FIELDS = 20


class Schema(marshmallow.Schema):
    def load(self, data, *, many=None, partial=None, unknown=None):
        """marshmallow's load, except that a body of more unknown fields than an answer names is
        refused without handing them to marshmallow, which spends about 2 µs on each one's error
        (0.1 s of CPU for a 1 MB body of 80,000 of them)."""
        if (unknown or self.unknown) == RAISE and isinstance(data, Mapping) and len(data) > MAX_ERROR_FIELDS:
            keys = {field.data_key or name for name, field in self.load_fields.items()}
            message = [self.error_messages["unknown"]]
            unknown_fields = {key: message for key in data if key not in keys}
            if len(unknown_fields) > MAX_ERROR_FIELDS:
                known = {key: value for key, value in data.items() if key in keys}
                try:
                    super().load(known, many=many, partial=partial, unknown=unknown)
                    errors = {}
                except ValidationError as error:
                    errors = error.messages
                raise ValidationError({**errors, **unknown_fields})
        return super().load(data, many=many, partial=partial, unknown=unknown)

    def dump(self, obj, *, many=None):
        plan = self.__dict__.get("_dump_plan")
        if plan is None:
            plan = self._dump_plan = _plan(self)
        if plan is False:
            return super().dump(obj, many=many)
        many = self.many if many is None else bool(many)
        if many and obj is not None:
            return [_dump_one(plan, item, self) for item in obj]
        return _dump_one(plan, obj, self)


def _plan(schema):
    """(key, name, attribute or None, field, unchanged types) per field, or False if marshmallow must dump."""
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        return False
    if type(schema).get_attribute is not marshmallow.Schema.get_attribute:
        return False
    return tuple(_step(name, field) for name, field in schema.dump_fields.items())


def _step(name, field):
    key = name if field.data_key is None else field.data_key
    source = name if field.attribute is None else field.attribute
    plain = (
        getattr(field, "_CHECK_ATTRIBUTE", True)
        and type(field).serialize is fields.Field.serialize
        and type(field).get_value is fields.Field.get_value
        and "." not in source
    )
    return key, name, source if plain else None, field, _unchanged(field)


def _unchanged(field):
    """The value types this field's `_serialize` hands back as they are (True: all of them)."""
    formatter = type(field)._serialize
    if formatter is fields.Field._serialize:
        return True
    if formatter is fields.String._serialize:
        return frozenset({str, type(None)})
    integer = formatter is fields.Number._serialize and type(field)._format_num is fields.Number._format_num
    if integer and field.num_type is int and not field.as_string:
        return frozenset({int, type(None)})
    return frozenset()


def _dump_one(plan, obj, schema):
    out = {}
    indexable = hasattr(obj, "__getitem__")
    # A loaded SQLAlchemy column is in the instance __dict__, which is what its descriptor
    # would read; anything else (unloaded, a relationship, a property) goes through getattr.
    loaded = getattr(obj, "__dict__", {})
    for key, name, source, field, unchanged in plan:
        if source is None:  # marshmallow's own path for this field
            value = field.serialize(name, obj, accessor=schema.get_attribute)
            if value is not missing:
                out[key] = value
            continue
        if indexable:
            value = _item(obj, source)
        else:
            value = loaded[source] if source in loaded else getattr(obj, source, missing)
        if value is missing:
            default = field.dump_default
            value = default() if callable(default) else default
            if value is missing:
                continue
        out[key] = value if unchanged is True or type(value) in unchanged else field._serialize(value, name, obj)
    return out


def _item(obj, key):
    """marshmallow.utils.get_value for a plain key of an object with items: the item, else the attribute."""
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, missing)


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

    @validates_schema
    def names_a_field(self, data, **kwargs):
        """A body that names no field is refused: a PATCH of nothing would silently do nothing. (A
        schema with a required field never gets here empty: the missing field is its error.)"""
        if not data:
            raise ValidationError("Provide at least one field to change.")


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


class Resource:
    """One kind of stored resource as clients see it, declared once beside its schema: the model it
    shows, the schema that shows it, and the keys it answers under: one (`"bucket"`) and a list
    (`"buckets"`). Its envelopes (`BucketResponse`, `BucketListResponse`) and its ETag (the hash of
    what `representation` dumps, app.api.conditional) come from here, and so does the key and model
    of its list (app.pagination.Listing)."""

    def __init__(self, name, model, schema, *, key, list_key):
        self.model = model
        self.key = key
        self.list_key = list_key
        self.representation = schema()
        self.response = envelope(f"{name}Response", key, schema)
        self.list_response = envelope(f"{name}ListResponse", list_key, schema, many=True)
