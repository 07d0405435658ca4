"""GET /v1/auth/me/export: the account as one JSON document, streamed, each object as the API answers it."""

import io
import time
import unittest
from unittest import mock

import orjson

from app.api import export as export_answer
from app.services import exports
from tests import test_oidc
from tests.helpers import (
    DATABASE_URL,
    IS_POSTGRES,
    PASSWORD,
    APITestCase,
    StatementCounter,
    bearer,
    image_bytes,
    make_app,
)
from tests.test_oidc import OIDCTestCase


def setUpModule():
    test_oidc.setUpModule()  # the JWKS server the external account's tokens come from


def tearDownModule():
    test_oidc.tearDownModule()


class ExportTestCase(APITestCase):
    def setUp(self):
        super().setUp()
        self.user_id, self.headers = self.account("admin")  # an admin, so that it can upload images

    def export(self, headers=None, **kwargs):
        return self.client.get("/v1/auth/me/export", headers=headers or self.headers, **kwargs)

    def post(self, path, body):
        response = self.client.post(path, json=body, headers=self.headers)
        self.assertEqual(response.status_code, 201, response.json)
        return response.json

    def fill(self):
        """Three buckets (one empty), a few items, two images; and another user's bucket."""
        for n, count in enumerate((2, 0, 3)):
            bucket = self.post("/v1/buckets", {"name": f"bucket {n}"})["bucket"]
            for m in range(count):
                self.post(f"/v1/buckets/{bucket['id']}/items", {"name": f"item {m}", "done": m == 1})
        files = [(io.BytesIO(image_bytes(color=(n * 80, 10, 10))), f"{n}.png") for n in range(2)]
        upload = self.client.post(
            "/v1/images",
            data={"images": files, "tags": "sea, sun"},
            headers=self.headers,
            content_type="multipart/form-data",
        )
        self.assertEqual(upload.status_code, 201, upload.json)
        _, other = self.account()
        self.client.post("/v1/buckets", json={"name": "not mine"}, headers=other)

    def expected(self):
        """The document, put together from what the API answers elsewhere."""
        get = lambda path: self.client.get(path, headers=self.headers).json  # noqa: E731
        buckets = []
        for bucket in sorted(get("/v1/buckets?per_page=100")["buckets"], key=lambda b: b["id"]):
            bucket = get(f"/v1/buckets/{bucket['id']}")["bucket"]
            items = get(f"/v1/buckets/{bucket['id']}/items?per_page=100&sort=id")["items"]
            buckets.append({**bucket, "items": items})
        images = [
            get(f"/v1/images/{image['id']}")["image"]
            for image in sorted(get("/v1/images?per_page=100")["images"], key=lambda i: i["id"])
        ]
        return {"user": get("/v1/auth/me")["user"], "buckets": buckets, "images": images, "success": True}


class ExportTests(ExportTestCase):
    def test_the_export_holds_the_account_as_the_api_answers_it(self):
        self.fill()
        response = self.export()
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.mimetype, "application/json")
        self.assertEqual(response.headers["Content-Disposition"], f'attachment; filename="account-{self.user_id}.json"')
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        self.assertNotIn("Content-Length", response.headers)  # streamed
        body = response.get_data()
        self.assertEqual(orjson.loads(body), self.expected())
        self.assertEqual(len(orjson.loads(body)["buckets"]), 3)
        self.assertEqual(sum(len(b["items"]) for b in orjson.loads(body)["buckets"]), 5)
        self.assertEqual(len(orjson.loads(body)["images"]), 2)

    def test_success_comes_last_so_a_cut_body_never_carries_it(self):
        self.fill()
        body = self.export().get_data()
        self.assertTrue(body.startswith(b'{"user":'), body[:20])
        self.assertTrue(body.endswith(b'"success":true}'), body[-20:])

    def test_an_empty_account(self):
        response = self.export()
        document = orjson.loads(response.get_data())
        self.assertEqual((document["buckets"], document["images"], document["success"]), ([], [], True))
        self.assertEqual(document["user"]["id"], self.user_id)

    def test_the_same_document_whatever_the_chunk_sizes(self):
        self.fill()
        with mock.patch.object(exports, "EXPORT_CHUNK", 2), mock.patch.object(export_answer, "CHUNK_BYTES", 10):
            response = self.export()
            chunks = list(response.response)
        self.assertGreater(len(chunks), 10)
        self.assertEqual(orjson.loads(b"".join(chunks)), self.expected())

    def test_without_a_token_it_is_401(self):
        self.assertError(self.client.get("/v1/auth/me/export"), 401, "Provide an authorization header")

    def test_a_token_of_a_deleted_account_is_401(self):
        self.account("admin")  # so that this one, an admin too, may leave
        left = self.client.delete("/v1/auth/me", json={"password": PASSWORD}, headers=self.headers)
        self.assertEqual(left.status_code, 200)
        self.assertError(self.export(), 401)


class ExportSlotTests(ExportTestCase):
    app_overrides = {"EXPORTS_AT_ONCE": 1}

    def test_one_export_too_many_is_503_and_the_slot_comes_back(self):
        running = self.export(buffered=False)  # its body not read yet: it holds the slot
        self.assertEqual(running.status_code, 200)
        refused = self.export()
        self.assertError(refused, 503, "Too many account exports are running: please retry shortly")
        self.assertEqual(refused.headers["Retry-After"], "10")
        running.close()  # what the server does once it has sent the body, or the client went away
        self.assertEqual(self.export().status_code, 200)
        self.assertEqual(self.export().status_code, 200)  # a body read to its end gives the slot back too


class ExternalExportTests(OIDCTestCase):
    def test_an_external_account_exports_its_data(self):
        headers = self.external(sub="auth0|exporter", permissions=["get:actors"])
        self.client.post("/v1/buckets", json={"name": "mine"}, headers=headers)
        document = orjson.loads(self.client.get("/v1/auth/me/export", headers=headers).get_data())
        self.assertEqual(document["user"]["external_id"], "auth0|exporter")
        self.assertEqual(document["user"]["permissions"], ["get:actors"])
        self.assertEqual([bucket["name"] for bucket in document["buckets"]], ["mine"])


@unittest.skipUnless(IS_POSTGRES, "server-side cursors are PostgreSQL's")
class ServerSideCursorTests(unittest.TestCase):
    """What the app sends PostgreSQL, read off the wire: one snapshot, and rows fetched a chunk at a time."""

    def setUp(self):
        self.proxy = StatementCounter.to_database(DATABASE_URL)
        self.proxy.start()
        self.app = make_app(SQLALCHEMY_DATABASE_URI=self.proxy.url(DATABASE_URL))
        self.client = self.app.test_client()
        email = f"cursor-{time.time_ns()}@example.com"
        self.headers = bearer(
            self.client.post("/v1/auth/register", json={"email": email, "password": PASSWORD}).json["auth_token"]
        )
        bucket = self.client.post("/v1/buckets", json={"name": "b"}, headers=self.headers).json["bucket"]
        for n in range(5):
            self.client.post(f"/v1/buckets/{bucket['id']}/items", json={"name": f"i{n}"}, headers=self.headers)

    def tearDown(self):
        with self.app.app_context():
            from app.extensions import db
            from app.models import User

            db.session.execute(db.delete(User))
            db.session.commit()
            db.engine.dispose()
        self.proxy.stop()

    def test_one_read_only_snapshot_read_through_cursors(self):
        with mock.patch.object(exports, "EXPORT_CHUNK", 2):
            time.sleep(0.05)
            self.proxy.statements.clear()
            document = orjson.loads(self.client.get("/v1/auth/me/export", headers=self.headers).get_data())
            time.sleep(0.05)
        self.assertEqual(len(document["buckets"][0]["items"]), 5)
        statements = self.proxy.statements
        self.assertIn("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", statements)
        declared = [s for s in statements if s.startswith("DECLARE") and "CURSOR" in s]
        self.assertEqual(len(declared), 3, statements)  # buckets, items, images
        self.assertGreaterEqual(len([s for s in statements if s.startswith("FETCH FORWARD 2")]), 4, statements)
