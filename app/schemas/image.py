from flask import url_for
from marshmallow import ValidationError, fields

from app.fields import Resource, ResourceSchema, Schema, Text, envelope
from app.models import Image

MAX_TAGS = 20
MAX_TAG_LENGTH = 50


def parse_tags(value):
    """Tags from "a, B,a" or ["a", "B"]: trimmed, lower-cased, de-duplicated, in order."""
    if isinstance(value, str):
        raw = value.split(",")
    elif isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        raw = value
    else:
        raise ValidationError("Tags must be a comma-separated string or a list of strings.")
    tags = list(dict.fromkeys(tag.strip().lower() for tag in raw if tag.strip()))
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} tags.")
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise ValidationError(f"Each tag is 1 to {MAX_TAG_LENGTH} characters, without NUL.")
    return tags


class Tags(fields.Field):
    def _serialize(self, value, attr, obj, **kwargs):
        return list(value or [])

    def _deserialize(self, value, attr, data, **kwargs):
        return parse_tags(value)


class ImageLinksSchema(Schema):
    """Dumped from the image's id (see ImageSchema.links)."""

    file = fields.Function(lambda image_id: url_for("images.image_file", image_id=image_id))
    thumbnail = fields.Function(lambda image_id: url_for("images.image_thumbnail", image_id=image_id))


class ImageSchema(ResourceSchema):
    title = Text(max_length=200)
    description = Text(max_length=2000, trim=False)
    tags = Tags(
        metadata={
            "description": "A list of strings (a comma-separated string is accepted too)",
            "type": "array",
            "items": {"type": "string", "maxLength": MAX_TAG_LENGTH},
            "maxItems": MAX_TAGS,
        }
    )
    filename = fields.String(dump_only=True)
    content_type = fields.String(dump_only=True)
    size_bytes = fields.Integer(dump_only=True)
    width = fields.Integer(dump_only=True)
    height = fields.Integer(dump_only=True)
    sha256 = fields.String(dump_only=True)
    owner_id = fields.Integer(dump_only=True, allow_none=True)
    links = fields.Nested(ImageLinksSchema, attribute="id", dump_only=True)


class UploadFormSchema(Schema):
    """The text parts of an upload; the files come in the `images` part."""

    title = Text(max_length=200)
    description = Text(max_length=2000, trim=False)
    tags = Tags()


IMAGE = Resource("Image", Image, ImageSchema, key="image", list_key="images")
ImageUploadResponse = envelope("ImageUploadResponse", "images", ImageSchema, many=True, paginated=False)

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["images"],
                "properties": {
                    "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "title": {"type": "string", "maxLength": 200},
                    "description": {"type": "string", "maxLength": 2000},
                    "tags": {"type": "string", "description": "Comma-separated"},
                },
            }
        }
    },
}
