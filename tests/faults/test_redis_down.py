"""Redis (the rate-limit store) stopped under load: login and register never answer 5xx.

By default the limiter falls back to counting in memory (per process) and logs it;
with RATELIMIT_FAIL_CLOSED=true rate-limited endpoints answer 503 until Redis is back.
"""

import time
import unittest
import uuid
from collections import Counter

from tests.liveserver import PASSWORD, LiveServerTestCase
from tests.redisserver import REDIS_SERVER, RedisServer


@unittest.skipUnless(REDIS_SERVER, "needs redis-server on PATH")
class RedisDownCase(LiveServerTestCase):
    fail_closed = False

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()
        cls.redis.start()
        cls.server_env = {
            "RATELIMIT_STORAGE_URI": cls.redis.url,
            "RATELIMIT_LOGIN": "5 per minute",
            "RATELIMIT_FAIL_CLOSED": str(cls.fail_closed).lower(),
        }
        try:
            super().setUpClass()
        except Exception:
            cls.redis.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.redis.stop()

    def load(self, email):
        """16 logins and registrations at once: good and bad passwords, new accounts."""
        good = {"email": email, "password": PASSWORD}
        bad = {"email": email, "password": "wrong password"}
        requests = [("POST", "/v1/auth/login", {"json": good})] * 6 + [("POST", "/v1/auth/login", {"json": bad})] * 4
        requests += [
            ("POST", "/v1/auth/register", {"json": {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}})
            for _ in range(6)
        ]
        return self.server.at_once(requests)

    def run_outage(self, tag):
        """Load before, during and after a Redis outage: every answer, counted."""
        email = f"{tag}@example.com"
        self.server.request("POST", "/v1/auth/register", json={"email": email, "password": PASSWORD})
        before = self.load(email)
        self.redis.stop()
        during = self.load(email)
        self.redis.start()
        after = self.load(email)
        for phase, answers in (("before", before), ("during", during), ("after", after)):
            print(f"\n  redis {tag} {phase}: {sorted(Counter(a.status for a in answers).items())}", end="")
        return before, during, after


class RedisDownFailsOpen(RedisDownCase):
    def test_login_and_register_degrade_to_in_memory_counting(self):
        before, during, after = self.run_outage("open")
        for answers in (before, during, after):
            self.assertStatuses(answers, {200, 201, 401, 409, 429})
        self.assertIn(200, [a.status for a in during])
        self.assertIn(201, [a.status for a in during])
        self.assertIn("falling back to in-memory storage", self.server.log())
        # Still counted while Redis is away: 12 failures cannot all pass 2 workers × 5 per minute.
        self.redis.stop()
        try:
            wrong = {"email": "counted@example.com", "password": "wrong password"}
            started = time.time()
            answers = [self.server.request("POST", "/v1/auth/login", json=wrong) for _ in range(12)]
        finally:
            self.redis.start()
        statuses = [a.status for a in answers]
        self.assertIn(429, statuses)
        self.assertEqual(set(statuses), {401, 429})
        # The in-memory count still answers the rate-limit headers; Retry-After on the 429s only.
        for answer in answers:
            self.assertEqual(answer.headers["x-ratelimit-limit"], "5")
            self.assertIn(int(answer.headers["x-ratelimit-remaining"]), range(5))
            self.assertTrue(started < int(answer.headers["x-ratelimit-reset"]) <= started + 62)
            self.assertEqual("retry-after" in answer.headers, answer.status == 429)


class RedisDownFailsClosed(RedisDownCase):
    fail_closed = True

    def test_rate_limited_endpoints_answer_503_until_redis_is_back(self):
        before, during, after = self.run_outage("closed")
        self.assertEqual({a.status for a in during}, {503})
        for answer in during:
            self.assertEqual(answer.message, "Service unavailable: the rate-limit store cannot be reached")
            self.assertEqual(answer.headers.get("retry-after"), "1")
        self.assertNotIn("Traceback", self.server.log())
        for answers in (before, after):
            self.assertStatuses(answers, {200, 201, 401, 409, 429})
        _, headers = self.server.account()
        self.redis.stop()
        try:
            self.assertEqual(self.server.request("GET", "/v1/auth/me", headers=headers).status, 200)
        finally:
            self.redis.start()
