"""Traces (OpenTelemetry): with OTEL_EXPORTER_OTLP_ENDPOINT set, each request is one span tree,
its SQL statements, JWKS fetches and S3 calls under its server span, which carries the request id;
exported over OTLP/HTTP to a real receiver on loopback (tests/otlp_receiver.py) that decodes the
protobuf. Unset, OpenTelemetry is not even imported."""

import os
import subprocess
import sys
import time
import unittest
import uuid

from tests.jwks_server import JwksServer
from tests.liveimages import png, send_upload
from tests.liveserver import ROOT, LiveServerTestCase, bearer
from tests.otlp_receiver import OtlpReceiver
from tests.s3server import SeaweedS3

SERVICE = "api-under-test"


class TracingOff(unittest.TestCase):
    def test_without_an_endpoint_opentelemetry_is_not_imported(self):
        code = (
            "import sys; from app import create_app; "
            "create_app('testing', SQLALCHEMY_DATABASE_URI='sqlite://').test_client().get('/v1/health'); "
            "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "[]")


class Traces(LiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.receiver = OtlpReceiver()
        cls.issuer = JwksServer()
        cls.kid = cls.issuer.add_key()
        cls.s3 = SeaweedS3().start()
        cls.server_env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": cls.receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between exports, 5 s by default
            "OTEL_SERVICE_NAME": SERVICE,
            **{name: str(value) for name, value in cls.issuer.settings().items()},
            "IMAGE_STORAGE": "s3",
            "S3_ENDPOINT_URL": cls.s3.endpoint,
            "S3_BUCKET": f"traces-{uuid.uuid4().hex[:8]}",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test-access-key"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test-secret-key"),
        }
        try:
            super().setUpClass()
        except Exception:
            cls.stop_services()
            raise

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.stop_services()

    @classmethod
    def stop_services(cls):
        cls.s3.stop()
        cls.issuer.stop()
        cls.receiver.stop()

    # -- helpers ---------------------------------------------------------------------------------

    def traced(self, method, path, status=200, **kwargs):
        """Send a request with a fresh X-Request-ID; returns (its server span, every span of its trace)."""
        request_id = f"traced-{uuid.uuid4().hex}"
        headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id}
        answer = self.server.request(method, path, headers=headers, **kwargs)
        self.assertEqual(answer.status, status, answer.raw[:300])
        return self.trace_of(request_id)

    def trace_of(self, request_id):
        """The server span carrying `request_id` and all of its trace. Children end (and are queued
        for export) before their parent: once the server span is in, so is the rest."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            spans = self.receiver.received()
            roots = [s for s in spans if s.kind == "SERVER" and s.attributes.get("request_id") == request_id]
            if roots:
                self.assertEqual(len(roots), 1)
                return roots[0], [s for s in spans if s.trace_id == roots[0].trace_id]
            time.sleep(0.05)
        self.fail(f"no server span with request_id {request_id}; received {len(self.receiver.received())} spans")

    def assertOneTree(self, root, spans):
        """Every span of the trace descends from `root`, the trace's only root."""
        by_id = {span.span_id: span for span in spans}
        self.assertEqual([s.span_id for s in spans if s.parent_id not in by_id], [root.span_id])
        for span in spans:
            seen = span
            while seen.parent_id in by_id:
                seen = by_id[seen.parent_id]
            self.assertEqual(seen.span_id, root.span_id, span)

    def sql(self, spans):
        return [s for s in spans if "db.statement" in s.attributes or "db.query.text" in s.attributes]

    # -- tests -----------------------------------------------------------------------------------

    def test_a_request_is_one_span_tree_with_its_sql_statements_under_it(self):
        user_id, headers = self.server.account()
        bucket = self.server.request("POST", "/v1/buckets", json={"name": "traced"}, headers=headers).json["bucket"]
        root, spans = self.traced("GET", f"/v1/buckets/{bucket['id']}", headers=headers)
        self.assertEqual(root.parent_id, "")
        self.assertEqual(root.name, "GET /v1/buckets/<int:bucket_id>")
        self.assertEqual(root.service, SERVICE)
        self.assertOneTree(root, spans)
        statements = [s.attributes.get("db.statement") or s.attributes.get("db.query.text") for s in self.sql(spans)]
        self.assertTrue(any("FROM buckets" in statement for statement in statements), statements)
        token = headers["Authorization"].split()[1]
        self.assertFalse([s for s in statements if token in s or token.rsplit(".", 1)[1] in s])

    def test_each_request_is_its_own_trace_and_joins_its_callers(self):
        roots = [self.traced("GET", "/v1/health")[0] for _ in range(6)]
        self.assertEqual(len({root.trace_id for root in roots}), 6)
        caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        traceparent = {"traceparent": f"00-{caller_trace}-{caller_span}-01"}
        root, spans = self.traced("GET", "/v1/health", headers=traceparent)
        self.assertEqual((root.trace_id, root.parent_id), (caller_trace, caller_span))
        self.assertEqual([s for s in spans if s.kind == "SERVER"], [root])

    def test_a_jwks_fetch_is_under_the_request_that_made_it(self):
        token = self.issuer.token(self.kid, sub=f"auth0|{uuid.uuid4().hex}")
        root, spans = self.traced("GET", "/v1/auth/me", headers=bearer(token))
        self.assertOneTree(root, spans)
        fetches = [s for s in spans if s.kind == "CLIENT" and "jwks" in str(s.attributes)]
        self.assertEqual(len(fetches), 1, [(s.name, s.attributes) for s in spans])
        self.assertTrue(self.sql(spans))  # the external account's row

    def test_s3_calls_are_under_the_upload_that_made_them(self):
        _, admin = self.server.account("admin")
        request_id = f"upload-{uuid.uuid4().hex}"
        answer = send_upload(
            self.server, [("p.png", png(int(time.time()) % 100_000))], {**admin, "X-Request-ID": request_id}
        )
        self.assertEqual(answer.status, 201, answer.raw[:300])
        root, spans = self.trace_of(request_id)
        self.assertOneTree(root, spans)
        calls = {
            s.attributes.get("rpc.method")
            for s in spans
            if s.kind == "CLIENT" and s.attributes.get("rpc.service") == "S3"
        }
        self.assertIn("PutObject", calls)
        self.assertTrue(self.sql(spans))
