"""The migrations on a fresh database, as a deployment runs them."""

import os
import subprocess
import sys
import tempfile
import unittest
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from app.schemas.auth import USERS
from app.schemas.bucket import BUCKETS, ITEMS
from app.schemas.casting import ACTORS, MOVIES
from app.schemas.image import IMAGES
from tests.liveserver import IS_POSTGRES, ROOT, SKIP_REASON, LiveServer

LISTINGS = (USERS, BUCKETS, ITEMS, ACTORS, MOVIES, IMAGES)


@unittest.skipUnless(IS_POSTGRES, SKIP_REASON)
class MigrationTests(unittest.TestCase):
    def test_the_request_statement_timeout_does_not_cut_migrations_short(self):
        # Index builds and backfills over a large table take longer than any request may.
        server = LiveServer({"DB_STATEMENT_TIMEOUT_MS": "1"})
        server._admin(f'CREATE DATABASE "{server.database}"')
        try:
            result = subprocess.run(
                [sys.executable, "manage.py", "db", "upgrade"], cwd=ROOT, env=server.env, capture_output=True, text=True
            )
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            engine = create_engine(server.database_url)
            with engine.connect() as conn:
                trigram = set(
                    conn.execute(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%\\_trgm'")).scalars()
                )
            engine.dispose()
            searched = {f"ix_{c.table.name}_{c.name}_trgm" for listing in LISTINGS for c in listing.search}
            self.assertEqual(trigram, searched, "every q column has its trigram index")
        finally:
            server.stop()


CATALOGUE_COUNTS = "3c9d0f4a7b21"  # the revision that adds catalogue_counts


@contextmanager
def fresh_database():
    """The URL of a new, empty database of the kind under test (dropped afterwards)."""
    if IS_POSTGRES:
        server = LiveServer()
        server._admin(f'CREATE DATABASE "{server.database}"')
        try:
            yield server.database_url
        finally:
            server.stop()
    else:
        with tempfile.TemporaryDirectory(prefix="api-migrations-") as directory:
            yield f"sqlite:///{directory}/fresh.db"


class CatalogueCountsMigrationTests(unittest.TestCase):
    def manage(self, url, *args):
        env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
        env.update(APP_ENV="development", DATABASE_URL=url)
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])

    def test_the_counts_start_from_the_rows_already_there_and_go_back_down(self):
        with fresh_database() as url:
            self.manage(url, "db", "upgrade", f"{CATALOGUE_COUNTS}-1")
            engine = create_engine(url)
            try:
                with engine.begin() as conn:
                    conn.execute(
                        text(
                            "INSERT INTO actors (name, age, gender, movie_count, created_at, modified_at) "
                            "VALUES ('a', 30, 'x', 0, '2020-01-01', '2020-01-01')"
                        )
                    )
                    conn.execute(
                        text(
                            "INSERT INTO movies (title, release_date, created_at, modified_at) "
                            "VALUES ('m1', '2001-01-01', '2020-01-01', '2020-01-01'), "
                            "('m2', '2002-01-01', '2020-01-01', '2020-01-01')"
                        )
                    )
                self.manage(url, "db", "upgrade")
                with engine.connect() as conn:
                    counts = dict(conn.execute(text("SELECT collection, total FROM catalogue_counts")).all())
                self.assertEqual(counts, {"actors": 1, "movies": 2})
                self.manage(url, "db", "downgrade", f"{CATALOGUE_COUNTS}-1")
                self.manage(url, "db", "upgrade")
            finally:
                engine.dispose()
