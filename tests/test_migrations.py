"""The migrations on a fresh PostgreSQL database, as a deployment runs them."""

import subprocess
import sys
import unittest

from sqlalchemy import create_engine, text

from tests.liveserver import IS_POSTGRES, ROOT, SKIP_REASON, LiveServer


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
                trigram = conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%\\_trgm'")).scalar()
            engine.dispose()
            self.assertEqual(trigram, 8, "every q column has its trigram index")
        finally:
            server.stop()
