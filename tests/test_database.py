"""The app's conversation with PostgreSQL: round trips on the wire, per-connection settings and
statement timeouts (its outages: tests/faults/test_database_outages.py). Counted with a proxy that
reads the wire protocol, so BEGIN, ROLLBACK and pings show up too (SQLAlchemy's events never see them)."""

import sqlite3
import time
import unittest
import uuid
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

from app import database
from app.extensions import db
from app.models import User
from app.services import accounts
from config import normalize_database_url
from tests.helpers import (
    DATABASE_URL,
    IS_POSTGRES,
    PASSWORD,
    StatementCounter,
    bearer,
    make_app,
    wait_until_mail_sent,
)

TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


@unittest.skipUnless(IS_POSTGRES, "round trips and server settings are PostgreSQL's")
class DatabaseTestCase(unittest.TestCase):
    overrides = {}

    def setUp(self):
        self.proxy = StatementCounter.to_database(DATABASE_URL)
        self.proxy.start()
        self.app = make_app(SQLALCHEMY_DATABASE_URI=self.proxy.url(DATABASE_URL), **self.overrides)
        self.client = self.app.test_client()
        email = f"{uuid.uuid4().hex}@example.com"
        with self.app.app_context():  # no verification mail: no sender's statements on the wire
            accounts.register(email, PASSWORD, verified=True)
            db.session.commit()
        self.token = self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD}).json["auth_token"]
        self.bucket_id = self.client.post("/v1/buckets", json={"name": "one"}, headers=self.auth).json["bucket"]["id"]

    def tearDown(self):
        self.proxy.start()
        with self.app.app_context():
            db.engine.dispose()  # connections a test cut are gone
            db.session.execute(db.delete(User))
            db.session.commit()
            db.engine.dispose()
        self.proxy.stop()

    @property
    def auth(self):
        return bearer(self.token)

    def wire(self, method, path, **kwargs):
        """(response, statements the app sent for it)."""
        self.client.open(path, method=method, headers=self.auth, **kwargs)  # warm: connections exist
        time.sleep(0.05)  # let the proxy's reader threads catch up
        self.proxy.statements.clear()
        response = self.client.open(path, method=method, headers=self.auth, **kwargs)
        time.sleep(0.05)
        return response, list(self.proxy.statements)


class RoundTripTests(DatabaseTestCase):
    def test_reads_send_only_their_statements(self):
        for path, most in (("/v1/buckets", 3), (f"/v1/buckets/{self.bucket_id}", 2), ("/v1/health", 1)):
            with self.subTest(path=path):
                response, statements = self.wire("GET", path)
                self.assertEqual(response.status_code, 200)
                self.assertLessEqual(len(statements), most, statements)
                self.assertFalse([s for s in statements if s.startswith(TRANSACTION_CONTROL)], statements)
                if path != "/v1/health":
                    self.assertNotIn("SELECT 1", statements)  # no pre-ping

    def test_a_failed_read_sends_no_rollback(self):
        response, statements = self.wire("GET", "/v1/buckets/999999")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(len(statements), 2, statements)

    def test_a_write_is_one_transaction_without_a_rollback(self):
        self.proxy.statements.clear()
        response = self.client.post("/v1/buckets", json={"name": "two"}, headers=self.auth)
        time.sleep(0.05)
        self.assertEqual(response.status_code, 201)
        statements = self.proxy.statements
        self.assertEqual(statements[0], "BEGIN", statements)
        self.assertNotIn("ROLLBACK", statements[: statements.index("COMMIT")])

    def test_a_refused_write_rolls_back_once(self):
        response, statements = self.wire("POST", "/v1/buckets", json={"name": "one"})
        self.assertEqual(response.status_code, 409)
        self.assertEqual(statements.count("ROLLBACK"), 1, statements)
        self.assertNotIn("COMMIT", statements)

    def test_a_write_commits_once_at_its_end(self):
        item = self.client.post(f"/v1/buckets/{self.bucket_id}/items", json={"name": "i"}, headers=self.auth).json
        item_path = f"/v1/buckets/{self.bucket_id}/items/{item['item']['id']}"
        for method, path, body in (
            ("POST", "/v1/buckets", {"name": "two"}),
            ("PATCH", f"/v1/buckets/{self.bucket_id}", {"name": "renamed"}),
            ("PUT", item_path, {"name": "again"}),
            ("DELETE", item_path, None),
        ):
            with self.subTest(method=method, path=path):
                self.proxy.statements.clear()
                response = self.client.open(path, method=method, json=body, headers=self.auth)
                time.sleep(0.05)
                statements = list(self.proxy.statements)
                self.assertLess(response.status_code, 300, response.json)
                self.assertEqual((statements[0], statements[-1]), ("BEGIN", "COMMIT"), statements)
                self.assertEqual(statements.count("COMMIT"), 1, statements)
                self.assertNotIn("ROLLBACK", statements)

    def test_a_read_commits_nothing(self):
        for path in ("/v1/buckets", f"/v1/buckets/{self.bucket_id}", "/v1/buckets/999999"):
            with self.subTest(path=path):
                _, statements = self.wire("GET", path)
                self.assertNotIn("COMMIT", statements)


class SessionSettingTests(DatabaseTestCase):
    overrides = {"DB_STATEMENT_TIMEOUT_MS": 1234, "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": 300}

    def test_each_connection_has_jit_off_and_the_statement_timeout(self):
        with self.app.app_context():
            self.assertEqual(db.session.execute(text("SHOW jit")).scalar(), "off")
            self.assertEqual(db.session.execute(text("SHOW statement_timeout")).scalar(), "1234ms")

    def test_a_transaction_left_idle_ends_and_frees_its_row_locks(self):
        with self.app.app_context():
            db.session.execute(text("SELECT id FROM buckets WHERE id = :id FOR UPDATE"), {"id": self.bucket_id})
            time.sleep(1)  # the client vanished mid-transaction, past the 300 ms idle timeout
            other = create_engine(normalize_database_url(DATABASE_URL))
            try:
                with other.begin() as connection:
                    connection.execute(text("SET lock_timeout = 2000"))
                    locked = text("SELECT id FROM buckets WHERE id = :id FOR UPDATE NOWAIT")
                    self.assertEqual(connection.execute(locked, {"id": self.bucket_id}).scalar(), self.bucket_id)
            finally:
                other.dispose()
            database.rollback()  # the server already ended that transaction and its connection
            db.engine.dispose()


class StatementTimeoutTests(DatabaseTestCase):
    overrides = {"DB_STATEMENT_TIMEOUT_MS": 200}

    def test_a_statement_over_the_timeout_is_a_503_and_the_app_stays_usable(self):
        # A real slow statement: the bucket list waits for a lock another session holds.
        locker = create_engine(normalize_database_url(DATABASE_URL))
        try:
            with locker.begin() as connection:
                connection.execute(text("LOCK TABLE buckets IN ACCESS EXCLUSIVE MODE"))
                response = self.client.get("/v1/buckets", headers=self.auth)
                self.assertEqual(response.status_code, 503)
                self.assertEqual(response.json["error"], 503)
                self.assertIs(response.json["success"], False)
                self.assertEqual(self.client.get("/v1/auth/me", headers=self.auth).status_code, 200)
                created = self.client.post("/v1/buckets", json={"name": "blocked"}, headers=self.auth)
                self.assertEqual(created.status_code, 503)
        finally:
            locker.dispose()
        self.assertEqual(self.client.get("/v1/buckets", headers=self.auth).status_code, 200)


@unittest.skipIf(IS_POSTGRES, "SQLite's whole-file write lock")
class SqliteBusyTests(unittest.TestCase):
    def test_a_write_that_waits_out_the_busy_timeout_is_a_503(self):
        app = make_app(SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"timeout": 0.1}})
        client = app.test_client()
        token = client.post(
            "/v1/auth/register", json={"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}
        ).json["auth_token"]
        wait_until_mail_sent(app)  # the sender's writes would take the file too
        holder = sqlite3.connect(urlsplit(DATABASE_URL).path, timeout=0)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer keeps the file
            response = client.post("/v1/buckets", json={"name": "waits"}, headers=bearer(token))
            self.assertEqual(response.status_code, 503, response.json)
            self.assertEqual(response.headers["Retry-After"], "1")
        finally:
            holder.rollback()
            holder.close()
        self.assertEqual(client.post("/v1/buckets", json={"name": "waits"}, headers=bearer(token)).status_code, 201)
        with app.app_context():
            db.session.execute(db.delete(User))
            db.session.commit()
            db.engine.dispose()
