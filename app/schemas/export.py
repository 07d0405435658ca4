"""GET /v1/auth/me/export's document: each row in the schema the API answers it with elsewhere."""

from marshmallow import fields

from app.fields import Schema
from app.schemas.auth import UserSchema
from app.schemas.bucket import BucketSchema, ItemSchema
from app.schemas.image import ImageSchema


class BucketExportSchema(BucketSchema):
    items = fields.List(fields.Nested(ItemSchema), dump_only=True, metadata={"description": "Its items, by id"})


class AccountExportSchema(Schema):
    success = fields.Boolean(metadata={"description": "Written last: a body cut short never carries it"})
    user = fields.Nested(UserSchema)
    buckets = fields.List(fields.Nested(BucketExportSchema), metadata={"description": "Your buckets, by id"})
    images = fields.List(fields.Nested(ImageSchema), metadata={"description": "The images you uploaded, by id"})


EXPORT_HEADERS = {
    "Content-Disposition": {
        "description": '`attachment; filename="account-<id>.json"`',
        "schema": {"type": "string"},
    }
}
