"""An account deleting itself while it creates buckets and items, against a live gunicorn on PostgreSQL:
every answer a clean 2xx or 4xx, and no row left without its owner."""

from tests.liveserver import PASSWORD, LiveServerTestCase, stop_shared_server

ROUNDS = 5


def tearDownModule():
    stop_shared_server()


class LeavingRaces(LiveServerTestCase):
    def assertNoOrphans(self):
        orphans = {
            "buckets": "SELECT count(*) FROM buckets b LEFT JOIN users u ON u.id = b.owner_id WHERE u.id IS NULL",
            "items": "SELECT count(*) FROM items i LEFT JOIN buckets b ON b.id = i.bucket_id WHERE b.id IS NULL",
            "sessions": "SELECT count(*) FROM sessions s LEFT JOIN users u ON u.id = s.user_id WHERE u.id IS NULL",
            "keys": "SELECT count(*) FROM idempotency_keys k LEFT JOIN users u ON u.id = k.user_id WHERE u.id IS NULL",
        }
        self.assertEqual({name: self.server.scalar(sql) for name, sql in orphans.items()}, dict.fromkeys(orphans, 0))

    def test_leaving_while_buckets_and_items_are_created(self):
        for n in range(ROUNDS):
            user_id, headers = self.server.account()
            bucket = self.server.request("POST", "/v1/buckets", json={"name": "first"}, headers=headers).json["bucket"]
            leave = ("DELETE", "/v1/auth/me", {"json": {"password": PASSWORD}, "headers": headers})
            buckets = [("POST", "/v1/buckets", {"json": {"name": f"b{n}-{k}"}, "headers": headers}) for k in range(6)]
            items = [("POST", f"/v1/buckets/{bucket['id']}/items", {"json": {"name": "i"}, "headers": headers})] * 3
            answers = self.server.at_once([*buckets[:3], leave, *items, *buckets[3:]])
            self.assertStatuses(answers, {200, 201, 401, 404})
            self.assertEqual(answers[3].json, {"success": True, "deleted": user_id})
            for answer in answers:
                if answer.status == 401:
                    self.assertEqual(answer.message, "Invalid token. Please log in again.")
            self.assertEqual(self.server.scalar("SELECT count(*) FROM buckets WHERE owner_id = :u", u=user_id), 0)
            self.assertNoOrphans()

    def test_leaving_while_buckets_are_created_with_idempotency_keys(self):
        for n in range(ROUNDS):
            user_id, headers = self.server.account()
            leave = ("DELETE", "/v1/auth/me", {"json": {"password": PASSWORD}, "headers": headers})
            keyed = [
                ("POST", "/v1/buckets", {"json": {"name": f"{n}-{k}"}, "headers": {**headers, "Idempotency-Key": key}})
                for k, key in enumerate("abcdef")
            ]
            answers = self.server.at_once([*keyed[:3], leave, *keyed[3:]])
            self.assertNo5xx(answers)
            self.assertEqual(answers[3].status, 200)
            self.assertNoOrphans()

    def test_two_devices_leave_at_once(self):
        for _ in range(ROUNDS):
            user_id, headers = self.server.account()
            leave = ("DELETE", "/v1/auth/me", {"json": {"password": PASSWORD}, "headers": headers})
            answers = self.server.at_once([leave, leave, leave])
            self.assertStatuses(answers, {200, 401})
            self.assertEqual([answer.status for answer in answers].count(200), 1)
            self.assertIsNone(self.server.scalar("SELECT id FROM users WHERE id = :u", u=user_id))
