"""Idempotency-Key and If-Match under real concurrency: a live gunicorn (gunicorn.conf.py, 2 workers)."""

from tests.liveserver import LiveServerTestCase, stop_shared_server

TRIES = 3
# Each round of the mutual demotion deadlocks only now and then: enough rounds to meet one.
DEMOTION_ROUNDS = 25


def tearDownModule():
    stop_shared_server()


class RetryRaces(LiveServerTestCase):
    def test_twenty_requests_with_one_new_key_create_once(self):
        _, headers = self.server.account()
        for attempt in range(TRIES):
            key = f"race-{attempt}"
            answers = self.server.fire(
                20, "POST", "/v1/buckets", json={"name": key}, headers={**headers, "Idempotency-Key": key}
            )
            self.assertStatuses(answers, {201, 409})
            created = [a for a in answers if a.status == 201 and "idempotent-replayed" not in a.headers]
            self.assertEqual(len(created), 1, [(a.status, a.headers.get("idempotent-replayed")) for a in answers])
            for answer in answers:
                if answer.status == 201:
                    self.assertEqual(answer.raw, created[0].raw)
                else:
                    self.assertEqual(answer.message, "A request with this Idempotency-Key is in progress")
            self.assertEqual(self.server.scalar("SELECT count(*) FROM buckets WHERE name = :n", n=key), 1)
            self.assertEqual(self.server.scalar("SELECT count(*) FROM idempotency_keys WHERE key = :k", k=key), 1)
            replay = self.server.request(
                "POST", "/v1/buckets", json={"name": key}, headers={**headers, "Idempotency-Key": key}
            )
            self.assertEqual((replay.status, replay.raw), (201, created[0].raw))

    def test_patches_with_one_if_match_one_wins(self):
        _, headers = self.server.account()
        bucket = self.server.request("POST", "/v1/buckets", json={"name": "shared"}, headers=headers)
        url = bucket.headers["location"]
        for attempt in range(TRIES):
            etag = self.server.request("GET", url, headers=headers).headers["etag"]
            answers = self.server.at_once(
                [
                    ("PATCH", url, {"json": {"name": f"w{attempt}-{n}"}, "headers": {**headers, "If-Match": etag}})
                    for n in range(10)
                ]
            )
            self.assertStatuses(answers, {200, 412})
            winners = [a for a in answers if a.status == 200]
            self.assertEqual(len(winners), 1, [a.status for a in answers])
            current = self.server.request("GET", url, headers=headers)
            self.assertEqual(current.json["bucket"]["name"], winners[0].json["bucket"]["name"])
            self.assertEqual(current.headers["etag"], winners[0].headers["etag"])

    def test_admins_demote_each_other_with_if_match(self):
        """The If-Match claim locks the target row before the last-admin rule locks every admin,
        so PostgreSQL may find a deadlock: the victim is 409 (retry), never 500."""
        for _ in range(DEMOTION_ROUNDS):
            self.server.execute("UPDATE users SET role = 'user' WHERE role = 'admin'")
            (a, a_headers), (b, b_headers) = self.server.account("admin"), self.server.account("admin")
            a_etag = self.server.request("GET", f"/v1/users/{a}", headers=b_headers).headers["etag"]
            b_etag = self.server.request("GET", f"/v1/users/{b}", headers=a_headers).headers["etag"]
            answers = self.server.at_once(
                [
                    (
                        "PATCH",
                        f"/v1/users/{b}",
                        {"json": {"role": "user"}, "headers": {**a_headers, "If-Match": b_etag}},
                    ),
                    (
                        "PATCH",
                        f"/v1/users/{a}",
                        {"json": {"role": "user"}, "headers": {**b_headers, "If-Match": a_etag}},
                    ),
                ]
            )
            self.assertStatuses(answers, {200, 403, 409})
            self.assertGreaterEqual(self.server.scalar("SELECT count(*) FROM users WHERE role = 'admin'"), 1)
