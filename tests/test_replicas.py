"""Read replicas (app/replicas.py) against a real PostgreSQL primary and two streaming replicas of it.

The module builds them on free ports (tests/pgreplica.py, about 3 s) and the app reads through
them over HTTP (the Flask test client), its write positions in the real Redis of the suite.
Replicas are made to fall behind by pausing their replay (pg_wal_replay_pause), not by waiting:
what a paused replica has not replayed, it cannot serve. Which server ran a statement is seen on
each engine (SQLAlchemy's before_cursor_execute). Nothing is mocked.

Without PostgreSQL (the SQLite pass) or PostgreSQL's server binaries these tests are skipped,
with the reason printed; the settings checks and the primary-as-replica case run anyway where
they can.
"""

import os
import sys
import time
import unittest
import urllib.parse
import uuid
from contextlib import contextmanager

import flask_migrate
import redis
from sqlalchemy import event, text

from app import create_app, replicas
from app.extensions import db
from config import ConfigError, build_config
from tests import pgreplica
from tests.helpers import (
    BASE_CONFIG,
    DATABASE_URL,
    IS_POSTGRES,
    PASSWORD,
    TcpProxy,
    bearer,
    empty_tables,
    free_port,
    shared_app,
)
from tests.jwks_server import JwksServer
from tests.redisserver import redis_url

MSG_REVOKED = "Token has been revoked. Please log in again."
_cluster = {}


def _redis_url():
    """The suite's Redis (tests/redisserver.py; without one, the test is skipped saying why)."""
    return _cluster.get("redis") or redis_url()


def setUpModule():
    reason = None if IS_POSTGRES else "replicas are PostgreSQL's: set TEST_DATABASE_URL"
    reason = reason or pgreplica.unavailable_reason()
    if reason is None:
        try:
            _cluster["redis"] = redis_url()
        except unittest.SkipTest as skipped:
            reason = str(skipped)
    if reason is None:
        try:
            cluster = pgreplica.ReplicatedPostgres(replicas=2).start()
            cluster.create_database("api")
            _cluster["servers"] = cluster
            with _app().app_context():
                flask_migrate.upgrade()
            cluster.wait_for_replay()
        except Exception as error:  # noqa: BLE001 - a machine that cannot build one skips, and says why
            reason = f"no replicated PostgreSQL could be built here: {error}"
    if reason:
        _cluster["skip"] = reason
        print(f"\ntests.test_replicas: replica tests skipped: {reason}", file=sys.stderr)


def tearDownModule():
    if "servers" in _cluster:
        _cluster.pop("servers").stop()


def _app(replicas=("replica1", "replica2"), prefix=None, **settings):
    """An app on the module's primary, reading from `replicas`, with a Redis key prefix (its own
    unless given) under which positions have been kept (a Redis found empty holds reads on the
    primary a while). Two apps of one prefix are two processes of one deployment."""
    cluster = _cluster["servers"]
    prefix = prefix or f"replicas-test-{uuid.uuid4().hex}"
    redis.Redis.from_url(_redis_url()).set(f"{prefix}:wal:kept", 1)
    return create_app(
        "testing",
        **{
            **BASE_CONFIG,
            "SQLALCHEMY_DATABASE_URI": cluster.url("primary", "api"),
            "DATABASE_REPLICA_URLS": [cluster.url(name, "api") for name in replicas],
            "DATABASE_REPLICA_MAX_LAG_MS": 60_000,
            "DATABASE_REPLICA_RETRY_SECONDS": 3600,
            "REDIS_URL": _redis_url(),
            "REDIS_KEY_PREFIX": prefix,
            **settings,
        },
    )


@contextmanager
def served(app):
    """Each statement run inside the block, with the server that ran it: [(server, sql)]."""
    seen, listeners = [], []
    with app.app_context():
        engines = dict(db.engines)
    for name, engine in engines.items():

        def record(_conn, _cursor, statement, *_args, server=name or "primary"):
            seen.append((server, statement))

        event.listen(engine, "before_cursor_execute", record)
        listeners.append((engine, record))
    try:
        yield seen
    finally:
        for engine, record in listeners:
            event.remove(engine, "before_cursor_execute", record)


def servers(seen, table):
    """The servers that read `table` (FROM or JOIN) in `seen`."""
    return {server for server, sql in seen if f"FROM {table}" in sql or f"JOIN {table}" in sql}


def answered_from(seen):
    """The server of the request's last statement: the one that answered it."""
    return [server for server, sql in seen if not sql.startswith("SELECT pg_")][-1]


def get(app, client, path, headers):
    """A GET, and the servers that read the users table for it (every authenticated request does)."""
    with served(app) as seen:
        answer = client.get(path, headers=headers)
    return answer, servers(seen, "users")


def dispose(app):
    with app.app_context():
        for engine in db.engines.values():
            engine.dispose()


class ReplicaTestCase(unittest.TestCase):
    """An app per test class (its own breakers and clock), on the module's servers; every replica
    replays again and the tables are emptied after each test."""

    replicas = ("replica1", "replica2")
    settings = {}

    @classmethod
    def setUpClass(cls):
        if "skip" in _cluster:
            raise unittest.SkipTest(_cluster["skip"])
        cls.cluster = _cluster["servers"]
        cls.app = _app(cls.replicas, **cls.settings)

    @classmethod
    def tearDownClass(cls):
        dispose(cls.app)
        store = redis.Redis.from_url(_redis_url())
        keys = list(store.scan_iter(f"{cls.app.config['REDIS_KEY_PREFIX']}:*"))
        if keys:
            store.delete(*keys)

    def setUp(self):
        self.client = self.app.test_client()

    def tearDown(self):
        for name in self.cluster.replicas:
            if not os.path.exists(os.path.join(self.cluster.work, name, "postmaster.pid")):
                self.cluster.start_server(name)  # a test stopped it
            self.cluster.resume_replay(name)
        with self.app.app_context():
            empty_tables()
            db.session.remove()
        self.cluster.wait_for_replay()

    # -- helpers ------------------------------------------------------------------------------

    def register(self):
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        answer = self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        self.assertEqual(answer.status_code, 201, answer.json)
        return answer.json["user"]["id"], bearer(answer.json["auth_token"]), email

    def settled_user(self):
        """A user whose registration every replica has replayed."""
        user = self.register()
        self.cluster.wait_for_replay()
        return user

    def pause(self, *names):
        for name in names or self.replicas:
            self.cluster.pause_replay(name)

    def resume(self):
        for name in self.replicas:
            self.cluster.resume_replay(name)
        self.cluster.wait_for_replay(self.replicas)

    def served(self):
        return served(self.app)

    servers = staticmethod(lambda seen, table: servers(seen, table))

    def get(self, path, headers):
        return get(self.app, self.client, path, headers)


class ReadYourWrites(ReplicaTestCase):
    def test_a_user_who_wrote_nothing_lately_reads_from_a_replica(self):
        _, headers, _ = self.settled_user()
        answer, servers = self.get("/v1/buckets", headers)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertLessEqual(servers, {"replica1", "replica2"})
        self.assertEqual(len(servers), 1)

    def test_reads_are_shared_between_replicas(self):
        _, headers, _ = self.settled_user()
        used = set()
        for _ in range(4):
            used |= self.get("/v1/buckets", headers)[1]
        self.assertEqual(used, {"replica1", "replica2"})

    def test_a_write_is_read_back_at_once_while_the_replicas_have_not_replayed_it(self):
        _, headers, _ = self.settled_user()
        _, other, _ = self.settled_user()
        self.pause()
        created = self.client.post("/v1/buckets", json={"name": "fresh"}, headers=headers)
        self.assertEqual(created.status_code, 201, created.json)
        answer, servers = self.get(f"/v1/buckets/{created.json['bucket']['id']}", headers)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(servers, {"primary"})
        listing, _ = self.get("/v1/buckets", headers)
        self.assertEqual([b["name"] for b in listing.json["buckets"]], ["fresh"])
        # Another user wrote nothing: a replica still serves them.
        self.assertLessEqual(self.get("/v1/buckets", other)[1], {"replica1", "replica2"})

    def test_once_a_replica_replayed_the_write_it_serves_the_writer_again(self):
        _, headers, _ = self.settled_user()
        self.pause()
        created = self.client.post("/v1/buckets", json={"name": "later"}, headers=headers)
        path = f"/v1/buckets/{created.json['bucket']['id']}"
        self.assertEqual(self.get(path, headers)[1], {"primary"})
        self.resume()
        answer, servers = self.get(path, headers)
        self.assertEqual(answer.status_code, 200)
        self.assertLessEqual(servers, {"replica1", "replica2"})

    def test_the_replica_chosen_is_one_that_replayed_the_write(self):
        _, headers, _ = self.settled_user()
        self.pause("replica1")
        created = self.client.post("/v1/buckets", json={"name": "checked"}, headers=headers)
        self.cluster.wait_for_replay(["replica2"])
        path = f"/v1/buckets/{created.json['bucket']['id']}"
        for _ in range(6):  # the turn starts at either replica
            with self.served() as seen:
                answer = self.client.get(path, headers=headers)
            self.assertEqual(answer.status_code, 200, answer.json)
            self.assertEqual(self.servers(seen, "buckets"), {"replica2"})

    def test_a_write_request_reads_on_the_primary_only(self):
        _, headers, _ = self.settled_user()
        with self.served() as seen:
            created = self.client.post("/v1/buckets", json={"name": "on the primary"}, headers=headers)
            bucket = created.json["bucket"]["id"]
            self.client.patch(f"/v1/buckets/{bucket}", json={"name": "renamed"}, headers=headers)
            self.client.post(f"/v1/buckets/{bucket}/items", json={"name": "an item"}, headers=headers)
        self.assertEqual({server for server, _ in seen}, {"primary"})

    def test_a_new_account_reads_itself_at_once(self):
        self.pause()
        _, headers, email = self.register()
        answer, servers = self.get("/v1/auth/me", headers)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(answer.json["user"]["email"], email)
        self.assertEqual(servers, {"primary"})


class RevocationsReachEveryReplicaPath(ReplicaTestCase):
    """Revocations are writes of the account they revoke for: its next reads see them at once."""

    def test_logout_then_the_old_token_is_401_at_once(self):
        _, headers, _ = self.settled_user()
        self.pause()
        self.assertEqual(self.client.post("/v1/auth/logout", headers=headers).status_code, 200)
        answer, servers = self.get("/v1/auth/me", headers)
        self.assertEqual(answer.status_code, 401)
        self.assertEqual(answer.json["message"], MSG_REVOKED)
        self.assertEqual(servers, {"primary"})

    def test_a_password_change_ends_the_old_tokens_at_once(self):
        _, headers, _ = self.settled_user()
        self.pause()
        body = {"current_password": PASSWORD, "new_password": "another good password"}
        self.assertEqual(self.client.put("/v1/auth/password", json=body, headers=headers).status_code, 200)
        self.assertEqual(self.get("/v1/auth/me", headers)[0].status_code, 401)

    def test_an_admins_role_change_and_deletion_reach_the_user_at_once(self):
        admin_id, admin, _ = self.settled_user()
        with self.app.app_context():
            db.session.execute(text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": admin_id})
            db.session.commit()
        user_id, headers, _ = self.settled_user()
        self.assertEqual(self.get("/v1/actors", headers)[0].status_code, 403)
        self.pause()
        changed = self.client.patch(f"/v1/users/{user_id}", json={"role": "casting_assistant"}, headers=admin)
        self.assertEqual(changed.status_code, 200, changed.json)
        self.assertEqual(self.get("/v1/actors", headers)[0].status_code, 200)
        self.assertEqual(self.client.delete(f"/v1/users/{user_id}", headers=admin).status_code, 200)
        self.assertEqual(self.get("/v1/auth/me", headers)[0].status_code, 401)


class Sessions(ReplicaTestCase):
    """A session is a row of its account: starting one is a write for it, ending one a revocation."""

    def login(self, email):
        answer = self.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        self.assertEqual(answer.status_code, 200, answer.json)
        return bearer(answer.json["auth_token"])

    def test_a_login_reads_its_new_session_at_once(self):
        _, _, email = self.settled_user()
        self.pause()
        answer, servers = self.get("/v1/auth/me", self.login(email))
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(servers, {"primary"})

    def test_an_ended_session_and_a_deleted_account_are_401_at_once(self):
        _, phone, email = self.settled_user()
        laptop = self.login(email)
        self.cluster.wait_for_replay()
        listed = self.client.get("/v1/auth/sessions", headers=laptop).json["sessions"]
        phone_session = next(session["id"] for session in listed if not session["current"])
        self.pause()
        self.assertEqual(self.client.delete(f"/v1/auth/sessions/{phone_session}", headers=laptop).status_code, 200)
        self.assertEqual(self.get("/v1/auth/me", phone)[0].status_code, 401)
        self.assertEqual(self.get("/v1/auth/me", laptop)[0].status_code, 200)
        gone = self.client.delete("/v1/auth/me", json={"password": PASSWORD}, headers=laptop)
        self.assertEqual(gone.status_code, 200, gone.json)
        self.assertEqual(self.get("/v1/auth/me", laptop)[0].status_code, 401)


class ExternalIdentity(ReplicaTestCase):
    """An external identity's first request creates its account: a write, even in a GET."""

    @classmethod
    def setUpClass(cls):
        cls.issuer = JwksServer()
        cls.settings = cls.issuer.settings()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.issuer.stop()

    def test_a_first_get_creates_the_account_on_the_primary_and_the_next_reads_find_it(self):
        token = bearer(self.issuer.token(self.issuer.add_key(), sub=f"auth0|{uuid.uuid4().hex}"))
        self.pause()
        first, _ = self.get("/v1/auth/me", token)
        self.assertEqual(first.status_code, 200, first.json)
        for _ in range(3):
            again, servers = self.get("/v1/auth/me", token)
            self.assertEqual(again.json["user"]["id"], first.json["user"]["id"])
            self.assertEqual(servers, {"primary"})  # no replica has the account yet
        with self.app.app_context():
            self.assertEqual(db.session.scalar(text("SELECT count(*) FROM users")), 1)


class LaggingReplica(ReplicaTestCase):
    replicas = ("replica1",)
    settings = {"DATABASE_REPLICA_MAX_LAG_MS": 100}

    def test_a_replica_lagging_past_the_maximum_is_skipped_without_an_error(self):
        _, headers, _ = self.settled_user()
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"replica1"})
        _, writer, _ = self.register()  # another user: the reader has no position to wait for
        self.pause()
        self.client.post("/v1/buckets", json={"name": "unreplayed"}, headers=writer)
        deadline = time.monotonic() + 10
        while True:  # its lag grows past 100 ms as time passes (measured every 25 ms)
            answer, servers = self.get("/v1/buckets", headers)
            self.assertEqual(answer.status_code, 200, answer.json)
            if servers == {"primary"} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(servers, {"primary"})
        time.sleep(0.2)  # now it is certainly 100 ms behind the write
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"primary"})
        # Caught up again, it stays skipped while its breaker is open (an hour here).
        self.resume()
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"primary"})


class ReplicaDown(ReplicaTestCase):
    replicas = ("replica1",)

    def test_a_stopped_replica_is_skipped_for_a_while_and_no_error_reaches_the_client(self):
        _, headers, _ = self.settled_user()
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"replica1"})  # a pooled connection to it now
        self.cluster.stop_server("replica1")
        with self.app.app_context():
            replica = db.engines["replica1"]
        attempts = []
        event.listen(replica.pool, "checkout", lambda *args: attempts.append(args))
        with self.served() as seen:
            answer = self.client.get("/v1/buckets", headers=headers)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(answered_from(seen), "primary")
        tried = len(attempts)
        self.assertGreaterEqual(tried, 1)
        for _ in range(3):
            answer, servers = self.get("/v1/buckets", headers)
            self.assertEqual((answer.status_code, servers), (200, {"primary"}))
        self.assertEqual(len(attempts), tried, "the breaker is open: the replica is not tried again")


class ReplicaBack(ReplicaTestCase):
    replicas = ("replica1",)
    settings = {"DATABASE_REPLICA_RETRY_SECONDS": 0}

    def test_a_replica_that_comes_back_serves_again(self):
        _, headers, _ = self.settled_user()
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"replica1"})
        self.cluster.stop_server("replica1")
        with self.served() as seen:
            answer = self.client.get("/v1/buckets", headers=headers)
        self.assertEqual((answer.status_code, answered_from(seen)), (200, "primary"))
        self.cluster.start_server("replica1")
        self.cluster.wait_for_replay()
        answer, servers = self.get("/v1/buckets", headers)
        self.assertEqual((answer.status_code, servers), (200, {"replica1"}))


class SilentReplica(ReplicaTestCase):
    """A replica whose host stops answering (a frozen proxy in front of it) is skipped, and the read
    runs on the primary: found silent, the replica must not make the primary's requests give up."""

    replicas = ("replica1",)

    @classmethod
    def setUpClass(cls):
        if "skip" in _cluster:
            raise unittest.SkipTest(_cluster["skip"])
        replica = _cluster["servers"].url("replica1", "api")
        cls.proxy = TcpProxy.to_database(replica)
        cls.proxy.start()
        cls.settings = {
            "DATABASE_REPLICA_URLS": [cls.proxy.url(replica)],
            "DB_CONNECT_TIMEOUT_SECONDS": 1,
            "DB_STATEMENT_TIMEOUT_MS": 500,
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.proxy.thaw()
        cls.proxy.stop()

    def test_a_silent_replica_is_skipped_and_the_primary_answers(self):
        _, headers, _ = self.settled_user()
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"replica1"})
        self.proxy.freeze()
        with self.app.app_context():
            db.engine.dispose()  # the primary's next connection is a new one: it asks whether its server was silent
        with self.served() as seen:
            answer = self.client.get("/v1/buckets", headers=headers)
        self.assertEqual(answer.status_code, 200, answer.json)
        self.assertEqual(answered_from(seen), "primary")
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"primary"})  # skipped now


class RedisTrouble(ReplicaTestCase):
    replicas = ("replica1",)

    def test_without_an_answer_from_redis_reads_go_to_the_primary_and_writes_still_work(self):
        app = _app(self.replicas, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
        client = app.test_client()
        user = client.post("/v1/auth/register", json={"email": "r@example.com", "password": PASSWORD})
        self.assertEqual(user.status_code, 201, user.json)
        headers = bearer(user.json["auth_token"])
        self.cluster.wait_for_replay()
        try:
            listing, read_on = get(app, client, "/v1/buckets", headers)
            self.assertEqual((listing.status_code, read_on), (200, {"primary"}))
            self.assertEqual(client.post("/v1/buckets", json={"name": "b"}, headers=headers).status_code, 201)
        finally:
            dispose(app)


def cut_listeners(prefix):
    """Close the subscriptions of the processes of `prefix`, as a Redis restart or a cut would."""
    store = redis.Redis.from_url(_redis_url())
    for client in store.client_list():
        if client["name"] == f"{prefix}:wal:listener":
            store.client_kill_filter(_id=client["id"])


class RedisLost(ReplicaTestCase):
    replicas = ("replica1",)
    settings = {"DATABASE_REPLICA_MAX_LAG_MS": 100}  # a position lives 1.125 s

    def test_when_redis_lost_the_positions_reads_go_to_the_primary_for_their_lifetime(self):
        _, headers, _ = self.settled_user()
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"replica1"})
        prefix = self.app.config["REDIS_KEY_PREFIX"]
        lifetime = self.app.extensions["replicas"].positions.lifetime
        store = redis.Redis.from_url(_redis_url())
        store.delete(*store.scan_iter(f"{prefix}:*"))  # as a restart would: the positions gone...
        cut_listeners(prefix)  # ... and the connections
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"primary"})  # Redis failed this process
        time.sleep(lifetime)
        # Subscribed again, it finds the positions lost: every process subscribing now reads on the
        # primary for a position's lifetime.
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"primary"})
        self.assertIsNotNone(store.get(f"{prefix}:wal:settling"))
        time.sleep(lifetime)
        self.assertEqual(self.get("/v1/buckets", headers)[1], {"replica1"})


class OtherProcesses(ReplicaTestCase):
    """Positions reach every process of the deployment: each one here is an app of the same Redis
    prefix, with its own mirror, subscription and breakers."""

    def another_process(self, **settings):
        other = _app(self.replicas, prefix=self.app.config["REDIS_KEY_PREFIX"], **settings)
        self.addCleanup(dispose, other)
        return other, other.test_client()

    def test_a_write_served_by_one_process_is_read_back_at_once_by_another(self):
        _, headers, _ = self.settled_user()
        other, reader = self.another_process()
        self.assertLessEqual(get(other, reader, "/v1/buckets", headers)[1], {"replica1", "replica2"})
        self.pause()
        created = self.client.post("/v1/buckets", json={"name": "elsewhere"}, headers=headers)
        self.assertEqual(created.status_code, 201, created.json)
        answer, servers = get(other, reader, f"/v1/buckets/{created.json['bucket']['id']}", headers)
        self.assertEqual((answer.status_code, servers), (200, {"primary"}))

    def test_a_process_that_starts_later_loads_the_positions_still_alive(self):
        _, headers, _ = self.settled_user()
        self.pause()
        created = self.client.post("/v1/buckets", json={"name": "before"}, headers=headers)
        other, reader = self.another_process()
        answer, servers = get(other, reader, f"/v1/buckets/{created.json['bucket']['id']}", headers)
        self.assertEqual((answer.status_code, servers), (200, {"primary"}))

    def test_a_process_whose_subscription_went_silent_stops_trusting_it(self):
        _, headers, _ = self.settled_user()
        host, port = urllib.parse.urlsplit(_redis_url())[1].split(":")
        proxy = TcpProxy(host, int(port))
        proxy.start()
        self.addCleanup(proxy.stop)
        self.addCleanup(proxy.thaw)
        database = urllib.parse.urlsplit(_redis_url()).path
        other, reader = self.another_process(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{database}")
        for _ in range(2):  # subscribed, loaded and pinged
            self.assertLessEqual(get(other, reader, "/v1/buckets", headers)[1], {"replica1", "replica2"})
            time.sleep(replicas.PING_SECONDS)
        proxy.freeze()  # what Redis sends it is held: the write's position never arrives
        self.pause()
        created = self.client.post("/v1/buckets", json={"name": "unheard"}, headers=headers)
        time.sleep(replicas.FENCE_SECONDS)
        answer, servers = get(other, reader, f"/v1/buckets/{created.json['bucket']['id']}", headers)
        self.assertEqual((answer.status_code, servers), (200, {"primary"}))


class Settings(unittest.TestCase):
    """What start-up refuses; these need no server."""

    replica = "postgresql://postgres@127.0.0.1:5433/api"

    def test_replicas_without_redis_are_refused_at_start_with_a_clear_message(self):
        with self.assertRaises(ConfigError) as refused:
            build_config(
                "testing",
                SQLALCHEMY_DATABASE_URI="postgresql://postgres@127.0.0.1:5432/api",
                DATABASE_REPLICA_URLS=self.replica,
                REDIS_URL=None,
            )
        self.assertIn("DATABASE_REPLICA_URLS needs REDIS_URL", str(refused.exception))

    def test_replicas_of_sqlite_are_refused(self):
        with self.assertRaises(ConfigError):
            build_config("testing", SQLALCHEMY_DATABASE_URI="sqlite://", DATABASE_REPLICA_URLS=self.replica)

    def test_each_replica_is_an_engine_with_the_primarys_options(self):
        config = build_config(
            "testing",
            SQLALCHEMY_DATABASE_URI="postgres://postgres@127.0.0.1:5432/api",
            DATABASE_REPLICA_URLS=f" {self.replica} , postgres://h2/api,",
            REDIS_URL="redis://127.0.0.1:6379/0",
            DB_POOL_SIZE=3,
        )
        binds = config["SQLALCHEMY_BINDS"]
        self.assertEqual(set(binds), {"replica1", "replica2"})
        self.assertEqual(binds["replica2"]["url"], "postgresql+psycopg2://h2/api")
        self.assertEqual(binds["replica1"]["pool_size"], 3)

    def test_without_replicas_nothing_changes(self):
        app = create_app("testing", **BASE_CONFIG)
        self.assertNotIn("replicas", app.extensions)
        self.assertNotIn("SQLALCHEMY_BINDS", build_config("testing"))


@unittest.skipUnless(IS_POSTGRES, "needs TEST_DATABASE_URL (PostgreSQL)")
class PrimaryNamedAsReplica(unittest.TestCase):
    """The suite's own server, named as a replica of itself: not in recovery, so never read from."""

    def test_a_server_that_is_not_in_recovery_is_skipped(self):
        shared_app()  # the suite's database, migrated
        prefix = f"replicas-test-{uuid.uuid4().hex}"
        redis.Redis.from_url(_redis_url()).set(f"{prefix}:wal:kept", 1, ex=60)
        app = create_app(
            "testing",
            **{**BASE_CONFIG, "DATABASE_REPLICA_URLS": DATABASE_URL, "REDIS_URL": _redis_url()},
            REDIS_KEY_PREFIX=prefix,
        )
        client = app.test_client()
        user = client.post("/v1/auth/register", json={"email": "self@example.com", "password": PASSWORD})
        headers = bearer(user.json["auth_token"])
        with self.assertLogs("app.replicas", "WARNING") as logged:
            self.assertEqual(client.get("/v1/buckets", headers=headers).status_code, 200)
        self.assertIn("is not a streaming replica", logged.output[0])
        with app.app_context():
            empty_tables()
        dispose(app)
