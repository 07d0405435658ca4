"""The OpenAPI document is generated from the app, so it covers exactly what is served."""

import re

from tests.helpers import APITestCase

IGNORED_METHODS = {"HEAD", "OPTIONS"}


class OpenAPITests(APITestCase):
    def setUp(self):
        super().setUp()
        self.spec = self.client.get("/v1/openapi.json").json

    def served(self):
        pairs = set()
        for rule in self.app.url_map.iter_rules():
            if not rule.rule.startswith("/v1") and rule.rule != "/":
                continue
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            pairs |= {(path, method.lower()) for method in rule.methods - IGNORED_METHODS}
        return pairs

    def documented(self):
        return {
            (path, method)
            for path, operations in self.spec["paths"].items()
            for method in operations
            if method != "parameters"
        }

    def test_every_served_route_is_documented_and_nothing_else(self):
        self.assertEqual(self.served(), self.documented())

    def test_document_basics(self):
        self.assertTrue(self.spec["openapi"].startswith("3."))
        self.assertEqual(self.spec["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer")
        envelope = self.spec["components"]["schemas"]["Error"]["properties"]
        self.assertEqual(set(envelope), {"success", "error", "message", "errors"})

    def test_guarded_operations_declare_security_and_errors(self):
        open_operations = {
            ("/", "get"),
            ("/v1", "get"),
            ("/v1/health", "get"),
            ("/v1/openapi.json", "get"),
            ("/v1/auth/register", "post"),
            ("/v1/auth/login", "post"),
            ("/v1/auth/refresh", "post"),
        }
        for path, method in self.documented() - open_operations:
            operation = self.spec["paths"][path][method]
            with self.subTest(path=path, method=method):
                self.assertEqual(operation.get("security"), [{"bearerAuth": []}])
                self.assertIn("401", operation["responses"])
        movie_post = self.spec["paths"]["/v1/movies"]["post"]
        self.assertIn("post:movies", movie_post["description"])
        self.assertIn("403", movie_post["responses"])
        self.assertIn("422", movie_post["responses"])
        self.assertIn("400", self.spec["paths"]["/v1/movies"]["get"]["responses"])
        self.assertIn("multipart/form-data", self.spec["paths"]["/v1/images"]["post"]["requestBody"]["content"])

    def test_docs_page_is_served_from_the_app(self):
        page = self.client.get("/docs")
        self.assertEqual(page.status_code, 200)
        html = page.get_data(as_text=True)
        self.assertNotIn("//cdn", html)
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            with self.subTest(asset=asset):
                self.assertTrue(asset.startswith("/docs/"), asset)
                self.assertEqual(self.client.get(asset).status_code, 200)
