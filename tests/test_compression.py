"""Compression (../shared/API.md, "Operating it"): a JSON answer over 1 KiB is gzip-compressed for a
client that sends Accept-Encoding: gzip, with Vary: Accept-Encoding; never image bytes or small
answers; a compressed answer's ETag differs from the plain one's, and If-None-Match (or If-Match)
with either works."""

import gzip
import io
import json
import secrets

from tests.helpers import APITestCase
from tests.liveimages import noise_png

GZIP = {"Accept-Encoding": "gzip"}


class CompressionTests(APITestCase):
    def setUp(self):
        super().setUp()
        _, self.headers = self.account()
        bucket = self.client.post("/v1/buckets", json={"name": "Trips"}, headers=self.headers).json["bucket"]
        self.items = f"/v1/buckets/{bucket['id']}/items"
        # An item whose JSON is over 1 KiB (2,000 characters of description), and a small one.
        big = {"name": "Rome", "description": "Colosseum, Forum, Pantheon. " * 70}
        self.big = self.create(self.items, big)
        self.small = self.create(self.items, {"name": "Oslo"})

    def create(self, path, body):
        response = self.client.post(path, json=body, headers=self.headers)
        self.assertEqual(response.status_code, 201, response.json)
        return response.headers["Location"]

    def get(self, path, **headers):
        return self.client.get(path, headers={**self.headers, **headers})

    def test_json_over_1_kib_is_gzipped_for_clients_that_take_it(self):
        plain = self.get(self.items)
        self.assertGreater(len(plain.data), 1024)
        self.assertNotIn("Content-Encoding", plain.headers)
        self.assertIn("Accept-Encoding", plain.headers["Vary"])
        compressed = self.get(self.items, **GZIP)
        self.assertEqual(compressed.headers["Content-Encoding"], "gzip")
        self.assertIn("Accept-Encoding", compressed.headers["Vary"])
        self.assertEqual(int(compressed.headers["Content-Length"]), len(compressed.data))
        self.assertLess(len(compressed.data), len(plain.data))
        self.assertEqual(json.loads(gzip.decompress(compressed.data)), plain.json)
        refused = self.get(self.items, **{"Accept-Encoding": "gzip;q=0, identity"})
        self.assertNotIn("Content-Encoding", refused.headers)

    def test_accept_encoding_is_read_as_http_reads_it(self):
        """Weights and case: `gzip;q=0` refuses gzip, even beside `*`; `*` alone takes it; codings are
        case-insensitive."""
        for accepts, gzipped in [
            ("gzip;q=0", False),
            ("gzip; q=0", False),
            ("gzip;q=0, *", False),
            ("*;q=0", False),
            ("identity", False),
            ("GZIP", True),
            ("*", True),
            ("deflate, gzip;q=0.5", True),
        ]:
            with self.subTest(accepts=accepts):
                answer = self.get(self.items, **{"Accept-Encoding": accepts})
                self.assertEqual(answer.headers.get("Content-Encoding"), "gzip" if gzipped else None)
                self.assertIn("Accept-Encoding", answer.headers["Vary"])
                body = gzip.decompress(answer.data) if gzipped else answer.data
                self.assertEqual(len(json.loads(body)["items"]), 2)

    def test_an_error_over_1_kib_is_gzipped_too(self):
        unknown = {f"field_{n:02}_{'x' * 60}": 1 for n in range(30)}
        plain = self.client.post(self.items, json=unknown, headers=self.headers)
        self.assertEqual(plain.status_code, 422)
        self.assertGreater(len(plain.data), 1024)
        compressed = self.client.post(self.items, json=unknown, headers={**self.headers, **GZIP})
        self.assertEqual(compressed.status_code, 422)
        self.assertEqual(compressed.headers["Content-Encoding"], "gzip")
        self.assertIn("Accept-Encoding", compressed.headers["Vary"])
        self.assertEqual(int(compressed.headers["Content-Length"]), len(compressed.data))
        self.assertEqual(json.loads(gzip.decompress(compressed.data)), plain.json)

    def test_small_answers_and_image_bytes_are_never_compressed(self):
        small = self.get(self.small, **GZIP)
        self.assertLessEqual(len(small.data), 1024)
        self.assertNotIn("Content-Encoding", small.headers)
        _, admin = self.account("admin")
        upload = self.client.post(
            "/v1/images",
            headers=admin,
            data={"images": [(io.BytesIO(noise_png((64, 64))), "noise.png")]},
            content_type="multipart/form-data",
        )
        self.assertEqual(upload.status_code, 201, upload.json)
        image = upload.json["images"][0]
        for link in image["links"].values():
            answer = self.client.get(link, headers={**admin, **GZIP})
            self.assertEqual(answer.status_code, 200)
            self.assertNotIn("Content-Encoding", answer.headers)
        self.assertGreater(image["size_bytes"], 1024)

    def test_the_compressed_answers_etag_differs_and_either_gives_304(self):
        plain = self.get(self.big)
        compressed = self.get(self.big, **GZIP)
        self.assertEqual(compressed.headers["Content-Encoding"], "gzip")
        plain_tag, compressed_tag = plain.headers["ETag"], compressed.headers["ETag"]
        self.assertNotEqual(plain_tag, compressed_tag)
        self.assertEqual(compressed_tag, plain_tag[:-1] + ':gzip"')
        for held in (plain_tag, compressed_tag):
            for accepts in ({}, GZIP):
                with self.subTest(held=held, accepts=accepts):
                    answer = self.get(self.big, **{"If-None-Match": held, **accepts})
                    self.assertEqual(answer.status_code, 304)
                    self.assertEqual(answer.data, b"")
                    self.assertEqual(answer.headers["ETag"], held)  # the tag the client holds is still good
        stale = self.get(self.big, **{"If-None-Match": '"0123456789:gzip"', **GZIP})
        self.assertEqual(stale.status_code, 200)

    def test_if_match_takes_either_etag(self):
        compressed_tag = self.get(self.big, **GZIP).headers["ETag"]
        patched = self.client.patch(self.big, json={"done": True}, headers={**self.headers, "If-Match": compressed_tag})
        self.assertEqual(patched.status_code, 200)
        stale = self.client.patch(self.big, json={"done": False}, headers={**self.headers, "If-Match": compressed_tag})
        self.assertEqual(stale.status_code, 412)
        plain_tag = self.get(self.big).headers["ETag"]
        self.assertEqual(
            self.client.patch(
                self.big, json={"done": False}, headers={**self.headers, "If-Match": plain_tag}
            ).status_code,
            200,
        )

    def test_the_openapi_document_is_compressed(self):
        plain = self.client.get("/v1/openapi.json")
        compressed = self.client.get("/v1/openapi.json", headers=GZIP)
        self.assertEqual(compressed.headers["Content-Encoding"], "gzip")
        self.assertLess(len(compressed.data) * 5, len(plain.data))


class StreamedCompressionTests(APITestCase):
    def test_a_streamed_answer_is_compressed_as_it_streams(self):
        """The account export (app/api/export.py) streams in pieces: gzipped, it still does, piece by
        piece (no Content-Length, several chunks), and unzips to the plain export."""
        _, headers = self.account()
        for n in range(10):
            bucket = self.client.post("/v1/buckets", json={"name": f"b{n}"}, headers=headers).json["bucket"]
            for m in range(30):  # descriptions that compress only so far: the compressed stream is long too
                item = {"name": f"item {m}", "description": secrets.token_hex(1000)}
                self.client.post(f"/v1/buckets/{bucket['id']}/items", json=item, headers=headers)
        plain = self.client.get("/v1/auth/me/export", headers=headers)
        self.assertGreater(len(plain.data), 600_000)
        streamed = self.client.get("/v1/auth/me/export", headers={**headers, **GZIP}, buffered=False)
        self.assertTrue(streamed.is_streamed)
        self.assertEqual(streamed.headers["Content-Encoding"], "gzip")
        self.assertNotIn("Content-Length", streamed.headers)
        chunks = [chunk for chunk in streamed.response if chunk]
        streamed.close()
        self.assertGreater(len(chunks), 2)
        self.assertEqual(json.loads(gzip.decompress(b"".join(chunks))), plain.json)
