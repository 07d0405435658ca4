"""The migrations on a fresh database, as a deployment runs them."""

import os
import subprocess
import sys
import unittest

from sqlalchemy import create_engine, inspect, text

from app.api import lists
from app.pagination import Listing
from tests.helpers import fresh_database
from tests.liveserver import IS_POSTGRES, ROOT, SKIP_REASON, LiveServer

LISTINGS = [value for value in vars(lists).values() if isinstance(value, Listing)]  # a new list too


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
ACTOR_TALLIES = "7a1e5c2d9f30"  # the revision that adds actor_tallies
MAIL = "97cffbe83f91"  # the revision that adds the mail outbox, mail tokens and users.email_verified_at
NORMALIZED_EMAILS = "c4e8a1f7b3d2"  # the revision that normalises the stored e-mail addresses
NAME_KEYS = "d1f5b2c8e4a6"  # the revision that adds buckets.name_key and movies.title_key


def insert_users(conn, emails):
    for email in emails:
        conn.execute(
            text(
                "INSERT INTO users (email, password_hash, role, token_version, bucket_count, buckets_revision, "
                "created_at, modified_at) VALUES (:email, 'x', 'user', 1, 0, 0, '2020-01-01', '2020-01-01')"
            ),
            {"email": email},
        )


class BackfillMigrationTests(unittest.TestCase):
    """Migrations that fill a new table from the rows already there, or rewrite rows, on the database under test."""

    def manage(self, url, *args, succeeds=True):
        env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
        env.update(APP_ENV="development", DATABASE_URL=url)
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(result.returncode == 0, succeeds, result.stderr[-2000:])
        return result.stderr

    def backfilled(self, revision, table, inserts, query):
        """Migrate a fresh database to just before `revision`, run `inserts`, upgrade: the rows of
        `query`. Then the downgrade drops `table`, and the upgrade runs again."""
        with fresh_database() as url:
            self.manage(url, "db", "upgrade", f"{revision}-1")
            engine = create_engine(url)
            try:
                with engine.begin() as conn:
                    for insert in inserts:
                        conn.execute(text(insert))
                self.manage(url, "db", "upgrade")
                with engine.connect() as conn:
                    rows = sorted(tuple(row) for row in conn.execute(text(query)))
                self.manage(url, "db", "downgrade", f"{revision}-1")
                with engine.connect() as conn:
                    self.assertNotIn(table, inspect(conn).get_table_names())
                self.manage(url, "db", "upgrade")
            finally:
                engine.dispose()
        return rows

    def test_the_catalogue_counts_start_from_the_rows_already_there_and_go_back_down(self):
        inserts = (
            "INSERT INTO actors (name, age, gender, movie_count, created_at, modified_at) "
            "VALUES ('a', 30, 'x', 0, '2020-01-01', '2020-01-01')",
            "INSERT INTO movies (title, release_date, created_at, modified_at) "
            "VALUES ('m1', '2001-01-01', '2020-01-01', '2020-01-01'), "
            "('m2', '2002-01-01', '2020-01-01', '2020-01-01')",
        )
        counts = self.backfilled(
            CATALOGUE_COUNTS, "catalogue_counts", inserts, "SELECT collection, total FROM catalogue_counts"
        )
        self.assertEqual(counts, [("actors", 1), ("movies", 2)])

    def test_the_actor_tallies_start_from_the_actors_already_there_and_go_back_down(self):
        insert = (
            "INSERT INTO actors (name, age, gender, movie_count, created_at, modified_at) "
            "VALUES ('a', 30, 'Female', 0, '2020-01-01', '2020-01-01'), "
            "('b', 30, 'female', 0, '2020-01-01', '2020-01-01'), "
            "('c', 31, 'female', 0, '2020-01-01', '2020-01-01'), "
            "('d', 30, 'MALE', 0, '2020-01-01', '2020-01-01')"
        )
        tallies = self.backfilled(
            ACTOR_TALLIES, "actor_tallies", [insert], "SELECT gender_key, age, total FROM actor_tallies"
        )
        self.assertEqual(tallies, [("female", 30, 2), ("female", 31, 1), ("male", 30, 1)])

    def test_accounts_already_there_start_unverified_and_the_mail_tables_go_back_down(self):
        insert = (
            "INSERT INTO users (email, password_hash, role, token_version, bucket_count, buckets_revision, "
            "created_at, modified_at, version) VALUES ('old@example.com', 'x', 'user', 1, 0, 0, "
            "'2020-01-01', '2020-01-01', 1)"
        )
        users = self.backfilled(MAIL, "mail_outbox", [insert], "SELECT email, email_verified_at FROM users")
        self.assertEqual(users, [("old@example.com", None)])

    def emails_after_upgrade(self, emails, succeeds=True):
        with fresh_database() as url:
            self.manage(url, "db", "upgrade", f"{NORMALIZED_EMAILS}-1")
            engine = create_engine(url)
            try:
                with engine.begin() as conn:
                    insert_users(conn, emails)
                output = self.manage(url, "db", "upgrade", succeeds=succeeds)
                with engine.connect() as conn:
                    rows = conn.execute(text("SELECT id, email FROM users ORDER BY id")).all()
            finally:
                engine.dispose()
        return [email for _, email in rows], output

    def test_stored_addresses_are_normalised(self):
        emails, output = self.emails_after_upgrade(
            ["\ufb01le@example.com", "u@bücher.example", "ok@example.com", "bad@localhost"]
        )
        self.assertEqual(emails, ["file@example.com", "u@xn--bcher-kva.example", "ok@example.com", "bad@localhost"])
        self.assertIn("'bad@localhost' is not a mailbox", output)

    def test_two_accounts_of_one_mailbox_stop_the_upgrade_and_are_listed(self):
        before = [
            "file@example.com",
            "\ufb01le@example.com",
            "u@bücher.example",
            "u@xn--bcher-kva.example",
            "x@ＥＸＡＭＰＬＥ.com",
        ]
        emails, output = self.emails_after_upgrade(before, succeeds=False)
        self.assertEqual(emails, before, "nothing changed")
        self.assertIn("file@example.com: users.id 1 ('file@example.com'), users.id 2 ('\ufb01le@example.com')", output)
        self.assertIn("u@xn--bcher-kva.example: users.id 3 ('u@bücher.example'), users.id 4", output)

    def names_after_upgrade(self, buckets, movies, succeeds=True):
        """Buckets (of one owner) and movies (name, date) before NAME_KEYS, then the upgrade: the rows."""
        with fresh_database() as url:
            self.manage(url, "db", "upgrade", f"{NAME_KEYS}-1")
            engine = create_engine(url)
            try:
                with engine.begin() as conn:
                    insert_users(conn, ["owner@example.com"])
                    for name in buckets:
                        conn.execute(
                            text(
                                "INSERT INTO buckets (owner_id, name, item_count, created_at, modified_at) "
                                "VALUES (1, :name, 0, '2020-01-01', '2020-01-01')"
                            ),
                            {"name": name},
                        )
                    for title, released in movies:
                        conn.execute(
                            text(
                                "INSERT INTO movies (title, release_date, created_at, modified_at) "
                                "VALUES (:title, :released, '2020-01-01', '2020-01-01')"
                            ),
                            {"title": title, "released": released},
                        )
                output = self.manage(url, "db", "upgrade", succeeds=succeeds)
                columns = ("name, name_key", "title, title_key") if succeeds else ("name", "title")
                with engine.connect() as conn:
                    rows = [conn.execute(text(f"SELECT {columns[0]} FROM buckets ORDER BY id")).all()]
                    rows.append(conn.execute(text(f"SELECT {columns[1]} FROM movies ORDER BY id")).all())
                if succeeds:
                    self.manage(url, "db", "downgrade", f"{NAME_KEYS}-1")
                    self.manage(url, "db", "upgrade")
            finally:
                engine.dispose()
        return [[tuple(row) for row in table] for table in rows], output

    def test_names_get_their_folded_keys(self):
        (buckets, movies), _ = self.names_after_upgrade(
            ["Cafe\u0301", "Straße"], [("ΣΊΣΥΦΟΣ", "2001-01-01"), ("Σίσυφος", "2002-02-02")]
        )
        self.assertEqual(buckets, [("Cafe\u0301", "caf\u00e9"), ("Straße", "strasse")])
        self.assertEqual(movies, [("ΣΊΣΥΦΟΣ", "σίσυφοσ"), ("Σίσυφος", "σίσυφοσ")])

    def test_names_that_become_one_stop_the_upgrade_and_are_listed(self):
        buckets = ["Caf\u00e9", "Cafe\u0301", "Other"]
        movies = [("Straße", "2001-01-01"), ("STRASSE", "2001-01-01")]  # lower() tells them apart, casefold() not
        (stored_buckets, stored_movies), output = self.names_after_upgrade(buckets, movies, succeeds=False)
        self.assertEqual(stored_buckets, [(name,) for name in buckets], "nothing changed")
        self.assertEqual(len(stored_movies), 2)
        self.assertIn("buckets.id 1 ('Café') and buckets.id 2 ('Cafe\u0301'), owner_id 1", output)
        self.assertIn("movies.id 1 ('Straße') and movies.id 2 ('STRASSE'), release_date 2001-01-01", output)
