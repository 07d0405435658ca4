"""The casting catalogue: resolving actor ids, what its lists read, and the counters kept in
the transaction that changes what they count: each actor's movie_count (a cast changes), the
total of actors and of movies (`catalogue_counts`: one is inserted or deleted) and the actors per
(lower(gender), age) (`actor_tallies`: one is inserted, deleted, or moved by a PATCH).

Lock order of an actor's write, the same in every transaction so that none can deadlock another:
the actor's row first (its INSERT, or the row lock the view's `for_write` takes before reading it),
then the tally rows, in sorted key order within one statement (`_tally`), then the catalogue count
last (`_count`).
"""

from sqlalchemy import String, cast, delete, func, insert, literal, select, union_all
from sqlalchemy.orm import joinedload

from app import database
from app.errors import invalid
from app.extensions import db
from app.models import Actor, ActorTally, CatalogueCount, Movie, movie_actors
from app.services.crud import apply_changes, bump, delete_counted, flush_or_conflict

DUPLICATE_MOVIE = "A movie with this title and release date already exists"
COUNTED = (Actor, Movie)
_COUNTS = CatalogueCount.__table__
_TALLIES = ActorTally.__table__


def catalogue_total(model):
    """How many rows `model` (Actor or Movie) has: its maintained count, one primary-key read."""
    total = select(CatalogueCount.total).where(CatalogueCount.collection == model.__tablename__)
    return db.session.scalar(total) or 0


def _set_total(model, total, *, add):
    """Upsert `model`'s count (a missing row, as after every table was emptied, is a count of 0)."""
    stmt = database.insert(_COUNTS).values(collection=model.__tablename__, total=total)
    new_total = _COUNTS.c.total + total if add else stmt.excluded.total
    db.session.execute(stmt.on_conflict_do_update(index_elements=[_COUNTS.c.collection], set_={"total": new_total}))


def _count(model, by):
    """Add `by` to `model`'s count in the current transaction, atomically (total = total + by).

    Call it as the transaction's last change (only the request's own idempotency record may follow):
    concurrent writers of one collection then queue on the count's row lock only while committing,
    and whoever holds it waits for no other lock, so that queue can never be part of a deadlock.
    """
    if by:
        _set_total(model, by, add=True)


def _tally(*changes):
    """Add each (gender, age, by) of `changes` to its actor tally, in one statement.

    The key is lower(gender) as the database computes it. Changes to one key are summed first
    (a PATCH from "Female" to "female" nets 0 and touches no row), and the rows are upserted in
    key order, so that two writers of the same keys lock them in the same order. Call it after
    the actor's row is written or locked, and before `_count`.
    """
    given = union_all(
        *(
            select(cast(literal(gender), String).label("gender"), literal(age).label("age"), literal(by).label("by"))
            for gender, age, by in changes
        )
    ).subquery()
    key, net = func.lower(given.c.gender), func.sum(given.c.by)
    rows = select(key, given.c.age, net).group_by(key, given.c.age).having(net != 0).order_by(key, given.c.age)
    stmt = database.insert(_TALLIES).from_select(["gender_key", "age", "total"], rows)
    keys = [_TALLIES.c.gender_key, _TALLIES.c.age]
    db.session.execute(
        stmt.on_conflict_do_update(index_elements=keys, set_={"total": _TALLIES.c.total + stmt.excluded.total})
    )


def _actor_filters(gender_key, age):
    """The actors list's filters (gender, min_age, max_age), each a value's condition on `gender_key`
    and `age`: the list's lower(actors.gender) and actors.age, or an actor tally's columns."""
    return {
        "gender": lambda gender: gender_key == gender.lower(),
        "min_age": lambda least: age >= least,
        "max_age": lambda most: age <= most,
    }


ACTOR_FILTERS = _actor_filters(func.lower(Actor.gender), Actor.age)
_TALLY_FILTERS = _actor_filters(ActorTally.gender_key, ActorTally.age)


def actors_total(narrowing, _parent=None):
    """The actors list's total, read from what is kept (a Listing's `total`): the catalogue count
    unfiltered, a sum of actor tallies for gender/min_age/max_age; None (counted) under `q`."""
    if not narrowing:
        return catalogue_total(Actor)
    if not narrowing.keys() <= _TALLY_FILTERS.keys():
        return None
    total = select(func.coalesce(func.sum(ActorTally.total), 0))
    return db.session.scalar(total.where(*(_TALLY_FILTERS[name](value) for name, value in narrowing.items())))


def recount_totals():
    """Set every catalogue count and actor tally from the rows (after inserts that bypass the
    services: the seed)."""
    for model in COUNTED:
        _set_total(model, select(func.count()).select_from(model).scalar_subquery(), add=False)
    db.session.execute(delete(ActorTally))
    key = func.lower(Actor.gender)
    by_key = select(key, Actor.age, func.count()).group_by(key, Actor.age)
    db.session.execute(insert(ActorTally).from_select(["gender_key", "age", "total"], by_key))


def unknown_actors(actor_ids):
    """A 422 naming the ids among `actor_ids` that are no actor's."""
    known = set(db.session.scalars(select(Actor.id).where(Actor.id.in_(actor_ids))))
    missing = sorted(set(actor_ids) - known)
    return invalid({"actor_ids": [f"Unknown actor ids: {', '.join(map(str, missing))}."]})


def _cast_of(movie_id):
    return select(movie_actors.c.actor_id).where(movie_actors.c.movie_id == movie_id)


def cast_of(movie_id):
    """The actors of a movie's cast."""
    return select(Actor).where(Actor.id.in_(_cast_of(movie_id)))


def _movie_ids_of(actor_id):
    return select(movie_actors.c.movie_id).where(movie_actors.c.actor_id == actor_id)


# A list shows each cast member's id and name (CastMemberSchema): the rest is not loaded.
MOVIES_WITH_CASTS = select(Movie).options(joinedload(Movie.actors).load_only(Actor.id, Actor.name))
# The movies list's filters: each a value's condition on the movies.
MOVIE_FILTERS = {
    "released_after": lambda day: Movie.release_date >= day,
    "released_before": lambda day: Movie.release_date <= day,
    "actor_id": lambda actor_id: Movie.id.in_(_movie_ids_of(actor_id)),
}


def movies_of(actor_id):
    """The movies an actor plays in, with their casts."""
    return MOVIES_WITH_CASTS.where(MOVIE_FILTERS["actor_id"](actor_id))


def _recast(movie, actor_ids):
    """Give `movie` (flushed) the cast `actor_ids`, set-based, counting both ways.

    Callers hold the movie's row lock (`for_write`), so recasts of one movie run one after
    another, each from the cast the one before left. The new cast rows are inserted from the actors that
    exist at that moment, holding them (FOR KEY SHARE) until commit: an actor deleted
    meanwhile is not inserted, and the answer is a 422 naming them.
    """
    after = set(actor_ids)
    before = set(db.session.scalars(_cast_of(movie.id)))
    added, removed = after - before, before - after
    if added:
        present = (
            select(literal(movie.id), Actor.id).where(Actor.id.in_(added)).with_for_update(read=True, key_share=True)
        )
        inserted = db.session.execute(insert(movie_actors).from_select(["movie_id", "actor_id"], present)).rowcount
        if inserted != len(added):
            raise unknown_actors(added)
    if removed:
        db.session.execute(
            delete(movie_actors).where(movie_actors.c.movie_id == movie.id, movie_actors.c.actor_id.in_(removed))
        )
    bump(Actor.movie_count, added, 1)
    bump(Actor.movie_count, removed, -1)
    db.session.expire(movie, ["actors"])


def create_actor(data):
    actor = Actor(**data)
    db.session.add(actor)
    db.session.flush()
    _tally((actor.gender, actor.age, 1))
    _count(Actor, 1)
    return actor


def update_actor(actor, data):
    """Change the fields given. `actor` must be the row as read under its lock
    (`for_write`): its gender and age are the tally it leaves."""
    before = (actor.gender, actor.age)
    apply_changes(actor, data)
    db.session.flush()  # the actor's row before the tallies (the module's lock order)
    if (actor.gender, actor.age) != before:
        _tally((*before, -1), (actor.gender, actor.age, 1))
    return actor


def delete_actor(actor):
    """Delete an actor; they leave every cast (ON DELETE CASCADE). `actor` must be the row as read
    under its lock (`for_write`): its gender and age are the tally it leaves."""
    if delete_counted(actor):
        _tally((actor.gender, actor.age, -1))
        _count(Actor, -1)


def create_movie(data):
    fields = dict(data)
    actor_ids = fields.pop("actor_ids", [])
    movie = Movie(**fields)
    db.session.add(movie)
    flush_or_conflict(DUPLICATE_MOVIE)
    _recast(movie, actor_ids)
    _count(Movie, 1)
    return movie


def update_movie(movie, data):
    """Change the fields given (`movie` locked by the caller); `actor_ids` replaces the whole cast."""
    fields = dict(data)
    if "actor_ids" in fields:
        _recast(movie, fields.pop("actor_ids"))
    apply_changes(movie, fields)
    flush_or_conflict(DUPLICATE_MOVIE)
    return movie


def delete_movie(movie):
    """Delete a movie (locked by the caller); its cast rows go with it (ON DELETE CASCADE), and so
    do their counts."""
    cast = list(db.session.scalars(_cast_of(movie.id)))
    if delete_counted(movie):
        bump(Actor.movie_count, cast, -1)
        _count(Movie, -1)
