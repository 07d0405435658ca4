"""`manage.py seed`: realistic dummy data, inserted in bulk.

Rows go in batches, never one ORM object at a time: through COPY on PostgreSQL,
through executemany (insertmanyvalues) where ids are needed back or on SQLite.
Text comes from a small pool that Faker fills once.
"""

import csv
import io
import random
from contextlib import contextmanager
from datetime import date, timedelta

import click
from faker import Faker
from flask.cli import with_appcontext
from PIL import Image as PILImage
from sqlalchemy import func, insert, select, text, update

from app.auth import hash_password
from app.database import unbounded_waits
from app.extensions import db
from app.models import Actor, Bucket, Item, Movie, User, movie_actors
from app.models.base import utcnow
from app.permissions import ROLES
from app.services import images as image_service
from app.services.casting import recount_totals
from app.transactions import command_transaction

BATCH = 10_000
POOL = 1_000
GENDERS = ("female", "male", "non-binary")
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP")


def _batches(rows, size=BATCH):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _copy(table, batch):
    """PostgreSQL's COPY: the fastest bulk load there is, with the data as a CSV stream.

    Every field is quoted, so an empty string stays an empty string, not NULL.
    """
    columns = list(batch[0])
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL).writerows([row[column] for column in columns] for row in batch)
    buffer.seek(0)
    cursor = db.session.connection().connection.cursor()
    try:
        with unbounded_waits():
            cursor.copy_expert(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()


@contextmanager
def _indexes_built_after(table, postgres):
    """On PostgreSQL, drop the table's secondary indexes for the load and build them once after it:
    one index build is many times faster than a million index updates (trigram GIN above all).
    Indexes that back a constraint (primary key, unique constraint) stay."""
    if not postgres:
        yield
        return
    indexes = db.session.execute(
        text(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
            "WHERE indrelid = CAST(:table AS regclass) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ),
        {"table": table.name},
    ).all()
    for name, _ in indexes:
        db.session.execute(text(f"DROP INDEX {name}"))
    yield
    db.session.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
    for _, definition in indexes:
        db.session.execute(text(definition))


def _insert(model, rows, label, returning=False):
    """Insert rows in batches with a progress bar; the new ids if asked for.

    Rows without ids to return go through COPY on PostgreSQL; everything else
    through executemany (insertmanyvalues).
    """
    ids = []
    table = getattr(model, "__table__", model)
    postgres = db.engine.dialect.name == "postgresql"
    use_copy = not returning and postgres
    with click.progressbar(length=len(rows), label=label, show_pos=True) as bar, _indexes_built_after(table, postgres):
        for batch in _batches(rows):
            if use_copy:
                _copy(table, batch)
            elif returning:
                ids += db.session.scalars(insert(model).returning(model.id, sort_by_parameter_order=True), batch).all()
            else:
                db.session.execute(insert(model), batch)
            bar.update(len(batch))
    return ids


COUNTERS = (
    (User.bucket_count, Bucket.owner_id),
    (Bucket.item_count, Item.bucket_id),
    (Actor.movie_count, movie_actors.c.actor_id),
)


def recount(counter, foreign_key):
    """Set a counter column from the rows it counts (after inserts that bypass the services)."""
    model = counter.class_
    rows = select(func.count()).where(foreign_key == model.id).correlate(model).scalar_subquery()
    db.session.execute(update(model).values({counter.key: rows}), execution_options={"synchronize_session": False})


def recount_all():
    for counter, foreign_key in COUNTERS:
        recount(counter, foreign_key)
    recount_totals()
    # Rows came in past the services: no total counted before may be reused (app.pagination).
    db.session.execute(update(User).values(buckets_revision=User.buckets_revision + 1))


def _account(email, password_hash, role):
    user = db.session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        user = User(email=email, password_hash=password_hash, role=role)
        db.session.add(user)
    else:
        user.password_hash, user.role = password_hash, role
        user.token_version += 1
    db.session.flush()  # its id, for the rows that belong to it
    return user


def seed_accounts(email, password, users):
    password_hash = hash_password(password)
    seeded = [_account(email.lower(), password_hash, "user")]
    seeded += [_account(f"user{n}@example.com", password_hash, "user") for n in range(2, users + 1)]
    role_accounts = [
        _account(f"{role.replace('_', '-')}@example.com", password_hash, role) for role in ROLES if role != "user"
    ]
    return seeded, role_accounts


def seed_buckets(fake, rng, owners, buckets, items):
    words = [fake.catch_phrase() for _ in range(POOL)]
    sentences = [fake.sentence(nb_words=10) for _ in range(POOL)]
    # Counters are written with the rows they count (services.buckets keeps them afterwards).
    bucket_rows = [
        {"owner_id": owner.id, "name": f"{rng.choice(words)[:90]} #{n}", "item_count": items}
        for owner in owners
        for n in range(1, buckets + 1)
    ]
    bucket_ids = _insert(Bucket, bucket_rows, "buckets", returning=True)
    db.session.execute(
        update(User)
        .where(User.id.in_([owner.id for owner in owners]))
        .values(bucket_count=User.bucket_count + buckets, buckets_revision=User.buckets_revision + 1)
    )
    now = utcnow()
    item_rows = [
        {
            "bucket_id": bucket_id,
            "name": rng.choice(sentences)[:200],
            "description": rng.choice(sentences),
            "done": rng.random() < 0.3,
            "created_at": now,
            "modified_at": now,
        }
        for bucket_id in bucket_ids
        for _ in range(items)
    ]
    _insert(Item, item_rows, "items")


def seed_casting(fake, rng, actors, movies):
    actor_rows = [
        {"name": fake.name(), "age": rng.randint(8, 90), "gender": rng.choice(GENDERS)} for _ in range(actors)
    ]
    actor_ids = _insert(Actor, actor_rows, "actors", returning=True)
    start = date(1950, 1, 1)
    movie_rows = [
        {"title": f"{fake.catch_phrase()} ({n})", "release_date": start + timedelta(days=rng.randint(0, 27000))}
        for n in range(1, movies + 1)
    ]
    movie_ids = _insert(Movie, movie_rows, "movies", returning=True)
    if actor_ids:
        cast_rows = [
            {"movie_id": movie_id, "actor_id": actor_id}
            for movie_id in movie_ids
            for actor_id in rng.sample(actor_ids, rng.randint(1, min(8, len(actor_ids))))
        ]
        _insert(movie_actors, cast_rows, "cast")
    cast_count = select(func.count()).where(movie_actors.c.actor_id == Actor.id).correlate(Actor).scalar_subquery()
    db.session.execute(update(Actor).values(movie_count=cast_count), execution_options={"synchronize_session": False})
    recount_totals()


def _fake_image(rng, n):
    fmt = IMAGE_FORMATS[n % len(IMAGE_FORMATS)]
    size = (rng.randint(64, 1024), rng.randint(64, 768))
    picture = PILImage.new("RGB", size, tuple(rng.randint(0, 255) for _ in range(3)))
    picture.paste(tuple(rng.randint(0, 255) for _ in range(3)), (0, 0, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return f"seed-{n}.{fmt.lower()}", out.getvalue()


def seed_images(fake, rng, owner, count):
    """Through the upload code path, so seeded images are stored like real ones."""
    tags = [fake.word() for _ in range(30)]
    with click.progressbar(range(count), label="images") as bar:
        for n in bar:
            processed = image_service.process_upload(*_fake_image(rng, n))
            metadata = {"title": fake.catch_phrase(), "description": fake.sentence(), "tags": rng.sample(tags, 3)}
            image_service.save_uploads([processed], metadata, owner.id)


@click.command("seed")
@click.option("--users", default=1, show_default=True, help="Accounts with buckets")
@click.option("--buckets", default=100, show_default=True, help="Buckets per account")
@click.option("--items", default=10, show_default=True, help="Items per bucket")
@click.option("--actors", default=50, show_default=True)
@click.option("--movies", default=20, show_default=True, help="Each gets a random cast of 1..8 actors")
@click.option("--images", default=0, show_default=True, help="Generated with Pillow, stored like uploads")
@click.option("--random-seed", type=int, default=None, help="Repeatable data")
@click.option("--email", default="demo@example.com", show_default=True, help="The first account's e-mail")
@click.option("--password", default="password123", show_default=True, help="Password of every seeded account")
@with_appcontext
@command_transaction
def seed(users, buckets, items, actors, movies, images, random_seed, email, password):
    """Fill the database with realistic dummy data (one transaction, but for the images: each is
    stored like an upload)."""
    for name, value in (
        ("--users", users),
        ("--buckets", buckets),
        ("--items", items),
        ("--actors", actors),
        ("--movies", movies),
        ("--images", images),
    ):
        if value < 0:
            raise click.BadParameter("must not be negative", param_hint=name)
    rng = random.Random(random_seed)
    fake = Faker()
    fake.seed_instance(random_seed)
    owners, role_accounts = seed_accounts(email, password, max(users, 1))
    seed_buckets(fake, rng, owners, buckets, items)
    seed_casting(fake, rng, actors, movies)
    admin = next(user for user in role_accounts if user.role == "admin")
    seed_images(fake, rng, admin, images)
    click.echo(f"\nLog in with any of these (password: {password}):")
    for user in owners[:5] + role_accounts:
        click.echo(f"  {user.email:<40} role {user.role}")
