"""The cast: resolving actor ids, the filters of both lists, and each actor's movie_count,
changed in the transaction that changes a cast."""

from sqlalchemy import func, select

from app.errors import invalid
from app.extensions import db
from app.models import Actor, Movie, movie_actors
from app.services.crud import apply_changes, bump, commit_or_conflict, delete_counted

DUPLICATE_MOVIE = "A movie with this title and release date already exists"


def actors_by_ids(actor_ids):
    """The actors with these ids; any unknown id is a 422 naming them all."""
    wanted = list(dict.fromkeys(actor_ids))
    actors = db.session.scalars(select(Actor).where(Actor.id.in_(wanted))).all() if wanted else []
    missing = sorted(set(wanted) - {actor.id for actor in actors})
    if missing:
        raise invalid({"actor_ids": [f"Unknown actor ids: {', '.join(map(str, missing))}."]})
    return actors


def _cast_of(movie_id):
    return select(movie_actors.c.actor_id).where(movie_actors.c.movie_id == movie_id)


def filtered_actors(args, movie_id=None):
    stmt = select(Actor)
    if movie_id is not None:
        stmt = stmt.where(Actor.id.in_(_cast_of(movie_id)))
    if "gender" in args:
        stmt = stmt.where(func.lower(Actor.gender) == args["gender"].lower())
    if "min_age" in args:
        stmt = stmt.where(Actor.age >= args["min_age"])
    if "max_age" in args:
        stmt = stmt.where(Actor.age <= args["max_age"])
    return stmt


def filtered_movies(args):
    stmt = select(Movie)
    if "released_after" in args:
        stmt = stmt.where(Movie.release_date >= args["released_after"])
    if "released_before" in args:
        stmt = stmt.where(Movie.release_date <= args["released_before"])
    if "actor_id" in args:
        stmt = stmt.where(
            Movie.id.in_(select(movie_actors.c.movie_id).where(movie_actors.c.actor_id == args["actor_id"]))
        )
    return stmt


def _recast(movie, actor_ids):
    """Give `movie` the cast `actor_ids` (422 if any is unknown), counting both ways."""
    actors = actors_by_ids(actor_ids)
    before = {actor.id for actor in movie.actors}
    after = {actor.id for actor in actors}
    bump(Actor.movie_count, after - before, 1)
    bump(Actor.movie_count, before - after, -1)
    movie.actors = actors


def create_movie(data):
    fields = dict(data)
    actor_ids = fields.pop("actor_ids", [])
    movie = Movie(**fields)
    _recast(movie, actor_ids)
    db.session.add(movie)
    commit_or_conflict(DUPLICATE_MOVIE)
    return movie


def update_movie(movie, data):
    """Change the fields given; `actor_ids` replaces the whole cast."""
    fields = dict(data)
    if "actor_ids" in fields:
        _recast(movie, fields.pop("actor_ids"))
    apply_changes(movie, fields)
    commit_or_conflict(DUPLICATE_MOVIE)
    return movie


def delete_movie(movie):
    """Delete a movie; its cast rows go with it (ON DELETE CASCADE), and so do their counts."""
    cast = [actor.id for actor in movie.actors]
    if delete_counted(movie):
        bump(Actor.movie_count, cast, -1)
    db.session.commit()
