"""The database going away or going silent, in process (the app's test client, PostgreSQL behind a
TCP proxy that can be cut or frozen): every request answers a 503 envelope meanwhile, and the app
recovers by itself. The same under load, against a live gunicorn: test_database_faults.py."""

import unittest
import uuid

from sqlalchemy import text

from app.extensions import db
from app.models import User
from tests.helpers import DATABASE_URL, IS_POSTGRES, PASSWORD, TcpProxy, bearer, make_app
from tests.test_database import DatabaseTestCase


@unittest.skipUnless(IS_POSTGRES, "needs a database server that can become unreachable")
class DatabaseOutageTests(unittest.TestCase):
    def test_503_while_unreachable_then_recovers_without_restart(self):
        proxy = TcpProxy.to_database(DATABASE_URL)
        proxy.start()
        app = make_app(SQLALCHEMY_DATABASE_URI=proxy.url(DATABASE_URL))
        client = app.test_client()
        try:
            self.assertEqual(client.get("/v1/health").status_code, 200)
            token = client.post(
                "/v1/auth/register", json={"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}
            ).json["auth_token"]
            proxy.stop()
            for response in (client.get("/v1/health"), client.get("/v1/buckets", headers=bearer(token))):
                self.assertEqual(response.status_code, 503)
                self.assertEqual(response.headers["Retry-After"], "1")
                self.assertEqual(response.json["error"], 503)
                self.assertIs(response.json["success"], False)
            proxy.start()
            self.assertEqual(client.get("/v1/health").json, {"success": True, "status": "ok", "database": "ok"})
            self.assertEqual(client.get("/v1/buckets", headers=bearer(token)).status_code, 200)
        finally:
            proxy.start()
            with app.app_context():
                db.session.execute(db.delete(User))
                db.session.commit()
                db.engine.dispose()
            proxy.stop()


class OutageTests(DatabaseTestCase):
    def _new_connections_only(self):
        with self.app.app_context():
            db.engine.dispose()

    def test_starting_up_is_a_503_even_when_the_next_connection_works(self):
        # The classifier used to ask the database again, got an answer, and called this a bug.
        for method, path, body in (("GET", "/v1/buckets", None), ("POST", "/v1/buckets", {"name": "x"})):
            with self.subTest(method=method):
                self._new_connections_only()
                self.proxy.starting_up(1)
                response = self.client.open(path, method=method, json=body, headers=self.auth)
                self.assertEqual(response.status_code, 503, response.json)
                self.assertEqual(response.json["error"], 503)
        self.assertEqual(self.client.get("/v1/buckets", headers=self.auth).status_code, 200)

    def test_a_read_on_a_connection_that_died_is_run_again(self):
        self.proxy.stop()  # every pooled connection dies
        self.proxy.start()
        self.assertEqual(self.client.get("/v1/buckets", headers=self.auth).status_code, 200)

    def test_a_write_whose_connection_died_before_any_answer_runs_again(self):
        self.proxy.stop()
        self.proxy.start()
        response = self.client.post("/v1/buckets", json={"name": "two"}, headers=self.auth)
        self.assertEqual(response.status_code, 201)
        self.assertEqual(self.client.get("/v1/buckets", headers=self.auth).json["pagination"]["total"], 2)

    def test_a_write_cut_after_the_database_answered_is_a_503_and_not_run_again(self):
        app = make_app(SQLALCHEMY_DATABASE_URI=self.proxy.url(DATABASE_URL))
        runs = []

        @app.post("/test-only/cut-between-statements")
        def cut_between_statements():  # test app only
            runs.append(1)
            db.session.execute(text("SELECT count(*) FROM users"))
            self.proxy.stop()
            self.proxy.start()
            db.session.execute(text("SELECT count(*) FROM users"))
            return {"success": True}

        try:
            response = app.test_client().post("/test-only/cut-between-statements")
            self.assertEqual(response.status_code, 503)
            self.assertEqual(len(runs), 1)
        finally:
            with app.app_context():
                db.engine.dispose()

    def test_a_connection_lost_inside_a_transaction_never_escapes_the_request(self):
        app = make_app(SQLALCHEMY_DATABASE_URI=self.proxy.url(DATABASE_URL))

        @app.post("/test-only/cut-mid-transaction")
        def cut_mid_transaction():  # test app only: a transaction left open on a connection that dies
            db.session.execute(text("SELECT count(*) FROM users"))
            self.proxy.stop()
            self.proxy.start()
            return {"success": True}

        try:
            response = app.test_client().post("/test-only/cut-mid-transaction")
            self.assertEqual(response.status_code, 503)  # the request's commit found the connection gone
            self.assertEqual(response.json["error"], 503)
            self.assertEqual(app.test_client().get("/v1/health").status_code, 200)
        finally:
            with app.app_context():
                db.engine.dispose()


class SilentDatabaseTests(DatabaseTestCase):
    """The database's host stops answering without closing anything (a frozen proxy: the kernel
    still acknowledges, so TCP never reports an error): bounded waits make it a 503."""

    overrides = {"DB_ANSWER_TIMEOUT_MS": 300, "DB_CONNECT_TIMEOUT_SECONDS": 1}

    def test_each_connection_has_tcp_keepalives_and_a_user_timeout(self):
        with self.app.app_context():
            parameters = db.session.connection().connection.dbapi_connection.get_dsn_parameters()
        expected = {"keepalives": "1", "keepalives_idle": "5", "tcp_user_timeout": "5000"}
        self.assertEqual({name: parameters.get(name) for name in expected}, expected)

    def test_a_silent_database_is_a_503_and_the_app_recovers_when_it_answers_again(self):
        self.proxy.freeze()
        try:
            for path in ("/v1/buckets", "/v1/health"):  # a pooled connection, then new ones
                response = self.client.get(path, headers=self.auth)
                self.assertEqual((response.status_code, response.json["error"]), (503, 503), path)
                self.assertIn("Retry-After", response.headers)
            created = self.client.post("/v1/buckets", json={"name": "frozen"}, headers=self.auth)
            self.assertEqual(created.status_code, 503)
        finally:
            self.proxy.thaw()
        self.assertEqual(self.client.get("/v1/buckets", headers=self.auth).status_code, 200)
        self.assertEqual(self.client.get("/v1/health").status_code, 200)
