"""The request is the unit of work (app.transactions): a write commits once, at its end; a failed
one never; a read not at all. Counted with SQLAlchemy's connection events, on either database
(tests/test_database.py counts the same on PostgreSQL's wire)."""

import unittest

from sqlalchemy import event

from app.extensions import db
from app.models import Bucket
from tests.helpers import IS_POSTGRES, PASSWORD, APITestCase, bearer, make_app

CONCURRENT_CONFLICT = "The request collided with a concurrent change; nothing was changed, please retry"


class RequestCommitTests(APITestCase):
    def setUp(self):
        super().setUp()
        self.user_id, self.h = self.account()
        self.bucket = self.client.post("/v1/buckets", headers=self.h, json={"name": "one"}).json["bucket"]
        self.bucket_url = f"/v1/buckets/{self.bucket['id']}"

    def ends(self, method, path, headers=None, **kwargs):
        """(response, how the request's transactions ended: "commit" / "rollback" each time)."""
        db.session.commit()  # whatever the test itself left open ends before counting
        ends = []
        listeners = {name: (lambda _conn, name=name: ends.append(name)) for name in ("commit", "rollback")}
        for name, listener in listeners.items():
            event.listen(db.engine, name, listener)
        try:
            response = self.client.open(path, method=method, headers=headers or self.h, **kwargs)
        finally:
            for name, listener in listeners.items():
                event.remove(db.engine, name, listener)
        return response, ends

    def test_a_write_commits_once(self):
        item = self.client.post(f"{self.bucket_url}/items", headers=self.h, json={"name": "i"}).json["item"]
        item_url = f"{self.bucket_url}/items/{item['id']}"
        for method, path, body in (
            ("POST", "/v1/buckets", {"name": "two"}),
            ("PATCH", self.bucket_url, {"name": "renamed"}),
            ("PUT", item_url, {"name": "again"}),
            ("DELETE", item_url, None),
        ):
            with self.subTest(method=method, path=path):
                response, ends = self.ends(method, path, json=body)
                self.assertLess(response.status_code, 300, response.json)
                self.assertEqual(ends, ["commit"])

    def test_a_failed_write_commits_nothing(self):
        for method, path, body, status in (
            ("POST", "/v1/buckets", {"name": "ONE"}, 409),
            ("PATCH", "/v1/buckets/999999", {"name": "x"}, 404),
            ("PATCH", self.bucket_url, {"nom": "x"}, 422),
        ):
            with self.subTest(status=status):
                response, ends = self.ends(method, path, json=body)
                self.assertError(response, status)
                self.assertNotIn("commit", ends)
                self.assertLessEqual(ends, ["rollback"])

    def test_a_stale_if_match_commits_nothing(self):
        response, ends = self.ends("PATCH", self.bucket_url, json={"name": "x"}, headers={**self.h, "If-Match": '"0"'})
        self.assertError(response, 412)
        self.assertNotIn("commit", ends)

    def test_a_read_commits_nothing(self):
        for path in ("/v1/buckets", self.bucket_url, "/v1/buckets/999999"):
            with self.subTest(path=path):
                _, ends = self.ends("GET", path)
                self.assertNotIn("commit", ends)

    def test_an_idempotent_create_commits_its_key_early_then_once(self):
        response, ends = self.ends(
            "POST", "/v1/buckets", json={"name": "k"}, headers={**self.h, "Idempotency-Key": "k"}
        )
        self.assertEqual(response.status_code, 201)
        self.assertEqual(ends, ["commit", "commit"])  # the key taken, then the work with its kept answer


class FailingCommitTests(APITestCase):
    """A commit that fails at the end of the request is answered like any failure: in the envelope."""

    def test_a_constraint_refusing_the_commit_is_a_409(self):
        app = make_app()
        owner = {}

        @app.post("/test-only/unflushed-duplicate")
        def unflushed_duplicate():  # test app only: a write no service flushed, refused by the commit
            db.session.add(Bucket(owner_id=owner["id"], name="TAKEN"))
            return {"success": True}

        client = app.test_client()
        token = client.post("/v1/auth/register", json={"email": "commit@example.com", "password": PASSWORD}).json
        owner["id"] = token["user"]["id"]
        client.post("/v1/buckets", headers=bearer(token["auth_token"]), json={"name": "taken"})
        response = client.post("/test-only/unflushed-duplicate")
        self.assertError(response, 409, CONCURRENT_CONFLICT)
        with app.app_context():
            self.assertEqual(db.session.query(Bucket).count(), 1)


@unittest.skipIf(IS_POSTGRES, "SQLite's own statements")
class SqliteTransactionTests(APITestCase):
    """What SQLite itself runs (its trace callback, so COMMIT and ROLLBACK show too): a write takes
    the write lock with its first statement and keeps it to its one COMMIT; a read takes none."""

    def setUp(self):
        super().setUp()
        self.h = self.account()[1]
        self.statements, self.tracing = [], False

        def trace(dbapi_connection, _record, _proxy):
            dbapi_connection.set_trace_callback(lambda sql: self.tracing and self.statements.append(sql))

        event.listen(db.engine, "checkout", trace)
        self.addCleanup(event.remove, db.engine, "checkout", trace)

    def traced(self, method, path, **kwargs):
        db.session.commit()  # the test's own connection goes back: the request checks one out
        self.statements.clear()
        self.tracing = True
        try:
            response = self.client.open(path, method=method, headers=self.h, **kwargs)
        finally:
            self.tracing = False
        return response, [s.split()[0] if s.split()[0] in ("COMMIT", "ROLLBACK") else s for s in self.statements]

    def test_a_write_holds_the_write_lock_from_its_first_statement_to_its_commit(self):
        response, statements = self.traced("POST", "/v1/buckets", json={"name": "one"})
        self.assertEqual(response.status_code, 201)
        self.assertEqual((statements[0], statements[-1]), ("BEGIN IMMEDIATE", "COMMIT"), statements)
        self.assertEqual(statements.count("COMMIT"), 1)

    def test_a_refused_write_rolls_back(self):
        self.client.post("/v1/buckets", headers=self.h, json={"name": "one"})
        response, statements = self.traced("POST", "/v1/buckets", json={"name": "ONE"})
        self.assertEqual(response.status_code, 409)
        self.assertEqual((statements[0], statements[-1]), ("BEGIN IMMEDIATE", "ROLLBACK"), statements)
        self.assertNotIn("COMMIT", statements)

    def test_a_read_takes_no_lock_and_commits_nothing(self):
        response, statements = self.traced("GET", "/v1/buckets")
        self.assertEqual(response.status_code, 200)
        self.assertFalse([s for s in statements if s.startswith(("BEGIN", "COMMIT"))], statements)
