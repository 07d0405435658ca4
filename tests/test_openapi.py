"""The OpenAPI document is generated from the app, so it covers exactly what is served."""

import re
from http import HTTPStatus

from config import RELEASE_VERSION
from tests.helpers import APITestCase

IGNORED_METHODS = {"HEAD", "OPTIONS"}
INPUTLESS_OPERATIONS = {("/", "get"), ("/v1", "get"), ("/v1/health", "get"), ("/v1/openapi.json", "get")}
OPEN_OPERATIONS = INPUTLESS_OPERATIONS | {
    ("/v1/auth/register", "post"),
    ("/v1/auth/login", "post"),
    ("/v1/auth/refresh", "post"),
    ("/v1/auth/token", "post"),
    ("/v1/auth/email/verify", "post"),
    ("/v1/auth/password/forgot", "post"),
    ("/v1/auth/password/reset", "post"),
}

# path -> {method: operationId}, as served when the ids became declarations (issue 27).
KEPT_OPERATION_IDS = {
    "/": {"get": "getIndex"},
    "/v1": {"get": "getV1Index"},
    "/v1/health": {"get": "getHealth"},
    "/v1/auth/register": {"post": "register"},
    "/v1/auth/login": {"post": "login"},
    "/v1/auth/token": {"post": "issueToken"},
    "/v1/auth/logout": {"post": "logout"},
    "/v1/auth/refresh": {"post": "refresh"},
    "/v1/auth/me": {"get": "getMe", "delete": "deleteMe"},
    "/v1/auth/me/export": {"get": "getAccountExport"},
    "/v1/auth/password": {"put": "changePassword"},
    "/v1/auth/sessions": {"get": "getSessions"},
    "/v1/auth/sessions/{session_id}": {"delete": "endSession"},
    "/v1/auth/email/verify": {"post": "verifyEmail"},
    "/v1/auth/email/verify/request": {"post": "requestVerification"},
    "/v1/auth/password/forgot": {"post": "forgotPassword"},
    "/v1/auth/password/reset": {"post": "resetPassword"},
    "/v1/users": {"get": "listUsers"},
    "/v1/users/{user_id}": {"get": "getUser", "patch": "updateUser", "delete": "deleteUser"},
    "/v1/buckets": {"get": "listBuckets", "post": "createBucket"},
    "/v1/buckets/{bucket_id}": {
        "get": "getBucket",
        "put": "replaceBucket",
        "patch": "updateBucket",
        "delete": "deleteBucket",
    },
    "/v1/buckets/{bucket_id}/items": {"get": "listItems", "post": "createItem"},
    "/v1/buckets/{bucket_id}/items/{item_id}": {
        "get": "getItem",
        "put": "replaceItem",
        "patch": "updateItem",
        "delete": "deleteItem",
    },
    "/v1/actors": {"get": "listActors", "post": "createActor"},
    "/v1/actors/{actor_id}": {"get": "getActor", "patch": "updateActor", "delete": "deleteActor"},
    "/v1/actors/{actor_id}/movies": {"get": "listActorMovies"},
    "/v1/movies": {"get": "listMovies", "post": "createMovie"},
    "/v1/movies/{movie_id}": {"get": "getMovie", "patch": "updateMovie", "delete": "deleteMovie"},
    "/v1/movies/{movie_id}/actors": {"get": "listMovieActors"},
    "/v1/images": {"get": "listImages", "post": "uploadImages"},
    "/v1/images/{image_id}": {"get": "getImage", "patch": "updateImage", "delete": "deleteImage"},
    "/v1/images/{image_id}/file": {"get": "getImageFile"},
    "/v1/images/{image_id}/thumbnail": {"get": "getImageThumbnail"},
    "/v1/openapi.json": {"get": "getOpenapiJson"},
}


class OpenAPITests(APITestCase):
    # Its own app: flask-smorest serves the document of the app built last, and it depends on the settings.
    app_overrides = {"OIDC_ISSUER": None}

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
        schemes = self.spec["components"]["securitySchemes"]
        self.assertEqual(schemes["bearerAuth"]["scheme"], "bearer")
        self.assertNotIn("oidcBearer", schemes, "no external issuer is configured")
        envelope = self.spec["components"]["schemas"]["Error"]["properties"]
        self.assertEqual(set(envelope), {"success", "error", "message", "errors"})

    def operations(self):
        for path, item in self.spec["paths"].items():
            for method, operation in item.items():
                if method != "parameters":
                    yield path, method, operation

    def test_guarded_operations_declare_security_and_errors(self):
        for path, method, operation in self.operations():
            if (path, method) in OPEN_OPERATIONS:
                continue
            with self.subTest(path=path, method=method):
                self.assertEqual(operation.get("security"), [{"bearerAuth": []}, {"oauth2Password": []}])
                self.assertIn("401", operation["responses"])
        movie_post = self.spec["paths"]["/v1/movies"]["post"]
        self.assertIn("post:movies", movie_post["description"])
        self.assertIn("403", movie_post["responses"])
        self.assertIn("422", movie_post["responses"])
        self.assertIn("400", self.spec["paths"]["/v1/movies"]["get"]["responses"])
        self.assertIn("multipart/form-data", self.spec["paths"]["/v1/images"]["post"]["requestBody"]["content"])

    def test_public_operations_say_so(self):
        for path, method in OPEN_OPERATIONS:
            with self.subTest(path=path, method=method):
                self.assertEqual(self.spec["paths"][path][method]["security"], [])

    def test_operation_ids_are_unique_and_readable(self):
        ids = {(path, method): operation["operationId"] for path, method, operation in self.operations()}
        self.assertEqual(len(set(ids.values())), len(ids))
        for operation_id in ids.values():
            self.assertRegex(operation_id, r"^[a-z][A-Za-z0-9]+$")

    def test_every_operation_id_clients_were_built_on_is_kept(self):
        """Each route declares its ids (app.http.Blueprint.route); generated clients call these names,
        so none may change or go. A new operation adds its line here."""
        served = {
            path: {m: op["operationId"] for m, op in item.items() if m != "parameters"}
            for path, item in self.spec["paths"].items()
        }
        for path, ids in KEPT_OPERATION_IDS.items():
            with self.subTest(path=path):
                self.assertEqual(served.get(path, {}) | ids, served.get(path, {}))

    def test_every_operation_with_input_lists_its_4xx_answers(self):
        """Stands in for Redocly's operation-4xx-response, switched off only for operations without input."""
        for path, method, operation in self.operations():
            statuses = set(operation["responses"])
            with self.subTest(path=path, method=method):
                if "{" in path:
                    self.assertIn("404", statuses)
                if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
                    self.assertIn("400", statuses)
                if "requestBody" in operation:
                    self.assertLessEqual({"413", "415", "422"}, statuses)
                if (path, method) not in INPUTLESS_OPERATIONS:
                    self.assertTrue(any(status.startswith("4") for status in statuses))

    def test_info_servers_and_version(self):
        info = self.spec["info"]
        self.assertEqual(info["version"], RELEASE_VERSION)
        self.assertTrue(info["description"])
        self.assertTrue(info["contact"]["name"])
        self.assertTrue(info["license"]["name"])
        self.assertEqual(self.spec["servers"][0]["url"], "/")
        for path in ("/", "/v1"):
            self.assertEqual(self.client.get(path).json["version"], RELEASE_VERSION)

    def test_every_array_has_items(self):
        def walk(node, where):
            if isinstance(node, dict):
                if node.get("type") == "array":
                    self.assertIn("items", node, where)
                for key, value in node.items():
                    walk(value, f"{where}/{key}")
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{where}/{index}")

        walk(self.spec, "#")

    def test_response_schemas_require_every_field_and_requests_hold_no_read_only_field(self):
        schemas = self.spec["components"]["schemas"]
        for name in ("Bucket", "Item", "Actor", "Movie", "Image", "User", "Pagination", "Token", "OAuthToken"):
            with self.subTest(schema=name):
                self.assertEqual(set(schemas[name]["required"]), set(schemas[name]["properties"]))
        self.assertEqual(set(schemas["Error"]["required"]), {"success", "error", "message"})
        self.assertNotIn("actor_ids", schemas["Movie"]["properties"])
        self.assertEqual(schemas["BucketInput"]["required"], ["name"])
        self.assertEqual(set(schemas["BucketInput"]["properties"]), {"name"})
        self.assertNotIn("id", schemas["ImagePatch"]["properties"])
        create = self.spec["paths"]["/v1/buckets"]["post"]["requestBody"]["content"]["application/json"]
        self.assertEqual(create["schema"]["$ref"], "#/components/schemas/BucketInput")

    def test_response_headers_are_documented(self):
        def headers(response):
            if "$ref" in response:
                response = self.spec["components"]["responses"][response["$ref"].rpartition("/")[2]]
            return set(response.get("headers", {}))

        for path, method, operation in self.operations():
            for status, response in operation["responses"].items():
                with self.subTest(path=path, method=method, status=status):
                    self.assertIn("X-Request-ID", headers(response))
                    if status == "201":
                        self.assertIn("Location", headers(response))
                    if status in ("429", "503"):
                        self.assertIn("Retry-After", headers(response))
                    if status == "401":
                        self.assertIn("WWW-Authenticate", headers(response))
        self.assertIn("Link", headers(self.spec["paths"]["/v1/buckets"]["get"]["responses"]["200"]))
        image_file = self.spec["paths"]["/v1/images/{image_id}/file"]["get"]["responses"]["200"]
        self.assertEqual(set(image_file["content"]), {"image/jpeg", "image/png", "image/gif", "image/webp"})
        self.assertLessEqual({"ETag", "Cache-Control", "Content-Disposition"}, headers(image_file))

    def test_every_shared_error_answer_shows_its_own_status(self):
        for name, response in self.spec["components"]["responses"].items():
            with self.subTest(name=name):
                example = response["content"]["application/json"]["example"]
                status = 500 if name == "DEFAULT_ERROR" else HTTPStatus[name].value
                self.assertEqual((example["success"], example["error"]), (False, status))
                self.assertNotEqual(example["message"], "Resource not found") if status != 404 else None
        unauthorized = self.spec["components"]["responses"]["UNAUTHORIZED"]["content"]["application/json"]
        self.assertEqual(unauthorized["example"]["message"], "Invalid token. Please log in again.")
        unavailable = self.spec["components"]["responses"]["SERVICE_UNAVAILABLE"]["content"]["application/json"]
        self.assertEqual(unavailable["example"]["error"], 503)

    def test_docs_page_is_served_from_the_app(self):
        page = self.client.get("/docs")
        self.assertEqual(page.status_code, 200)
        html = page.get_data(as_text=True)
        self.assertNotIn("//cdn", html)
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            with self.subTest(asset=asset):
                self.assertTrue(asset.startswith("/docs/"), asset)
                self.assertEqual(self.client.get(asset).status_code, 200)


class ExternalIssuerSchemeTests(APITestCase):
    app_overrides = {"OIDC_ISSUER": "https://issuer.example/", "OIDC_AUDIENCE": "api"}

    def test_the_external_scheme_is_offered_once_an_issuer_is_set(self):
        spec = self.client.get("/v1/openapi.json").json
        scheme = spec["components"]["securitySchemes"]["oidcBearer"]
        self.assertEqual(scheme["scheme"], "bearer")
        self.assertIn("JWKS", scheme["description"])
        security = spec["paths"]["/v1/buckets"]["get"]["security"]
        self.assertEqual(security, [{"bearerAuth": []}, {"oauth2Password": []}, {"oidcBearer": []}])


class DocsPageTests(APITestCase):
    def test_the_page_runs_only_its_own_files_and_keeps_no_token(self):
        page = self.client.get("/docs")
        policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
        self.assertEqual(policy["default-src"], "'none'")
        self.assertEqual(policy["script-src"], "'self'")
        self.assertEqual(policy["style-src"], "'self'")
        self.assertEqual(policy["frame-ancestors"], "'none'")
        self.assertNotIn("unsafe", page.headers["Content-Security-Policy"])
        html = page.get_data(as_text=True)
        self.assertEqual(re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html), [], "no inline script")
        self.assertNotIn("style=", html)
        init = re.search(r'<script src="(/docs/[^"]*init\.js)"', html).group(1)
        script = self.client.get(init).get_data(as_text=True)
        self.assertNotRegex(script, r"persistAuthorization\s*:\s*true")
        for storage in ("localStorage", "sessionStorage", "document.cookie"):
            self.assertNotIn(storage, script)
