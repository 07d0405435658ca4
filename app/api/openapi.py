"""The OpenAPI document: flask-smorest derives it from the routes and schemas; this module completes it.

What every operation shares is filled in here, once, rather than on each route:
- its operationId, as its route declares it (`@blp.route("", operation_ids={"get": "listBuckets"})`);
- `security: []` on public operations;
- the 4xx answers its inputs can produce (a body: 400/413/415/422, query parameters: 400, a path id: 404,
  a token: 401) and 503 (the database is down);
- the response headers (X-Request-ID everywhere, Location on 201, Link on pages, Retry-After on 429/503, ...);
- concrete media types for image bytes.
`finish()` then makes the schemas say what a client can rely on: a component used both ways is split into
a request form without the read-only fields (`BucketInput`) and the response form, whose fields are all
`required` (every field is always sent, possibly as null).
"""

from copy import deepcopy
from http import HTTPStatus

from apispec import BasePlugin

from app import oidc
from app.api.apidoc import notes_of
from app.api.conditional import IF_NONE_MATCH, PRECONDITION_FAILED
from app.auth import MSG_INVALID
from app.errors import DEFAULT_MESSAGES

DESCRIPTION = """One JSON REST API for accounts, per-user buckets and their items, a shared image repository,
and a casting catalogue of actors and movies.

Every answer is JSON (except image bytes and the docs page). Success: `{"success": true, ...}` with the
resource under a named key; errors: `{"success": false, "error": <status>, "message": "..."}`, plus
`errors` per field on validation failures. A JSON body with the same key twice is 400
(`Duplicate key in JSON: <key>`). Sign in with `POST /v1/auth/login` (JSON) or
`POST /v1/auth/token` (OAuth2 password grant, what the docs page's Authorize button uses), then send
`Authorization: Bearer <access token>`.

A JSON answer over 1 KiB is gzip-compressed for a client that sends `Accept-Encoding: gzip`
(`Content-Encoding: gzip`, `Vary: Accept-Encoding`); its ETag then ends in `:gzip`, and
`If-None-Match` or `If-Match` take either form. Rate-limited operations answer `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset`."""

SPEC_OPTIONS = {
    "info": {
        "description": DESCRIPTION,
        "contact": {"name": "API maintainers", "email": "api@example.com"},
        "license": {"name": "MIT", "url": "https://opensource.org/license/mit"},
    },
    "servers": [{"url": "/", "description": "The server that serves this document"}],
}

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token of this API (HS256).",
    },
    "oauth2Password": {
        "type": "oauth2",
        "description": "The OAuth2 password grant (RFC 6749 section 4.3): the docs page signs in with it.",
        "flows": {"password": {"tokenUrl": "/v1/auth/token", "scopes": {}}},
    },
    "oidcBearer": oidc.SECURITY_SCHEME,
}
OIDC_SCHEME = "oidcBearer"

# Response fields that are not always sent.
OPTIONAL_RESPONSE_FIELDS = {"Error": {"errors"}}

HEADERS = {
    "X-Request-ID": ("The request id (yours if you sent a valid one); server logs carry it", {"type": "string"}),
    "X-Content-Type-Options": ("Always `nosniff`", {"type": "string", "enum": ["nosniff"]}),
    "Location": ("The URL of what was created (the first image of an upload)", {"type": "string"}),
    "Link": ("RFC 8288 links to the next, previous, first and last pages", {"type": "string"}),
    "Cache-Control": (
        "`no-store` on answers that carry tokens and on /v1/auth/me, `private, no-cache` on other "
        "authenticated JSON, `private` on image bytes",
        {"type": "string"},
    ),
    "ETag": (
        "A strong validator; send it back in If-None-Match (a gzip-compressed answer's ends in `:gzip`: either works)",
        {"type": "string"},
    ),
    "Content-Disposition": ('`inline; filename="<id>.<extension of the detected type>"`', {"type": "string"}),
    "Retry-After": ("Seconds to wait before trying again", {"type": "integer", "minimum": 0}),
    "WWW-Authenticate": ("Always `Bearer`", {"type": "string"}),
    "X-RateLimit-Limit": ("Requests the current rate-limit window allows", {"type": "integer", "minimum": 0}),
    "X-RateLimit-Remaining": ("Requests left in the current window", {"type": "integer", "minimum": 0}),
    "X-RateLimit-Reset": (
        "When the current window resets: Unix time, in seconds (as Flask-Limiter and GitHub send it)",
        {"type": "integer", "minimum": 0},
    ),
}
# What the shared error answers (components/responses) show as their example, by status; the
# others show DEFAULT_MESSAGES'. The Error schema's own examples are a 404's.
ERROR_EXAMPLES = {
    400: {"message": "Request body is not valid JSON"},
    401: {"message": MSG_INVALID},
    403: {"message": "Permission post:images is required"},
    409: {"message": "You already have a bucket with this name"},
    412: {"message": PRECONDITION_FAILED},
    413: {"message": "JSON body is larger than 1048576 bytes"},
    415: {"message": "Content-Type must be application/json"},
    422: {"message": "Validation failed", "errors": {"name": ["Missing data for required field."]}},
    500: {"message": "Internal server error (request id 3f1c9e0b6d2a4e8f9a7b5c1d0e2f4a6b)"},
}
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
# Headers of the shared error answers (components/responses), by status.
ERROR_HEADERS = {
    "UNAUTHORIZED": ("WWW-Authenticate",),
    "TOO_MANY_REQUESTS": ("Retry-After", *RATE_LIMIT_HEADERS),
    "SERVICE_UNAVAILABLE": ("Retry-After",),
}

# Public operations of /v1/auth: their answers carry tokens or the account (so Cache-Control: no-store).
TOKEN_OPERATIONS = {"register", "login", "refresh", "issueToken", "verifyEmail", "forgotPassword", "resetPassword"}
JSON = "application/json"
OPENAPI_ENDPOINT = "api-docs.openapi_json"
BINARY = {"schema": {"type": "string", "format": "binary"}}


def _header_refs(*names):
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _error_statuses(operation, path):
    """The 4xx (and 503) answers an operation's inputs can produce."""
    statuses = {503}
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        statuses |= {413, 415, 422}
    if JSON in body or any(parameter.get("in") == "query" for parameter in operation.get("parameters", [])):
        statuses.add(400)
    if "{" in path:
        statuses.add(404)
    if operation["security"]:
        statuses.add(401)
    return statuses


def _success_headers(status, operation):
    names = ["X-Request-ID", "X-Content-Type-Options"]
    if status == "201":
        names.append("Location")
    if status == "200" and any(parameter.get("name") == "per_page" for parameter in operation.get("parameters", [])):
        names.append("Link")
    if operation["security"] or operation["operationId"] in TOKEN_OPERATIONS:
        names.append("Cache-Control")
    if "429" in operation["responses"]:
        names += RATE_LIMIT_HEADERS
    if status == "304" or any(
        media.startswith("image/") for media in operation["responses"][status].get("content", {})
    ):
        names += ["ETag", "Cache-Control", "Content-Disposition"] if status != "304" else ["ETag", "Cache-Control"]
    return _header_refs(*dict.fromkeys(names))


def _add_notes(operation, method, notes):
    """What a view's decorators noted (app.api.apidoc), in the operation."""
    responses = operation["responses"]
    for noted in notes:
        for parameter in noted["parameters"]:
            operation.setdefault("parameters", []).append(deepcopy(parameter))
        for status, response in noted["responses"].items():
            responses.setdefault(status, deepcopy(response))
        if noted["success_headers"]:
            success = responses.setdefault(201 if method == "post" else 200, {})
            success.setdefault("headers", {}).update(deepcopy(noted["success_headers"]))


def complete_operation(operation, method, path, endpoint, operation_id, notes=()):
    _add_notes(operation, method, notes)
    operation.setdefault("operationId", operation_id)
    if "security" not in operation:
        operation["security"] = []
        operation.setdefault("description", "Public: needs no token.")
    responses = operation["responses"] = {str(status): answer for status, answer in operation["responses"].items()}
    statuses = _error_statuses(operation, path)
    if endpoint == OPENAPI_ENDPOINT:
        statuses.discard(503)  # served from memory
    for status in sorted(statuses):
        responses.setdefault(str(status), HTTPStatus(status).name)  # flask-smorest's shared error answers
    for status, response in responses.items():
        if not isinstance(response, dict) or "$ref" in response:
            continue  # a shared answer: its headers are set once, in finish()
        if status == "304" and not any(param["name"] == "If-None-Match" for param in operation.get("parameters", [])):
            operation.setdefault("parameters", []).append(IF_NONE_MATCH)
        response["headers"] = {**_success_headers(status, operation), **response.get("headers", {})}


def binary(description, media_types):
    """A response whose body is bytes of one of `media_types`."""
    return {"description": description, "content": {media: deepcopy(BINARY) for media in media_types}}


class OperationsPlugin(BasePlugin):
    """Completes every operation of `app` as flask-smorest registers it."""

    def __init__(self, app):
        self.app = app

    def init_spec(self, spec):
        self.spec = spec

    def operation_helper(self, path=None, operations=None, **kwargs):
        endpoint = kwargs["rule"].endpoint
        view = self.app.view_functions.get(endpoint)
        for method, operation in operations.items():
            notes = notes_of(getattr(view.view_class, method) if hasattr(view, "view_class") else view)
            complete_operation(operation, method, path, endpoint, self._declared_id(endpoint, method, operation), notes)

    def _declared_id(self, endpoint, method, operation):
        """The operationId the route declares (app.http.Blueprint.route); a path this app adds to the
        document itself (the document's own) carries it in its operation."""
        blueprint, _, name = endpoint.rpartition(".")
        declared = getattr(self.app.blueprints[blueprint], "operation_ids", {}).get(name, {})
        if method not in declared and "operationId" not in operation:
            raise LookupError(f"{endpoint}: declare the operationId of {method.upper()} in its route's operation_ids")
        return declared.get(method)


def spec_kwargs(app):
    """What `Api.init_app` needs to build the document of `app` that this module completes."""
    return {"extra_plugins": [OperationsPlugin(app)], **SPEC_OPTIONS}


def register_security_schemes(spec, with_oidc):
    """The security schemes; the external issuer's only when one is configured (OIDC_ISSUER), and
    operations then stop naming it (the docs page would offer a scheme that opens nothing)."""
    for name, scheme in SECURITY_SCHEMES.items():
        if name != OIDC_SCHEME or with_oidc:
            spec.components.security_scheme(name, scheme)
    if not with_oidc:
        for operation in _operations(spec.to_dict()["paths"]):
            security = operation.get("security")
            if security:
                security[:] = [requirement for requirement in security if OIDC_SCHEME not in requirement]


# -- finishing the document once every route is in -------------------------


def _refs(node):
    """Names of the schemas `node` refers to, directly."""
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        found = {ref.rpartition("/")[2]} if ref.startswith("#/components/schemas/") else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _closure(names, schemas):
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in seen and name in schemas:
            seen.add(name)
            todo += _refs(schemas[name])
    return seen


def _without(schema, flag):
    """A copy of an object schema without the properties marked `flag` (readOnly or writeOnly)."""
    result = deepcopy(schema)
    dropped = {name for name, prop in result.get("properties", {}).items() if prop.get(flag)}
    for name in dropped:
        del result["properties"][name]
    required = [name for name in result.get("required", []) if name not in dropped]
    if required:
        result["required"] = required
    else:
        result.pop("required", None)
    return result


def _operations(paths):
    for item in paths.values():
        yield from (operation for key, operation in item.items() if key != "parameters")


def _request_media(paths):
    """The request bodies' media objects whose schema is a component."""
    for operation in _operations(paths):
        for media in operation.get("requestBody", {}).get("content", {}).values():
            if "$ref" in media.get("schema", {}):
                yield media


def finish(spec):
    """Request and response forms of the schemas; headers of the shared answers. Call once, at the end."""
    document = spec.to_dict()
    schemas = spec.components.schemas
    request_media = list(_request_media(document["paths"]))
    answers = [operation["responses"] for operation in _operations(document["paths"])]
    responses = _closure(_refs(answers) | _refs(spec.components.responses_lazy), schemas)
    for media in request_media:
        name = media["schema"]["$ref"].rpartition("/")[2]
        if name in responses:
            request_name = f"{name}Input"
            schemas.setdefault(request_name, _without(schemas[name], "readOnly"))
            media["schema"] = {"$ref": f"#/components/schemas/{request_name}"}
        else:
            schemas[name] = _without(schemas[name], "readOnly")
    for name in responses:
        schema = _without(schemas[name], "writeOnly")
        for field, prop in schema.get("properties", {}).items():
            prop.pop("readOnly", None)
            if list(prop) == ["allOf"] and len(prop["allOf"]) == 1:  # apispec's wrapper for a read-only $ref
                schema["properties"][field] = prop["allOf"][0]
        properties = list(schema.get("properties", {}))
        required = [field for field in properties if field not in OPTIONAL_RESPONSE_FIELDS.get(name, ())]
        if required:
            schema["required"] = required
        schemas[name] = schema
    used = _closure(responses | _refs(request_media), schemas)
    for name in set(schemas) - used:
        del schemas[name]  # e.g. flask-smorest's own pagination schema, which our envelopes do not use
    for name, response in {**spec.components.responses_lazy, **spec.components.responses}.items():
        extra = ("X-Request-ID", "X-Content-Type-Options", *ERROR_HEADERS.get(name, ()))
        response["headers"] = {**_header_refs(*extra), **response.get("headers", {})}
        if JSON in response.get("content", {}):
            status = 500 if name == "DEFAULT_ERROR" else HTTPStatus[name].value
            example = {"success": False, "error": status, "message": DEFAULT_MESSAGES.get(status, "Error")}
            response["content"][JSON]["example"] = example | ERROR_EXAMPLES.get(status, {})
    for name, (description, schema) in HEADERS.items():
        spec.components.header(name, {"description": description, "schema": schema})
