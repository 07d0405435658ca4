"""Real services: Redis rate limits, concurrent registrations, and configuration safety.
(The database going away: tests/faults/.)"""

import os
import subprocess
import sys
import unittest
import uuid
from unittest import mock

import redis

from app import create_app
from app.extensions import db
from app.models import User
from config import ConfigError, build_config, normalize_database_url
from tests.helpers import (
    CONCURRENT,
    PASSWORD,
    RATELIMIT_TEST_PREFIX,
    APITestCase,
    free_port,
)
from tests.liveserver import ROOT, LiveServerTestCase
from tests.redisserver import redis_url
from tests.test_headers import check_rate_limit_headers
from tests.test_token import check_spraying


class RedisRateLimitTests(APITestCase):
    prefix = RATELIMIT_TEST_PREFIX

    @classmethod
    def setUpClass(cls):
        cls.redis_url = redis_url()  # REDIS_TEST_URL, or a redis-server of the tests' own
        cls.app_overrides = {
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": cls.redis_url,
            "RATELIMIT_KEY_PREFIX": cls.prefix,
            "RATELIMIT_LOGIN": "3 per minute",
            "RATELIMIT_REGISTER": "2 per minute",
        }

    def tearDown(self):
        store = redis.Redis.from_url(self.redis_url)
        for key in store.scan_iter(f"*{self.prefix}*"):
            store.delete(key)
        super().tearDown()

    def test_login_is_limited_per_account_in_redis(self):
        self.register("limited@example.com")
        attempt = {"email": "limited@example.com", "password": "wrong password"}
        statuses = [self.client.post("/v1/auth/login", json=attempt).status_code for _ in range(3)]
        self.assertEqual(statuses, [401, 401, 401])
        response = self.client.post("/v1/auth/login", json=attempt)
        self.assertError(response, 429)
        self.assertGreater(int(response.headers["Retry-After"]), 0)
        keys = list(redis.Redis.from_url(self.redis_url).scan_iter(f"*{self.prefix}*"))
        self.assertTrue(keys, "the limiter should keep its counters in Redis")
        other = self.client.post("/v1/auth/login", json={"email": "someone-else@example.com", "password": "x"})
        self.assertEqual(other.status_code, 401)

    def test_failed_logins_are_limited_per_address_across_accounts_in_redis(self):
        with mock.patch.dict(self.app.config, {"RATELIMIT_LOGIN_ADDRESS": "3 per hour"}):
            check_spraying(self)
        self.assertTrue(list(redis.Redis.from_url(self.redis_url).scan_iter(f"*{self.prefix}*login-address*")))

    def test_successful_logins_do_not_count(self):
        self.register("busy@example.com")
        for _ in range(6):
            self.assertEqual(
                self.client.post(
                    "/v1/auth/login", json={"email": "busy@example.com", "password": PASSWORD}
                ).status_code,
                200,
            )

    def test_rate_limit_headers_counted_in_redis(self):
        check_rate_limit_headers(self, login_limit=3, register_limit=2)

    def test_register_is_limited_per_address(self):
        self.register()
        self.register()
        response = self.client.post("/v1/auth/register", json={"email": "third@example.com", "password": PASSWORD})
        self.assertError(response, 429)
        self.assertIn("Retry-After", response.headers)


class RateLimitAcrossWorkersTests(LiveServerTestCase):
    """Two gunicorn workers with REDIS_URL set and RATELIMIT_STORAGE_URI not: one count for both
    (with each worker's own memory, a client got up to twice the limit before a 429)."""

    @classmethod
    def setUpClass(cls):
        cls.prefix = f"{RATELIMIT_TEST_PREFIX}-workers-{uuid.uuid4().hex[:8]}"
        cls.server_env = {
            "RATELIMIT_STORAGE_URI": "",
            "REDIS_URL": redis_url(),
            "RATELIMIT_KEY_PREFIX": cls.prefix,
            "RATELIMIT_LOGIN": "4 per minute",
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        store = redis.Redis.from_url(cls.server_env["REDIS_URL"])
        for key in store.scan_iter(f"*{cls.prefix}*"):
            store.delete(key)

    def test_failed_logins_are_counted_once_for_every_worker(self):
        self.server.account(email="workers@example.com")
        attempt = {"email": "workers@example.com", "password": "wrong password"}
        # New connections, spread over both workers by the kernel.
        statuses = [self.server.request("POST", "/v1/auth/login", json=attempt).status for _ in range(6)]
        self.assertEqual(statuses, [401] * 4 + [429] * 2)


class ConcurrentRegistrationTests(APITestCase):
    app_overrides = CONCURRENT

    def test_twenty_parallel_registrations_of_one_email(self):
        body = {"email": "race@example.com", "password": PASSWORD}
        responses = self.concurrently(20, lambda client, _index: client.post("/v1/auth/register", json=body))
        self.assertEqual(sorted(response.status_code for response in responses), [201] + [409] * 19)
        self.assertEqual(db.session.query(User).filter_by(email="race@example.com").count(), 1)


class ConfigTests(unittest.TestCase):
    def test_database_url_forms(self):
        for url in ("postgres://u:p@h:5432/d", "postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"):
            self.assertEqual(normalize_database_url(url), "postgresql+psycopg2://u:p@h:5432/d")
        self.assertEqual(normalize_database_url("sqlite:///x.db"), "sqlite:///x.db")

    def test_rate_limits_count_in_redis_url_unless_told_otherwise(self):
        for given, shared, store in (
            (None, None, "memory://"),
            (None, "redis://cache:6379/0", "redis://cache:6379/0"),
            ("memory://", "redis://cache:6379/0", "memory://"),
            ("redis://limits:6379/1", "redis://cache:6379/0", "redis://limits:6379/1"),
        ):
            with self.subTest(given=given, redis=shared):
                config = build_config("testing", RATELIMIT_STORAGE_URI=given, REDIS_URL=shared)
                self.assertEqual(config["RATELIMIT_STORAGE_URI"], store)

    def test_production_refuses_weak_secrets(self):
        for secret in (
            None,
            "",
            "secret",
            "short-but-not-default",
            "dev-only-secret-key-change-me-in-production-please",
        ):
            with self.subTest(secret=secret):
                with self.assertRaises(ConfigError):
                    build_config("production", SECRET_KEY=secret)

    def test_production_refuses_to_start_without_secret_from_env(self):
        with mock.patch.dict(os.environ):
            os.environ.pop("SECRET_KEY", None)
            with self.assertRaises(ConfigError) as caught:
                create_app("production")
        self.assertIn("SECRET_KEY", str(caught.exception))

    def test_production_accepts_a_long_random_secret(self):
        config = build_config("production", SECRET_KEY="x" * 16 + uuid.uuid4().hex)
        self.assertEqual(config["BCRYPT_ROUNDS"], 12)
        self.assertEqual(config["CORS_ORIGINS"], "")

    def test_bad_settings_are_reported(self):
        with self.assertRaises(ConfigError):
            build_config("staging")
        with mock.patch.dict(os.environ, {"ACCESS_TOKEN_MINUTES": "soon"}), self.assertRaises(ConfigError) as caught:
            build_config("development")
        self.assertIn("ACCESS_TOKEN_MINUTES", str(caught.exception))


class GunicornMasterTests(unittest.TestCase):
    def master_log(self, **env):
        """What gunicorn (gunicorn.conf.py, 2 workers, a hello-world app) logs until its first worker boots."""
        env = {k: v for k, v in os.environ.items() if k not in ("RATELIMIT_STORAGE_URI", "REDIS_URL")} | env
        command = [
            os.path.join(os.path.dirname(sys.executable), "gunicorn"),
            "-c",
            "gunicorn.conf.py",
            "--workers",
            "2",
        ]
        command += ["--bind", f"127.0.0.1:{free_port()}", "bench.hello:app"]
        server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        lines = []
        try:
            for line in server.stderr:
                lines.append(line)
                if "Booting worker" in line:
                    break
        finally:
            server.terminate()
            server.wait(10)
        return "".join(lines)

    def test_the_master_warns_when_each_worker_counts_rate_limits_alone(self):
        warning = "Rate limits are counted in each of the 2 workers' memory"
        self.assertIn(warning, self.master_log())
        self.assertNotIn(warning, self.master_log(REDIS_URL="redis://127.0.0.1:6379/0"))
        self.assertNotIn(warning, self.master_log(RATELIMIT_ENABLED="false"))

    def test_the_master_loads_its_settings_and_worker_class_without_the_app(self):
        """gunicorn's master must not import the app: its workers fork from it, and a HUP would
        hand them the app's old code."""
        script = (
            "import sys; from gunicorn.app.base import Application\n"
            "class Master(Application):\n"
            "    def init(self, *args): return {}\n"
            "    def load(self): raise AssertionError('the master loaded the app')\n"
            "master = Master('%(prog)s'); master.load_config_from_file('gunicorn.conf.py')\n"
            "master.cfg.worker_class, master.cfg.logger_class\n"
            "print(sorted(name for name in sys.modules if name == 'app' or name.startswith('app.')))"
        )
        ran = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
        self.assertEqual(ran.stdout.strip(), "[]", ran.stderr)
