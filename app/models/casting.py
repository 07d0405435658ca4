from datetime import date

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, String, Table, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import ResourceMixin, folded_key, keeps_folded

movie_actors = Table(
    "movie_actors",
    db.metadata,
    Column("movie_id", ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True),
    Column("actor_id", ForeignKey("actors.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Actor(ResourceMixin, db.Model):
    __tablename__ = "actors"
    sort_keys = ("id", "name", "age", "created_at")

    name: Mapped[str] = mapped_column(String(120), nullable=False)
    age: Mapped[int] = mapped_column(Integer, nullable=False)
    gender: Mapped[str] = mapped_column(String(30), nullable=False)
    # Kept by services.casting in the transaction that changes a cast.
    movie_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)


class Movie(ResourceMixin, db.Model):
    __tablename__ = "movies"
    sort_keys = ("id", "title", "release_date", "created_at")

    title: Mapped[str] = mapped_column(String(200), nullable=False)
    title_key: Mapped[str] = folded_key("title", 600)
    release_date: Mapped[date] = mapped_column(Date, nullable=False)
    # Joined: a movie and its cast, or a page of them, are one statement.
    actors = relationship(Actor, secondary=movie_actors, order_by=Actor.id, lazy="joined", passive_deletes=True)


class CatalogueCount(db.Model):
    """The number of rows of a catalogue collection ("actors", "movies"): the total of its unfiltered
    list. Kept by services.casting in the transaction that inserts or deletes one of them."""

    __tablename__ = "catalogue_counts"

    collection: Mapped[str] = mapped_column(String(32), primary_key=True)
    total: Mapped[int] = mapped_column(Integer, nullable=False)


class ActorTally(db.Model):
    """How many actors have one (lower(gender), age): the filtered actors list's total is a sum of a
    few of these rows. `gender_key` is lower(gender) as the database computes it, the very expression
    the list's gender filter compares. Kept by services.casting in the transaction that inserts,
    deletes or moves an actor between keys."""

    __tablename__ = "actor_tallies"

    gender_key: Mapped[str] = mapped_column(String(30), primary_key=True)
    age: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(Integer, nullable=False)


keeps_folded(Movie, "title", "title_key")
# One movie per (title, release date), the title as people read it (NFC, case-folded).
Index("uq_movies_title_key_release_date", Movie.title_key, Movie.release_date, unique=True)
# The list's filters: gender, then the age range. On PostgreSQL a filtered total under `q` (the
# others are actor tallies) is an index-only scan of it, which takes `gender` itself in the index
# beside lower(gender): the planner asks for every column the query names. With id, a gender's
# actors sorted by age are a range of it too.
Index(
    "ix_actors_lower_gender_age",
    func.lower(Actor.gender),
    Actor.age,
    Actor.id,
    postgresql_include=["gender"],
)
