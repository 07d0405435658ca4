from datetime import date

from sqlalchemy import (
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from app.extensions import db
from app.models.base import TimestampMixin

movie_actors = Table(
    "movie_actors",
    db.metadata,
    Column("movie_id", ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True),
    Column("actor_id", ForeignKey("actors.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Actor(TimestampMixin, db.Model):
    __tablename__ = "actors"

    name: Mapped[str] = mapped_column(String(120), nullable=False, index=True)
    age: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    gender: Mapped[str] = mapped_column(String(30), nullable=False)


class Movie(TimestampMixin, db.Model):
    __tablename__ = "movies"

    title: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    release_date: Mapped[date] = mapped_column(Date, nullable=False, index=True)
    actors = relationship(Actor, secondary=movie_actors, order_by=Actor.id, lazy="raise", passive_deletes=True)


# One movie per (title, release date), whatever the title's case.
Index("uq_movies_lower_title_release_date", func.lower(Movie.title), Movie.release_date, unique=True)
Index("ix_actors_lower_gender", func.lower(Actor.gender))
Index("ix_actors_created_at", Actor.created_at)
Index("ix_movies_created_at", Movie.created_at)

# Deferred: a movie's cast needs only id and name, so loading casts skips the count;
# actor queries ask for it (services.casting.actors_query).
Actor.movie_count = column_property(
    select(func.count(movie_actors.c.movie_id))
    .where(movie_actors.c.actor_id == Actor.id)
    .correlate_except(movie_actors)
    .scalar_subquery(),
    deferred=True,
)
