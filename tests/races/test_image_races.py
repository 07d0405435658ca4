"""Images under concurrency, on local disk and on S3: shared bytes are never lost, tags never clash.

Each race of the bytes runs against a live gunicorn (gunicorn.conf.py, 2 workers) on PostgreSQL, then
checks the store against the database: every committed image has its file and thumbnail, and nothing
else is stored. The tags' races run on SQLite as well.
"""

import os
import threading
import uuid

from tests.helpers import in_parallel
from tests.liveimages import LocalStore, S3Store, StoreInvariants, png, send_upload, upload
from tests.liveserver import LiveServerTestCase, RaceTestCase, stop_shared_server
from tests.s3server import SeaweedS3

PAIRS = 100
ROUNDS = 5
REUPLOADS = 50
BATCH = 25  # pairs sent at once
LONG_NAME = "n" * 300 + ".png"
WRITERS, WRITES = 4, 10


def tearDownModule():
    stop_shared_server()


class ImageRaces(StoreInvariants):
    def setUp(self):
        self.seed = int(uuid.uuid4().int % 10_000_000)
        _, self.admin = self.server.account("admin")

    def fresh(self):
        self.seed += 1
        return png(self.seed)

    def test_a_failing_upload_never_removes_bytes_another_committed(self):
        """A uploads X; B uploads X plus a file that fails B (once a 500 whose cleanup deleted A's bytes)."""
        for start in range(0, PAIRS, BATCH):
            requests = []
            for _ in range(start, min(start + BATCH, PAIRS)):
                shared = self.fresh()
                requests.append(upload([("a.png", shared)], self.admin))
                requests.append(upload([("b.png", shared), (LONG_NAME, self.fresh())], self.admin))
                requests.append(upload([("c.png", shared), ("broken.png", b"\x89PNG broken")], self.admin))
            answers = self.server.at_once(requests)
            self.assertStatuses(answers, {201, 415})
            self.assertEqual([a.status for a in answers[2::3]], [415] * (len(answers) // 3))
        self.assertStoreMatchesRows()
        for image_id, sha in self.server.rows("SELECT id, sha256 FROM images ORDER BY id DESC LIMIT 5"):
            answer = self.server.request("GET", f"/v1/images/{image_id}/file", headers=self.admin)
            self.assertEqual((answer.status, answer.headers["etag"]), (200, f'"{sha}"'))

    def test_delete_while_the_same_bytes_are_uploaded_again(self):
        for _ in range(0, REUPLOADS, BATCH):
            contents = [self.fresh() for _ in range(BATCH)]
            first = self.server.at_once([upload([("x.png", content)], self.admin) for content in contents])
            self.assertStatuses(first, {201})
            requests = []
            for answer, content in zip(first, contents, strict=True):
                requests.append(("DELETE", f"/v1/images/{answer.json['images'][0]['id']}", {"headers": self.admin}))
                requests.append(upload([("again.png", content)], self.admin))
            answers = self.server.at_once(requests)
            self.assertStatuses(answers, {200, 201})
            again = answers[-1].json["images"][0]["links"]["file"]
            self.assertEqual(self.server.request("GET", again, headers=self.admin).status, 200)
        self.assertStoreMatchesRows()


class LocalImageRaces(ImageRaces, LiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.store = LocalStore(cls.server.env["UPLOAD_DIR"])


class S3ImageRaces(ImageRaces, LiveServerTestCase):
    s3 = None

    @classmethod
    def setUpClass(cls):
        cls.s3 = SeaweedS3().start()
        bucket = f"img-{uuid.uuid4().hex[:12]}"
        cls.server_env = {
            "IMAGE_STORAGE": "s3",
            "S3_ENDPOINT_URL": cls.s3.endpoint,
            "S3_BUCKET": bucket,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test-access-key"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test-secret-key"),
        }
        try:
            super().setUpClass()
        except BaseException:
            cls.s3.stop()
            raise
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test-access-key")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test-secret-key")
        cls.store = S3Store(cls.s3.endpoint, bucket)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.s3.stop()


class TagRaces(RaceTestCase):
    def setUp(self):
        _, self.admin = self.server.account("admin")

    def stored_tags(self, image_id):
        rows = self.server.rows("SELECT tag FROM image_tags WHERE image_id = :id ORDER BY position", id=image_id)
        return [tag for (tag,) in rows]

    def test_concurrent_tag_patches(self):
        """Issue 26 item 5: on SQLite a racing PATCH answered tags that were a mix of two writes."""
        for round_ in range(ROUNDS):
            image_id = send_upload(self.server, [("t.png", png(round_))], self.admin).json["images"][0]["id"]
            tag_sets = [[f"t{round_}", f"w{writer}", "shared"] for writer in range(WRITERS)]
            barrier, answers = threading.Barrier(WRITERS), []

            def writer(tags, barrier=barrier, answers=answers, image_id=image_id):
                barrier.wait()
                for _ in range(WRITES):
                    answer = self.server.request(
                        "PATCH", f"/v1/images/{image_id}", json={"tags": tags}, headers=self.admin
                    )
                    answers.append((answer, tags))

            in_parallel(writer, [(tags,) for tags in tag_sets])
            self.assertStatuses([answer for answer, _ in answers], {200})
            for answer, tags in answers:
                self.assertEqual(answer.json["image"]["tags"], tags, "its own write, whole")
            self.assertIn(self.stored_tags(image_id), tag_sets)
