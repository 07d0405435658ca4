"""A full image store: uploads answer 507, and nothing of a refused upload stays.

UPLOAD_DIR is a 2 MB tmpfs the test mounts, so it needs root (CI runs as root); otherwise it is
skipped with the reason printed.
"""

import os
import subprocess
import sys
import tempfile
import unittest
from collections import Counter

from tests.liveimages import LocalStore, StoreInvariants, noise_png, png, send_upload, upload
from tests.liveserver import LiveServerTestCase

BIG = (300, 300)  # about 270 KB of incompressible PNG: a 2 MB store takes a handful


def _skip(reason):
    print(f"\nskipped storage-full faults: {reason}", file=sys.stderr)
    raise unittest.SkipTest(reason)


class StorageFull(StoreInvariants, LiveServerTestCase):
    mount = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            _skip("mounting a small tmpfs needs root")
        cls.mount = tempfile.mkdtemp(prefix="full-store-")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", cls.mount], capture_output=True)
        if mounted.returncode != 0:
            os.rmdir(cls.mount)
            _skip(f"mount failed: {mounted.stderr.decode().strip()}")
        cls.server_env = {"UPLOAD_DIR": cls.mount}
        try:
            super().setUpClass()
        except BaseException:
            cls.unmount()
            raise
        cls.store = LocalStore(cls.mount)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.unmount()

    @classmethod
    def unmount(cls):
        subprocess.run(["umount", cls.mount], check=False)
        os.rmdir(cls.mount)

    def test_full_store_is_507_and_keeps_nothing(self):
        _, admin = self.server.account("admin")
        kept = send_upload(self.server, [("small.png", png(1))], admin)
        self.assertEqual(kept.status, 201)
        statuses = Counter()
        for _ in range(3):
            # Each request: bytes another request has committed, plus big ones that cannot all fit.
            requests = [upload([("shared.png", png(1)), ("big.png", noise_png(BIG))], admin) for _ in range(8)]
            answers = self.server.at_once(requests)
            # 507 is the contract's answer here, so not assertNo5xx: only 201 and 507, all JSON, no traceback.
            self.assertEqual(
                [(a.status, a.raw[:200]) for a in answers if a.status not in (201, 507) or a.json is None], []
            )
            statuses.update(a.status for a in answers)
            full = [a for a in answers if a.status == 507]
            self.assertTrue(all(a.message == "Insufficient storage: the image store is full" for a in full))
            self.assertStoreMatchesRows()
        print(f"\n  storage full: {dict(sorted(statuses.items()))}", file=sys.stderr)
        self.assertGreater(statuses[507], 0)
        self.assertNotIn("Traceback", self.server.log())
        # The file every request shared is still there, and space freed is usable again.
        self.assertEqual(self.server.request("GET", kept.json["images"][0]["links"]["file"], headers=admin).status, 200)
        for image_id in [row[0] for row in self.server.rows("SELECT id FROM images WHERE size_bytes > 10000")]:
            self.assertEqual(self.server.request("DELETE", f"/v1/images/{image_id}", headers=admin).status, 200)
        self.assertEqual(send_upload(self.server, [("after.png", noise_png(BIG))], admin).status, 201)
        self.assertStoreMatchesRows()
