from marshmallow import ValidationError, fields, validate, validates_schema

from app.models import Actor, Movie
from app.pagination import Listing
from app.schemas.base import Schema
from app.schemas.common import (
    MAX_ID,
    LooseDate,
    QueryInteger,
    ResourceSchema,
    StrictInteger,
    Text,
    envelope,
    id_list,
)

MAX_CAST = 500


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
    title = Text(
        required=True,
        min_length=1,
        max_length=200,
        metadata={"description": "With release_date, unique as people read it: compared NFC and case-folded"},
    )
    release_date = LooseDate(required=True, metadata={"description": "YYYY-MM-DD (2020-8-12 is accepted too)"})
    actor_ids = id_list(
        load_only=True, validate=validate.Length(max=MAX_CAST), metadata={"description": "Sets the cast"}
    )
    actors = fields.Nested(CastMemberSchema, many=True, dump_only=True)


class AgeRange:
    @validates_schema
    def min_not_above_max(self, data, **kwargs):
        if "min_age" in data and "max_age" in data and data["min_age"] > data["max_age"]:
            raise ValidationError("min_age must not be greater than max_age.", "min_age")


class DateRange:
    @validates_schema
    def after_not_past_before(self, data, **kwargs):
        after, before = data.get("released_after"), data.get("released_before")
        if after and before and after > before:
            raise ValidationError("released_after must not be later than released_before.", "released_after")


ActorResponse = envelope("ActorResponse", "actor", ActorSchema)
ActorListResponse = envelope("ActorListResponse", "actors", ActorSchema, many=True)
MovieResponse = envelope("MovieResponse", "movie", MovieSchema)
MovieListResponse = envelope("MovieListResponse", "movies", MovieSchema, many=True)

_age = {"validate": validate.Range(min=0, max=150)}
ACTORS = Listing(
    "actors",
    Actor,
    sort=("id", "name", "age", "created_at"),
    search=("name",),
    mixins=(AgeRange,),
    filters={
        "gender": Text(max_length=30, metadata={"description": "Exact gender, case-insensitive"}),
        "min_age": QueryInteger(**_age, metadata={"description": "Inclusive"}),
        "max_age": QueryInteger(**_age, metadata={"description": "Inclusive"}),
    },
)
MOVIES = Listing(
    "movies",
    Movie,
    sort=("id", "title", "release_date", "created_at"),
    search=("title_key",),
    mixins=(DateRange,),
    filters={
        "released_after": LooseDate(metadata={"description": "Inclusive: release_date >= this date"}),
        "released_before": LooseDate(metadata={"description": "Inclusive: release_date <= this date"}),
        "actor_id": QueryInteger(
            validate=validate.Range(min=1, max=MAX_ID), metadata={"description": "Movies with this actor"}
        ),
    },
)
