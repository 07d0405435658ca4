"""What several instances need: image bytes served by the store (IMAGE_DELIVERY=redirect), pool sizing.

The instances themselves, behind HAProxy, are checked by `.ci/scale`.
"""

import hashlib
import io
import os
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

from app import create_app
from app.extensions import db
from config import build_config
from tests.helpers import IS_POSTGRES, APITestCase, image_bytes, make_app
from tests.s3server import SeaweedS3


def fetch(url):
    """GET a URL on the real S3 server: (status, headers, bytes)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class RedirectDeliveryTests(APITestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test-access-key")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test-secret-key")
        cls.server = SeaweedS3().start()
        cls.app_overrides = {
            "IMAGE_STORAGE": "s3",
            "S3_ENDPOINT_URL": cls.server.endpoint,
            "S3_BUCKET": f"img-{uuid.uuid4().hex[:12]}",
            "IMAGE_DELIVERY": "redirect",
            "IMAGE_URL_SECONDS": 60,
            "THUMBNAIL_SIZE": 32,
        }

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        super().setUp()
        _, self.admin = self.account("admin")
        self.reader = self.headers_for("user")
        content = image_bytes("PNG", size=(120, 80))
        answer = self.client.post(
            "/v1/images",
            headers=self.admin,
            data={"images": [(io.BytesIO(content), "photo.png", "image/png")]},
            content_type="multipart/form-data",
        )
        self.assertEqual(answer.status_code, 201, answer.json)
        self.image = answer.json["images"][0]

    def proxied(self, path):
        """The same request answered in proxy mode (bytes through the app), for comparison."""
        proxy_app = make_app(**{**self.app_overrides, "IMAGE_DELIVERY": "proxy"})
        with proxy_app.test_client() as client:
            return client.get(path, headers=self.reader)

    def assertRedirectServesWhatProxyServes(self, path):
        answer = self.client.get(path, headers=self.reader)
        self.assertEqual(answer.status_code, 302, answer.get_data(as_text=True))
        self.assertEqual(answer.headers["Cache-Control"], "private, no-store")
        self.assertEqual(answer.get_data(), b"")
        location = answer.headers["Location"]
        self.assertTrue(location.startswith(self.server.endpoint + "/"), location)
        self.assertEqual(parse_qs(urlsplit(location).query)["X-Amz-Expires"], ["60"])

        status, headers, body = fetch(location)
        expected = self.proxied(path)
        self.assertEqual((status, expected.status_code), (200, 200))
        self.assertEqual(body, expected.get_data())
        for name in ("Content-Type", "Content-Disposition", "Cache-Control"):
            self.assertEqual(headers.get(name), expected.headers.get(name), name)
        return headers, body

    def test_file_is_a_redirect_to_the_same_bytes_and_headers(self):
        headers, body = self.assertRedirectServesWhatProxyServes(self.image["links"]["file"])
        self.assertEqual(headers["Content-Type"], "image/png")
        self.assertEqual(hashlib.sha256(body).hexdigest(), self.image["sha256"])
        self.assertEqual(headers["Content-Disposition"], f'inline; filename="{self.image["id"]}.png"')

    def test_thumbnail_is_a_redirect_to_the_same_bytes_and_headers(self):
        self.assertRedirectServesWhatProxyServes(self.image["links"]["thumbnail"])

    def test_token_and_permission_are_checked_before_redirecting(self):
        path = self.image["links"]["file"]
        self.assertError(self.client.get(path), 401)
        self.assertError(self.client.get(path, headers={"Authorization": "Bearer nonsense"}), 401)
        self.client.delete(f"/v1/images/{self.image['id']}", headers=self.admin)
        self.assertError(self.client.get(path, headers=self.reader), 404)

    def test_if_none_match_is_answered_without_a_redirect(self):
        answer = self.client.get(
            self.image["links"]["file"], headers={**self.reader, "If-None-Match": f'"{self.image["sha256"]}"'}
        )
        self.assertEqual(answer.status_code, 304)
        self.assertNotIn("Location", answer.headers)

    def test_the_presigned_url_expires(self):
        short = make_app(**{**self.app_overrides, "IMAGE_URL_SECONDS": 1})
        with short.test_client() as client:
            location = client.get(self.image["links"]["file"], headers=self.reader).headers["Location"]
        time.sleep(2.5)
        self.assertEqual(fetch(location)[0], 403)

    def test_openapi_documents_both_answers(self):
        paths = self.client.get("/v1/openapi.json").json["paths"]
        for path in ("/v1/images/{image_id}/file", "/v1/images/{image_id}/thumbnail"):
            responses = paths[path]["get"]["responses"]
            self.assertIn("200", responses)
            self.assertIn("Location", responses["302"]["headers"])


class DeliverySettingTests(APITestCase):
    def test_redirect_needs_s3(self):
        with self.assertRaisesRegex(RuntimeError, "IMAGE_DELIVERY=redirect needs IMAGE_STORAGE=s3"):
            create_app("testing", IMAGE_STORAGE="local", IMAGE_DELIVERY="redirect")

    def test_unknown_delivery_is_refused(self):
        with self.assertRaisesRegex(RuntimeError, "IMAGE_DELIVERY must be 'proxy' or 'redirect'"):
            create_app("testing", IMAGE_DELIVERY="teleport")


class PoolSizeTests(APITestCase):
    def test_server_databases_get_the_pool_settings(self):
        config = build_config("testing", SQLALCHEMY_DATABASE_URI="postgres://db/app", DB_POOL_SIZE=3, DB_MAX_OVERFLOW=1)
        self.assertEqual(config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"], 3)
        self.assertEqual(config["SQLALCHEMY_ENGINE_OPTIONS"]["max_overflow"], 1)

    def test_sqlite_keeps_its_own_pool(self):
        config = build_config("testing", SQLALCHEMY_DATABASE_URI="sqlite:///:memory:", DB_POOL_SIZE=3)
        self.assertNotIn("pool_size", config["SQLALCHEMY_ENGINE_OPTIONS"])

    def test_the_engine_is_sized_from_the_settings(self):
        if not IS_POSTGRES:
            self.skipTest("SQLite pools are not sized")
        app = make_app(DB_POOL_SIZE=3, DB_MAX_OVERFLOW=1)
        with app.app_context():
            self.assertEqual(db.engine.pool.size(), 3)
            self.assertEqual(db.engine.pool._max_overflow, 1)
            db.engine.dispose()
