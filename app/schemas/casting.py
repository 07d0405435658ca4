from marshmallow import ValidationError, fields, validate, validates_schema

from app.fields import LooseDate, Resource, ResourceSchema, Schema, StrictInteger, Text, id_list
from app.models import Actor, Movie

MAX_CAST = 500
UNIQUE_TITLE = {"description": "With release_date, unique as people read it: compared NFC and case-folded"}


class CastMemberSchema(Schema):
    """The short form of either side of the cast: used by movies and actors alike."""

    id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)


class ActorSchema(ResourceSchema):
    name = Text(required=True, min_length=1, max_length=120)
    age = StrictInteger(required=True, validate=validate.Range(min=0, max=150))
    gender = Text(required=True, min_length=1, max_length=30)
    movie_count = fields.Integer(dump_only=True)


class MovieSchema(ResourceSchema):
    title = Text(required=True, min_length=1, max_length=200, metadata=UNIQUE_TITLE)
    release_date = LooseDate(required=True, metadata={"description": "YYYY-MM-DD (2020-8-12 is accepted too)"})
    actor_ids = id_list(
        load_only=True, validate=validate.Length(max=MAX_CAST), metadata={"description": "Sets the cast"}
    )
    actors = fields.Nested(CastMemberSchema, many=True, dump_only=True)


class AgeRange:
    """The actors list's check of its age filters (app.api.lists)."""

    @validates_schema
    def min_not_above_max(self, data, **kwargs):
        if "min_age" in data and "max_age" in data and data["min_age"] > data["max_age"]:
            raise ValidationError("min_age must not be greater than max_age.", "min_age")


class DateRange:
    """The movies list's check of its date filters (app.api.lists)."""

    @validates_schema
    def after_not_past_before(self, data, **kwargs):
        after, before = data.get("released_after"), data.get("released_before")
        if after and before and after > before:
            raise ValidationError("released_after must not be later than released_before.", "released_after")


ACTOR = Resource("Actor", Actor, ActorSchema, key="actor", list_key="actors")
MOVIE = Resource("Movie", Movie, MovieSchema, key="movie", list_key="movies")
