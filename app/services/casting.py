"""The cast: resolving actor ids, and the queries both sides of it share."""

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload, undefer

from app.errors import invalid
from app.extensions import db
from app.models import Actor, Movie, movie_actors
from app.pagination import paginate

DUPLICATE_MOVIE = "A movie with this title and release date already exists"


def actors_by_ids(actor_ids):
    """The actors with these ids; any unknown id is a 422 naming them all."""
    wanted = list(dict.fromkeys(actor_ids))
    actors = db.session.scalars(select(Actor).where(Actor.id.in_(wanted))).all() if wanted else []
    missing = sorted(set(wanted) - {actor.id for actor in actors})
    if missing:
        raise invalid({"actor_ids": [f"Unknown actor ids: {', '.join(map(str, missing))}."]})
    return actors


def actors_query():
    """Actors with their movie_count, in the same query."""
    return select(Actor).options(undefer(Actor.movie_count))


def movies_query():
    return select(Movie).options(selectinload(Movie.actors))


def actors_of_movie(movie_id):
    return actors_query().where(
        Actor.id.in_(select(movie_actors.c.actor_id).where(movie_actors.c.movie_id == movie_id))
    )


MOVIE_SORTABLE = {
    "id": Movie.id,
    "title": Movie.title,
    "release_date": Movie.release_date,
    "created_at": Movie.created_at,
}
ACTOR_SORTABLE = {"id": Actor.id, "name": Actor.name, "age": Actor.age, "created_at": Actor.created_at}


def filter_movies(stmt, args):
    if "released_after" in args:
        stmt = stmt.where(Movie.release_date >= args["released_after"])
    if "released_before" in args:
        stmt = stmt.where(Movie.release_date <= args["released_before"])
    if "actor_id" in args:
        stmt = stmt.where(
            Movie.id.in_(select(movie_actors.c.movie_id).where(movie_actors.c.actor_id == args["actor_id"]))
        )
    return stmt


def filter_actors(stmt, args):
    if "gender" in args:
        stmt = stmt.where(func.lower(Actor.gender) == args["gender"].lower())
    if "min_age" in args:
        stmt = stmt.where(Actor.age >= args["min_age"])
    if "max_age" in args:
        stmt = stmt.where(Actor.age <= args["max_age"])
    return stmt


def movie_page(stmt, args):
    stmt = filter_movies(stmt, args)
    return paginate(stmt, args, search=[Movie.title], sortable=MOVIE_SORTABLE, tie_breaker=Movie.id).respond("movies")


def actor_page(stmt, args):
    stmt = filter_actors(stmt, args)
    return paginate(stmt, args, search=[Actor.name], sortable=ACTOR_SORTABLE, tie_breaker=Actor.id).respond("actors")
