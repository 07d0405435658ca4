"""Every list the API answers, declared once (app.pagination.Listing): the resource it lists (sorted
by its model's `sort_keys`); the columns `q` searches; its filters, each a query parameter and the
condition its value puts on the rows; and where its total comes from. A list view hands its Listing
the rows the caller may see and the parsed query: `BUCKETS.page(select(Bucket).where(...), args, of=...)`.
"""

from marshmallow import fields, validate
from sqlalchemy import select

from app.fields import MAX_ID, LooseDate, QueryInteger, Text
from app.models import Image, ImageTag, Item, Movie, User
from app.pagination import Filter, Listing, kept
from app.permissions import ROLES
from app.schemas.auth import USER
from app.schemas.bucket import BUCKET, ITEM
from app.schemas.casting import ACTOR, MOVIE, AgeRange, DateRange
from app.schemas.image import IMAGE, MAX_TAG_LENGTH
from app.services import casting


def _tagged(tag):
    return Image.id.in_(select(ImageTag.image_id).where(ImageTag.tag == tag.lower())) if tag else None


_AGE = validate.Range(min=0, max=150)

USERS = Listing(
    USER,
    search=("email", "external_email"),
    filters={
        "role": Filter(
            fields.String(validate=validate.OneOf(ROLES), metadata={"description": "Only users with this role"}),
            lambda role: User.role == role,
        )
    },
)
BUCKETS = Listing(
    BUCKET,
    search=("name_key",),
    total=kept(lambda owner: owner.bucket_count),
    revision=lambda owner: owner.buckets_revision,
)
ITEMS = Listing(
    ITEM,
    search=("name", "description"),
    filters={
        "done": Filter(
            fields.Boolean(metadata={"description": "Only items with this done state (true or false)"}),
            lambda done: Item.done == done,
        )
    },
    total=kept(lambda bucket: bucket.item_count),
)
ACTORS = Listing(
    ACTOR,
    search=("name",),
    filters={
        "gender": Filter(
            Text(max_length=30, metadata={"description": "Exact gender, case-insensitive"}),
            casting.ACTOR_FILTERS["gender"],
        ),
        "min_age": Filter(
            QueryInteger(validate=_AGE, metadata={"description": "Inclusive"}), casting.ACTOR_FILTERS["min_age"]
        ),
        "max_age": Filter(
            QueryInteger(validate=_AGE, metadata={"description": "Inclusive"}), casting.ACTOR_FILTERS["max_age"]
        ),
    },
    checks=(AgeRange,),
    total=casting.actors_total,
)
MOVIES = Listing(
    MOVIE,
    search=("title_key",),
    filters={
        "released_after": Filter(
            LooseDate(metadata={"description": "Inclusive: release_date >= this date"}),
            casting.MOVIE_FILTERS["released_after"],
        ),
        "released_before": Filter(
            LooseDate(metadata={"description": "Inclusive: release_date <= this date"}),
            casting.MOVIE_FILTERS["released_before"],
        ),
        "actor_id": Filter(
            QueryInteger(
                validate=validate.Range(min=1, max=MAX_ID), metadata={"description": "Movies with this actor"}
            ),
            casting.MOVIE_FILTERS["actor_id"],
        ),
    },
    checks=(DateRange,),
    total=kept(lambda _: casting.catalogue_total(Movie)),
)
# The path names the actor: the movies list's own actor_id filter would only clash with it.
ACTOR_MOVIES = MOVIES.within(total=kept(lambda actor: actor.movie_count), without=("actor_id",))
MOVIE_ACTORS = ACTORS.within(total=kept(lambda movie: len(movie.actors)))
IMAGES = Listing(
    IMAGE,
    search=("title", "description"),
    filters={
        "tag": Filter(Text(max_length=MAX_TAG_LENGTH, metadata={"description": "Only images with this tag"}), _tagged)
    },
)
