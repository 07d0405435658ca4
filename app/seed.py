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
from sqlalchemy import bindparam, func, insert, select, text, update

from app.auth import hash_password
from app.database import unbounded_waits
from app.extensions import db
from app.models import Actor, Bucket, Image, Item, Movie, User, movie_actors
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
    """On PostgreSQL, when the table is empty, drop its secondary indexes for the load and build
    them once after it: one index build is many times faster than a million index updates (trigram
    GIN above all). A top-up of a filled table updates them as it goes (rebuilding a million rows'
    indexes for a few more would cost far more). Indexes that back a constraint (primary key,
    unique constraint) stay."""
    if not postgres or db.session.execute(select(table).limit(1)).first() is not None:
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
    if not rows:
        return ids
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


def seed_accounts(email, password, users):
    """The seeded accounts, in order: `users` bucket owners, then one per role but `user`.

    Accounts that exist are left as they are (password, role, tokens): seeding again never logs
    anyone out. Missing ones are created with `password`. Returns (owners, role accounts, created
    e-mails)."""
    owner_emails = [email.lower()] + [f"user{n}@example.com" for n in range(2, users + 1)]
    role_emails = {f"{role.replace('_', '-')}@example.com": role for role in ROLES if role != "user"}
    wanted = {address: "user" for address in owner_emails} | role_emails
    existing = {user.email: user for user in db.session.scalars(select(User).where(User.email.in_(list(wanted))))}
    missing = [address for address in wanted if address not in existing]
    if missing:
        password_hash = hash_password(password)  # bcrypt: once, and only when an account is new
        verified_at = utcnow()  # demo accounts: their made-up addresses count as verified
        db.session.add_all(
            User(email=address, password_hash=password_hash, role=wanted[address], email_verified_at=verified_at)
            for address in missing
        )
        db.session.flush()  # their ids, for the rows that belong to them
    accounts = {user.email: user for user in db.session.scalars(select(User).where(User.email.in_(list(wanted))))}
    return [accounts[address] for address in owner_emails], [accounts[address] for address in role_emails], missing


def _numbered(count, taken, make, key, start):
    """`count` new rows `make(n)` for n after `start`, skipping any whose `key` (what the table's
    unique index compares, lower-cased like it) is in `taken`; `taken` gains theirs."""
    rows, n = [], start
    while len(rows) < count:
        n += 1
        row = make(n)
        if key(row) not in taken:
            taken.add(key(row))
            rows.append(row)
    return rows


def _item_rows(rng, sentences, bucket_id, count, now):
    return [
        {
            "bucket_id": bucket_id,
            "name": rng.choice(sentences)[:200],
            "description": rng.choice(sentences),
            "done": rng.random() < 0.3,
            "created_at": now,
            "modified_at": now,
        }
        for _ in range(count)
    ]


def seed_buckets(fake, rng, owners, buckets, items):
    """Each owner up to `buckets` buckets, each of their buckets up to `items` items.

    Returns how many buckets and items were added."""
    words = [fake.catch_phrase() for _ in range(POOL)]
    sentences = [fake.sentence(nb_words=10) for _ in range(POOL)]
    existing = db.session.execute(
        select(Bucket.owner_id, Bucket.id, Bucket.name, Bucket.item_count).where(
            Bucket.owner_id.in_([owner.id for owner in owners])
        )
    ).all()
    names = {owner.id: set() for owner in owners}
    for owner_id, _, name, _ in existing:
        names[owner_id].add(name.lower())
    # Counters are written with the rows they count (services.buckets keeps them afterwards).
    added = {owner.id: max(buckets - len(names[owner.id]), 0) for owner in owners}
    bucket_rows = [
        row
        for owner_id, count in added.items()
        for row in _numbered(
            count,
            names[owner_id],
            lambda n, owner_id=owner_id: {
                "owner_id": owner_id,
                "name": f"{rng.choice(words)[:90]} #{n}",
                "item_count": items,
            },
            key=lambda row: row["name"].lower(),
            start=len(names[owner_id]),
        )
    ]
    bucket_ids = _insert(Bucket, bucket_rows, "buckets", returning=True)
    grown = [{"bucket": bucket_id, "by": items - count} for _, bucket_id, _, count in existing if count < items]
    if grown:
        buckets_table = Bucket.__table__
        db.session.execute(
            update(buckets_table)
            .where(buckets_table.c.id == bindparam("bucket"))
            .values(item_count=buckets_table.c.item_count + bindparam("by")),
            grown,
        )
    if bucket_rows:
        users = User.__table__
        db.session.execute(
            update(users)
            .where(users.c.id == bindparam("owner"))
            .values(bucket_count=users.c.bucket_count + bindparam("by"), buckets_revision=users.c.buckets_revision + 1),
            [{"owner": owner_id, "by": count} for owner_id, count in added.items() if count],
        )
    now = utcnow()
    item_rows = [row for bucket_id in bucket_ids for row in _item_rows(rng, sentences, bucket_id, items, now)]
    item_rows += [row for change in grown for row in _item_rows(rng, sentences, change["bucket"], change["by"], now)]
    _insert(Item, item_rows, "items")
    return len(bucket_rows), len(item_rows)


def seed_casting(fake, rng, actors, movies):
    """The catalogue up to `actors` actors and `movies` movies; each new movie gets a random cast
    of 1..8 actors. Returns how many actors and movies were added."""
    have_actors = db.session.scalar(select(func.count()).select_from(Actor))
    actor_rows = [
        {"name": fake.name(), "age": rng.randint(8, 90), "gender": rng.choice(GENDERS)}
        for _ in range(actors - have_actors)
    ]
    actor_ids = _insert(Actor, actor_rows, "actors", returning=True)
    have_movies = db.session.scalar(select(func.count()).select_from(Movie))
    start = date(1950, 1, 1)
    taken = set()
    if have_movies and movies > have_movies:
        taken = {(title.lower(), day) for title, day in db.session.execute(select(Movie.title, Movie.release_date))}
    movie_rows = _numbered(
        movies - have_movies,
        taken,
        lambda n: {
            "title": f"{fake.catch_phrase()} ({n})",
            "release_date": start + timedelta(days=rng.randint(0, 27000)),
        },
        key=lambda row: (row["title"].lower(), row["release_date"]),
        start=have_movies,
    )
    movie_ids = _insert(Movie, movie_rows, "movies", returning=True)
    if movie_ids and have_actors:
        actor_ids = db.session.scalars(select(Actor.id)).all()
    if movie_ids and actor_ids:
        cast_rows = [
            {"movie_id": movie_id, "actor_id": actor_id}
            for movie_id in movie_ids
            for actor_id in rng.sample(actor_ids, rng.randint(1, min(8, len(actor_ids))))
        ]
        _insert(movie_actors, cast_rows, "cast")
        cast_count = select(func.count()).where(movie_actors.c.actor_id == Actor.id).correlate(Actor).scalar_subquery()
        db.session.execute(
            update(Actor).values(movie_count=cast_count), execution_options={"synchronize_session": False}
        )
    recount_totals()
    return len(actor_rows), len(movie_rows)


def _fake_image(rng, n):
    fmt = IMAGE_FORMATS[n % len(IMAGE_FORMATS)]
    size = (rng.randint(64, 1024), rng.randint(64, 768))
    picture = PILImage.new("RGB", size, tuple(rng.randint(0, 255) for _ in range(3)))
    picture.paste(tuple(rng.randint(0, 255) for _ in range(3)), (0, 0, size[0] // 2, size[1] // 2))
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return f"seed-{n}.{fmt.lower()}", out.getvalue()


def seed_images(fake, rng, owner, images):
    """The image repository up to `images` images, through the upload code path, so seeded images
    are stored like real ones. Returns how many were added."""
    have = db.session.scalar(select(func.count()).select_from(Image))
    tags = [fake.word() for _ in range(30)]
    with click.progressbar(range(have, max(images, have)), label="images") as bar:
        for n in bar:
            processed = image_service.process_upload(*_fake_image(rng, n))
            metadata = {"title": fake.catch_phrase(), "description": fake.sentence(), "tags": rng.sample(tags, 3)}
            image_service.save_uploads([processed], metadata, owner.id)
    return max(images - have, 0)


@click.command("seed")
@click.option("--users", default=1, show_default=True, help="Accounts with buckets")
@click.option("--buckets", default=100, show_default=True, help="Buckets per account")
@click.option("--items", default=10, show_default=True, help="Items per bucket")
@click.option("--actors", default=50, show_default=True, help="Actors in the catalogue")
@click.option("--movies", default=20, show_default=True, help="Movies in the catalogue; a new one gets a cast of 1..8")
@click.option("--images", default=0, show_default=True, help="Images in the repository, generated with Pillow")
@click.option("--random-seed", type=int, default=None, help="Repeatable data")
@click.option("--email", default="demo@example.com", show_default=True, help="The first account's e-mail")
@click.option("--password", default="password123", show_default=True, help="Password of the accounts it creates")
@with_appcontext
@command_transaction
def seed(users, buckets, items, actors, movies, images, random_seed, email, password):
    """Fill the database with realistic dummy data, up to the requested shape (one transaction, but
    for the images: each is stored like an upload).

    Running it again adds only what is missing: buckets up to --buckets per account, items up to
    --items per bucket, actors, movies and images up to their totals. Accounts that exist already
    are left as they are: their password, role and tokens do not change."""
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
    owners, role_accounts, created = seed_accounts(email, password, max(users, 1))
    added_buckets, added_items = seed_buckets(fake, rng, owners, buckets, items)
    added_actors, added_movies = seed_casting(fake, rng, actors, movies)
    admin = next(user for user in role_accounts if user.email == "admin@example.com")
    added_images = seed_images(fake, rng, admin, images)
    click.echo(
        f"\nAdded {len(created)} accounts, {added_buckets} buckets, {added_items} items, {added_actors} actors, "
        f"{added_movies} movies, {added_images} images."
    )
    click.echo(f"Log in with any of these (password: {password}, unless the account existed before):")
    for user in owners[:5] + role_accounts:
        state = "created now" if user.email in created else "existed: left as it was"
        click.echo(f"  {user.email:<40} role {user.role}, {state}")
