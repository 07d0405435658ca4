from marshmallow import Schema, fields

from app.schemas.common import StrictBoolean, Text, UTCDateTime, envelope, list_args


class BucketSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = Text(required=True, min_length=1, max_length=100)
    item_count = fields.Integer(dump_only=True)
    created_at = UTCDateTime(dump_only=True)
    modified_at = UTCDateTime(dump_only=True)


class ItemSchema(Schema):
    id = fields.Integer(dump_only=True)
    bucket_id = fields.Integer(dump_only=True)
    name = Text(required=True, min_length=1, max_length=200)
    description = Text(load_default="", max_length=2000, trim=False)
    done = StrictBoolean(load_default=False)
    created_at = UTCDateTime(dump_only=True)
    modified_at = UTCDateTime(dump_only=True)


class ItemPatchSchema(ItemSchema):
    """PATCH: every field optional, and no defaults filled in."""

    name = Text(min_length=1, max_length=200)
    description = Text(max_length=2000, trim=False)
    done = StrictBoolean()


BucketResponse = envelope("BucketResponse", "bucket", BucketSchema)
BucketListResponse = envelope("BucketListResponse", "buckets", BucketSchema, many=True)
ItemResponse = envelope("ItemResponse", "item", ItemSchema)
ItemListResponse = envelope("ItemListResponse", "items", ItemSchema, many=True)

BucketListArgs = list_args("BucketListArgs", ("id", "name", "created_at", "modified_at"), "id")
ItemListArgs = list_args(
    "ItemListArgs",
    ("id", "name", "done", "created_at", "modified_at"),
    "id",
    done=fields.Boolean(metadata={"description": "Only items with this done state (true or false)"}),
)
