"""The base of every schema here: marshmallow's, with a shorter path for `dump`.

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
"""

from collections.abc import Mapping

import marshmallow
from marshmallow import RAISE, ValidationError, fields, missing
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
