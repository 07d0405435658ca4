"""Idempotency-Key and If-Match under real concurrency: a live gunicorn (2 workers x 8 threads)."""

from tests.liveserver import LiveServerTestCase

TRIES = 3


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
