"""Idempotency-Key on creating POSTs: replays, misuse, scope, concurrency, failures, expiry."""

import os
import shutil
import tempfile
import threading
import time
import unittest
from datetime import timedelta

from sqlalchemy import create_engine, func, select, text, update

from app.commands import purge_idempotency_keys
from app.extensions import db
from app.models import Actor, Bucket, IdempotencyKey, Image, Item, Movie
from app.models.base import utcnow
from config import normalize_database_url
from tests.helpers import CONCURRENT, DATABASE_URL, IS_POSTGRES, APITestCase, image_bytes

REUSED = "Idempotency-Key was used with a different request"
IN_PROGRESS = "A request with this Idempotency-Key is in progress"


def count(model):
    db.session.rollback()  # see what other connections committed
    return db.session.scalar(select(func.count()).select_from(model))


def multipart(*files, boundary="retry-boundary", **fields):
    """A multipart body built by hand, so that a retry sends the very same bytes."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for index, data in enumerate(files):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="f{index}.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class IdempotencyTests(APITestCase):
    app_overrides = CONCURRENT

    def setUp(self):
        super().setUp()
        _, self.user = self.account()

    def post(self, path, key, json=None, headers=None):
        headers = {**(headers or self.user), "Idempotency-Key": key}
        return self.client.post(path, headers=headers, json=json)

    def assertReplayOf(self, replay, first):
        self.assertEqual(replay.status_code, first.status_code)
        self.assertEqual(replay.get_data(), first.get_data())
        self.assertEqual(replay.headers["Idempotent-Replayed"], "true")
        for name in ("Content-Type", "Location", "ETag"):
            self.assertEqual(replay.headers.get(name), first.headers.get(name), name)

    def test_replay_is_byte_identical_and_creates_nothing(self):
        first = self.post("/v1/buckets", "key-1", {"name": "Trips"})
        self.assertEqual(first.status_code, 201)
        self.assertNotIn("Idempotent-Replayed", first.headers)
        self.assertIn("ETag", first.headers)
        for _ in range(2):
            self.assertReplayOf(self.post("/v1/buckets", "key-1", {"name": "Trips"}), first)
        self.assertEqual(count(Bucket), 1)

    def test_every_creating_post_replays(self):
        bucket = self.post("/v1/buckets", "b", {"name": "B"}).json["bucket"]
        _, producer = self.account("executive_producer")
        cases = [
            (f"/v1/buckets/{bucket['id']}/items", {"name": "Item"}, self.user, Item),
            ("/v1/actors", {"name": "Ann", "age": 30, "gender": "female"}, producer, Actor),
            ("/v1/movies", {"title": "Film", "release_date": "2020-01-01"}, producer, Movie),
        ]
        for path, body, headers, model in cases:
            with self.subTest(path=path):
                first = self.post(path, f"key {path}", body, headers)
                self.assertEqual(first.status_code, 201, first.json)
                self.assertReplayOf(self.post(path, f"key {path}", body, headers), first)
                self.assertEqual(count(model), 1)

    def test_multipart_upload_replays_and_fingerprints_the_whole_body(self):
        _, admin = self.account("admin")
        body, content_type = multipart(image_bytes(), image_bytes(color=(0, 0, 255)), title="Two", tags="a,b")
        send = lambda data: self.client.post(  # noqa: E731
            "/v1/images", headers={**admin, "Idempotency-Key": "upload"}, data=data, content_type=content_type
        )
        first = send(body)
        self.assertEqual(first.status_code, 201, first.json)
        self.assertEqual(
            first.headers["ETag"], self.client.get(first.headers["Location"], headers=admin).headers["ETag"]
        )
        self.assertReplayOf(send(body), first)
        self.assertEqual(count(Image), 2)
        other, _ = multipart(image_bytes(), image_bytes(color=(0, 255, 0)), title="Two", tags="a,b")
        self.assertError(send(other), 422, REUSED)
        self.assertEqual(count(Image), 2)

    def test_same_key_with_another_body_or_path_is_422(self):
        first = self.post("/v1/buckets", "k", {"name": "One"})
        self.assertError(self.post("/v1/buckets", "k", {"name": "Two"}), 422, REUSED)
        self.assertError(
            self.post(f"/v1/buckets/{first.json['bucket']['id']}/items", "k", {"name": "One"}), 422, REUSED
        )
        self.assertEqual(count(Bucket), 1)
        self.assertEqual(count(Item), 0)

    def test_keys_are_per_user(self):
        _, other = self.account()
        mine = self.post("/v1/buckets", "shared", {"name": "Same"})
        theirs = self.post("/v1/buckets", "shared", {"name": "Same"}, other)
        self.assertEqual((mine.status_code, theirs.status_code), (201, 201))
        self.assertNotIn("Idempotent-Replayed", theirs.headers)
        self.assertNotEqual(mine.json["bucket"]["id"], theirs.json["bucket"]["id"])
        self.assertEqual(count(Bucket), 2)

    def test_client_errors_are_kept(self):
        refused = self.post("/v1/buckets", "bad", {"name": ""})
        self.assertError(refused, 422)
        self.assertReplayOf(self.post("/v1/buckets", "bad", {"name": ""}), refused)
        self.post("/v1/buckets", "first", {"name": "Taken"})
        duplicate = self.post("/v1/buckets", "second", {"name": "Taken"})
        self.assertError(duplicate, 409)
        self.assertReplayOf(self.post("/v1/buckets", "second", {"name": "Taken"}), duplicate)
        self.assertEqual(count(Bucket), 1)

    def test_key_must_be_printable_ascii_of_1_to_255(self):
        for key in ("", "x" * 256, "tab\there", "caf\u00e9"):
            with self.subTest(key=key):
                response = self.post("/v1/buckets", key, {"name": "B"})
                self.assertError(response, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
        self.assertEqual(self.post("/v1/buckets", "~" * 255, {"name": "B"}).status_code, 201)
        self.assertEqual(count(Bucket), 1)

    def test_an_oversized_body_is_413_before_the_key_is_taken(self):
        limit = self.app.config["MAX_JSON_BYTES"]
        response = self.post("/v1/buckets", "big", {"name": "x" * limit})
        self.assertError(response, 413, f"JSON body is larger than {limit} bytes")
        self.assertEqual(count(IdempotencyKey), 0)

    def test_without_a_key_nothing_changes(self):
        for name in ("x", "y"):
            self.assertEqual(self.client.post("/v1/buckets", headers=self.user, json={"name": name}).status_code, 201)
        self.assertEqual(count(IdempotencyKey), 0)

    def test_a_running_request_is_409_until_it_times_out(self):
        first = self.post("/v1/buckets", "slow", {"name": "A"})
        self._set_key("slow", state="running", locked_at=utcnow())
        self.assertError(self.post("/v1/buckets", "slow", {"name": "A"}), 409, IN_PROGRESS)
        timeout = self.app.config["IDEMPOTENCY_RUNNING_TIMEOUT_SECONDS"]
        self._set_key("slow", locked_at=utcnow() - timedelta(seconds=timeout + 1))
        # Taken for dead: the retry runs (here it meets the bucket the first one made).
        self.assertError(
            self.post("/v1/buckets", "slow", {"name": "A"}), 409, "You already have a bucket with this name"
        )
        self.assertEqual(first.status_code, 201)
        self.assertEqual(db.session.scalars(select(IdempotencyKey)).one().state, "done")

    def test_expired_keys_count_as_absent_and_are_purged(self):
        self.post("/v1/buckets", "old", {"name": "A"})
        self.post("/v1/buckets", "new", {"name": "B"})
        self._set_key("old", expires_at=utcnow() - timedelta(seconds=1))
        again = self.post("/v1/buckets", "old", {"name": "C"})
        self.assertEqual(again.status_code, 201)
        self.assertNotIn("Idempotent-Replayed", again.headers)
        self._set_key("old", expires_at=utcnow() - timedelta(seconds=1))
        result = self.app.test_cli_runner().invoke(purge_idempotency_keys)
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Purged 1 expired idempotency keys", result.output)
        self.assertEqual(db.session.scalars(select(IdempotencyKey.key)).all(), ["new"])

    def test_concurrent_requests_with_one_key_create_once(self):
        responses = self.concurrently(
            20,
            lambda client, _index: client.post(
                "/v1/buckets", headers={**self.user, "Idempotency-Key": "race"}, json={"name": "Race"}
            ),
        )
        statuses = [response.status_code for response in responses]
        replays = sum(response.headers.get("Idempotent-Replayed") == "true" for response in responses)
        self.assertEqual(count(Bucket), 1)
        self.assertTrue(set(statuses) <= {201, 409}, statuses)
        self.assertEqual(statuses.count(201) - replays, 1, statuses)

    def _set_key(self, key, **values):
        db.session.execute(update(IdempotencyKey).where(IdempotencyKey.key == key).values(**values))
        db.session.commit()


@unittest.skipUnless(IS_POSTGRES, "needs PostgreSQL: requests held mid-write by a row lock")
class TakeOverTests(APITestCase):
    """A request taken for dead that wakes up again records nothing: the new holder's answer counts."""

    app_overrides = {"FAIR_SLOTS": 2}  # both requests of the user wait on the database at once

    def test_a_request_whose_key_was_taken_over_keeps_nothing(self):
        user_id, headers = self.account()
        engine = create_engine(normalize_database_url(DATABASE_URL))
        blocker = engine.connect()
        hold = blocker.begin()  # an uncommitted bucket of the same name: both requests wait on its index entry
        blocker.execute(
            text(
                "INSERT INTO buckets (owner_id, name, name_key, created_at, modified_at) "
                "VALUES (:u, 'Held', 'held', now(), now())"
            ),
            {"u": user_id},
        )
        answers = {}

        def send(name):
            with self.app.app_context():
                answers[name] = self.app.test_client().post(
                    "/v1/buckets", headers={**headers, "Idempotency-Key": "held"}, json={"name": "Held"}
                )

        first = threading.Thread(target=send, args=("first",))
        first.start()
        self._wait_for_lock_waiters(engine, 1)
        timeout = self.app.config["IDEMPOTENCY_RUNNING_TIMEOUT_SECONDS"]
        with engine.begin() as conn:  # the first request now looks dead
            conn.execute(update(IdempotencyKey).values(locked_at=utcnow() - timedelta(seconds=timeout + 1)))
        second = threading.Thread(target=send, args=("second",))
        second.start()
        self._wait_for_lock_waiters(engine, 2)
        hold.rollback()
        first.join()
        second.join()
        blocker.close()
        engine.dispose()
        self.assertError(answers["first"], 409, IN_PROGRESS)
        self.assertEqual(answers["second"].status_code, 201, answers["second"].json)
        self.assertEqual(count(Bucket), 1)
        kept = db.session.scalars(select(IdempotencyKey)).one()
        self.assertEqual((kept.state, kept.status_code, kept.body), ("done", 201, answers["second"].get_data()))

    @staticmethod
    def _wait_for_lock_waiters(engine, n):
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        for _ in range(200):
            with engine.connect() as conn:
                if conn.execute(query).scalar() >= n:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{n} requests never waited on the held row")


class ServerErrorTests(APITestCase):
    """An answer of 500 or above is not kept: the retry runs again."""

    def setUp(self):
        self.upload_dir = tempfile.mkdtemp()
        self.app_overrides = {"UPLOAD_DIR": self.upload_dir}
        super().setUp()
        _, self.admin = self.account("admin")

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    def test_5xx_is_not_kept(self):
        body, content_type = multipart(image_bytes())
        send = lambda: self.client.post(  # noqa: E731
            "/v1/images", headers={**self.admin, "Idempotency-Key": "k"}, data=body, content_type=content_type
        )
        shutil.rmtree(self.upload_dir)
        with open(self.upload_dir, "w") as blocker:  # the store cannot be written
            blocker.write("not a directory")
        failed = send()
        self.assertGreaterEqual(failed.status_code, 500)
        self.assertEqual(count(IdempotencyKey), 0)
        os.remove(self.upload_dir)
        os.mkdir(self.upload_dir)
        retried = send()
        self.assertEqual(retried.status_code, 201, retried.json)
        self.assertNotIn("Idempotent-Replayed", retried.headers)
        self.assertEqual(count(Image), 1)
