"""The migrations on a fresh PostgreSQL database, as a deployment runs them."""

import subprocess
import sys
import unittest

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
