from marshmallow import fields

from app.fields import Resource, ResourceSchema, StrictBoolean, Text
from app.models import Bucket, Item

UNIQUE_NAME = {"description": "Unique per owner as people read it: compared NFC and case-folded"}


class BucketSchema(ResourceSchema):
    name = Text(required=True, min_length=1, max_length=100, metadata=UNIQUE_NAME)
    item_count = fields.Integer(dump_only=True)


class ItemSchema(ResourceSchema):
    bucket_id = fields.Integer(dump_only=True)
    name = Text(required=True, min_length=1, max_length=200)
    description = Text(load_default="", max_length=2000, trim=False)
    done = StrictBoolean(load_default=False)


class ItemPatchSchema(ItemSchema):
    """PATCH: every field optional, and no defaults filled in."""

    name = Text(min_length=1, max_length=200)
    description = Text(max_length=2000, trim=False)
    done = StrictBoolean()


BUCKET = Resource("Bucket", Bucket, BucketSchema, key="bucket", list_key="buckets")
ITEM = Resource("Item", Item, ItemSchema, key="item", list_key="items")
