"""Writes postman/collection.json: every endpoint, in the order a person would try them.

Run `python postman/build_collection.py` after changing an endpoint; CI runs the
result with newman against a live server.
"""

import json
from pathlib import Path

HERE = Path(__file__).parent

OK = "pm.test('{status}', () => pm.response.to.have.status({status}));"
NUMERIC_VARIABLES = ("actorId",)
SENT = "Verification e-mail sent"
INVALID_TOKEN = "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Invalid or expired token'));"
FORGOT_ANSWER = (
    "pm.test('same answer', () => pm.expect(pm.response.json()).to.eql("
    "{success: true, message: 'If that address has an account, a reset link is on its way'}));"
)
JSON_ENVELOPE = "pm.test('envelope', () => pm.expect(pm.response.json().success).to.eql({success}));"


def request(
    name,
    method,
    path,
    *,
    token="token",
    body=None,
    status=200,
    save=None,
    checks=(),
    form=None,
    raw_check=False,
    headers=None,
):
    tests = [OK.format(status=status)]
    if not raw_check and status not in (204, 304):
        tests.append(JSON_ENVELOPE.format(success="true" if status < 400 else "false"))
    for variable, expression in (save or {}).items():
        tests.append(f"pm.collectionVariables.set('{variable}', {expression});")
    tests += list(checks)
    item = {
        "name": name,
        "event": [{"listen": "test", "script": {"type": "text/javascript", "exec": tests}}],
        "request": {
            "method": method,
            "header": [{"key": key, "value": value} for key, value in (headers or {}).items()],
            "url": {
                "raw": "{{baseUrl}}" + path,
                "host": ["{{baseUrl}}"],
                "path": [p for p in path.split("?")[0].split("/") if p],
            },
        },
    }
    if "?" in path:
        item["request"]["url"]["query"] = [
            {"key": k, "value": v} for k, v in (pair.split("=") for pair in path.split("?")[1].split("&"))
        ]
    if token:
        item["request"]["auth"] = {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{" + token + "}}", "type": "string"}],
        }
    else:
        item["request"]["auth"] = {"type": "noauth"}
    if body is not None:
        item["request"]["header"].append({"key": "Content-Type", "value": "application/json"})
        raw = json.dumps(body, indent=2)
        for variable in NUMERIC_VARIABLES:  # ids are JSON numbers, not strings
            raw = raw.replace(f'"{{{{{variable}}}}}"', f"{{{{{variable}}}}}")
        item["request"]["body"] = {"mode": "raw", "raw": raw}
    if form is not None:
        item["request"]["body"] = {"mode": "formdata", "formdata": form}
    return item


def folder(name, *items):
    return {"name": name, "item": list(items)}


def build():
    me = "{{userEmail}}"
    return {
        "info": {
            "name": "Buckets, Images & Casting API",
            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
            "description": "Every endpoint of /v1, in order. Set baseUrl, adminEmail and adminPassword in the environment.",
        },
        "event": [
            {
                "listen": "prerequest",
                "script": {
                    "type": "text/javascript",
                    "exec": [
                        "if (!pm.collectionVariables.get('userEmail')) {",
                        "  pm.collectionVariables.set('userEmail', `postman-${Date.now()}-${Math.floor(Math.random()*1e6)}@example.com`);",
                        "}",
                    ],
                },
            }
        ],
        "variable": [{"key": "userEmail", "value": ""}],
        "item": [
            folder(
                "Service",
                request(
                    "Index",
                    "GET",
                    "/",
                    token=None,
                    checks=["pm.test('links docs', () => pm.expect(pm.response.json().links.docs).to.eql('/docs'));"],
                ),
                request("API v1 index", "GET", "/v1", token=None),
                request(
                    "Health",
                    "GET",
                    "/v1/health",
                    token=None,
                    checks=["pm.test('db ok', () => pm.expect(pm.response.json().database).to.eql('ok'));"],
                ),
                request(
                    "OpenAPI document",
                    "GET",
                    "/v1/openapi.json",
                    token=None,
                    raw_check=True,
                    checks=["pm.test('openapi 3', () => pm.expect(pm.response.json().openapi).to.match(/^3\\./));"],
                ),
            ),
            folder(
                "Auth",
                request(
                    "Register",
                    "POST",
                    "/v1/auth/register",
                    token=None,
                    status=201,
                    body={"email": me, "password": "postman password"},
                    save={
                        "token": "pm.response.json().auth_token",
                        "refreshToken": "pm.response.json().refresh_token",
                        "userId": "pm.response.json().user.id",
                    },
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Successfully registered'));"
                    ],
                ),
                request(
                    "Register again is 409",
                    "POST",
                    "/v1/auth/register",
                    token=None,
                    status=409,
                    body={"email": me, "password": "postman password"},
                ),
                request(
                    "Login",
                    "POST",
                    "/v1/auth/login",
                    token=None,
                    body={"email": me, "password": "postman password"},
                    save={"token": "pm.response.json().auth_token", "refreshToken": "pm.response.json().refresh_token"},
                    checks=["pm.test('bearer', () => pm.expect(pm.response.json().token_type).to.eql('Bearer'));"],
                ),
                request(
                    "Login with a wrong password is 401",
                    "POST",
                    "/v1/auth/login",
                    token=None,
                    status=401,
                    body={"email": me, "password": "wrong password"},
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Invalid email or password'));"
                    ],
                ),
                request(
                    "Me",
                    "GET",
                    "/v1/auth/me",
                    checks=["pm.test('role user', () => pm.expect(pm.response.json().user.role).to.eql('user'));"],
                ),
                request(
                    "Refresh (rotates)",
                    "POST",
                    "/v1/auth/refresh",
                    token=None,
                    body={"refresh_token": "{{refreshToken}}"},
                    save={
                        "token": "pm.response.json().auth_token",
                        "oldRefreshToken": "pm.collectionVariables.get('refreshToken')",
                        "refreshToken": "pm.response.json().refresh_token",
                    },
                ),
                request(
                    "Reusing a refresh token is 401",
                    "POST",
                    "/v1/auth/refresh",
                    token=None,
                    status=401,
                    body={"refresh_token": "{{oldRefreshToken}}"},
                ),
                request(
                    "Change password",
                    "PUT",
                    "/v1/auth/password",
                    body={"current_password": "postman password", "new_password": "postman password 2"},
                    save={"token": "pm.response.json().auth_token", "refreshToken": "pm.response.json().refresh_token"},
                ),
                request(
                    "Login on a second device",
                    "POST",
                    "/v1/auth/login",
                    token=None,
                    body={"email": me, "password": "postman password 2"},
                    save={"secondToken": "pm.response.json().auth_token"},
                ),
                request(
                    "Sessions of the second device",
                    "GET",
                    "/v1/auth/sessions",
                    token="secondToken",
                    save={"secondSessionId": "pm.response.json().sessions.find((s) => s.current).id"},
                    checks=[
                        "pm.test('two sessions', () => pm.expect(pm.response.json().sessions.length).to.eql(2));",
                        "pm.test('one current', () => pm.expect(pm.response.json().sessions.filter((s) => s.current).length).to.eql(1));",
                    ],
                ),
                request(
                    "End the second device's session",
                    "DELETE",
                    "/v1/auth/sessions/{{secondSessionId}}",
                    checks=[
                        "pm.test('deleted', () => pm.expect(pm.response.json().deleted).to.eql(Number(pm.collectionVariables.get('secondSessionId'))));"
                    ],
                ),
                request(
                    "A token of an ended session is 401",
                    "GET",
                    "/v1/auth/me",
                    token="secondToken",
                    status=401,
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Token has been revoked. Please log in again.'));"
                    ],
                ),
                request("Ending it again is 404", "DELETE", "/v1/auth/sessions/{{secondSessionId}}", status=404),
                request(
                    "No token is 401",
                    "GET",
                    "/v1/auth/me",
                    token=None,
                    status=401,
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Provide an authorization header'));"
                    ],
                ),
            ),
            folder(
                "E-mail verification and password reset",
                request(
                    "Me: not verified yet",
                    "GET",
                    "/v1/auth/me",
                    checks=[
                        "pm.test('unverified', () => pm.expect(pm.response.json().user.email_verified).to.eql(false));"
                    ],
                ),
                request(
                    "Ask for a verification mail",
                    "POST",
                    "/v1/auth/email/verify/request",
                    status=202,
                    checks=[f"pm.test('message', () => pm.expect(pm.response.json().message).to.eql({SENT!r}));"],
                ),
                request(
                    "Verify with a token that was never mailed is 400",
                    "POST",
                    "/v1/auth/email/verify",
                    token=None,
                    status=400,
                    body={"token": "not-a-mailed-token"},
                    checks=[INVALID_TOKEN],
                ),
                request(
                    "Forgot password",
                    "POST",
                    "/v1/auth/password/forgot",
                    token=None,
                    status=202,
                    body={"email": me},
                    checks=[FORGOT_ANSWER],
                ),
                request(
                    "Forgot password of an unknown address: the same answer",
                    "POST",
                    "/v1/auth/password/forgot",
                    token=None,
                    status=202,
                    body={"email": "nobody-{{$randomUUID}}@example.com"},
                    checks=[FORGOT_ANSWER],
                ),
                request(
                    "Reset with a short password is 422",
                    "POST",
                    "/v1/auth/password/reset",
                    token=None,
                    status=422,
                    body={"token": "not-a-mailed-token", "new_password": "short"},
                ),
                request(
                    "Reset with a token that was never mailed is 400",
                    "POST",
                    "/v1/auth/password/reset",
                    token=None,
                    status=400,
                    body={"token": "not-a-mailed-token", "new_password": "postman password 3"},
                    checks=[INVALID_TOKEN],
                ),
            ),
            folder(
                "Buckets and items",
                request(
                    "Create bucket",
                    "POST",
                    "/v1/buckets",
                    status=201,
                    body={"name": "Postman trip"},
                    save={"bucketId": "pm.response.json().bucket.id"},
                    checks=[
                        "pm.test('Location', () => pm.expect(pm.response.headers.get('Location')).to.include('/v1/buckets/'));"
                    ],
                ),
                request("Duplicate bucket is 409", "POST", "/v1/buckets", status=409, body={"name": "postman TRIP"}),
                request("Invalid bucket is 422", "POST", "/v1/buckets", status=422, body={"name": "   "}),
                request(
                    "List buckets",
                    "GET",
                    "/v1/buckets?page=1&per_page=20&sort=-created_at",
                    checks=[
                        "pm.test('pagination', () => pm.expect(pm.response.json().pagination.total).to.be.at.least(1));"
                    ],
                ),
                request("Get bucket", "GET", "/v1/buckets/{{bucketId}}"),
                request("Replace bucket", "PUT", "/v1/buckets/{{bucketId}}", body={"name": "Postman journey"}),
                request("Rename bucket", "PATCH", "/v1/buckets/{{bucketId}}", body={"name": "Postman voyage"}),
                request(
                    "Add item",
                    "POST",
                    "/v1/buckets/{{bucketId}}/items",
                    status=201,
                    body={"name": "Pack", "description": "socks", "done": False},
                    save={"itemId": "pm.response.json().item.id"},
                ),
                request("List items", "GET", "/v1/buckets/{{bucketId}}/items?done=false"),
                request(
                    "Add a second item", "POST", "/v1/buckets/{{bucketId}}/items", status=201, body={"name": "Unpack"}
                ),
                request(
                    "List items one per page",
                    "GET",
                    "/v1/buckets/{{bucketId}}/items?per_page=1&sort=name",
                    save={"itemCursor": "pm.response.json().pagination.next_cursor"},
                    checks=[
                        "pm.test('next_cursor', () => pm.expect(pm.response.json().pagination.next_cursor).to.be.a('string'));"
                    ],
                ),
                request(
                    "Next page by cursor",
                    "GET",
                    "/v1/buckets/{{bucketId}}/items?per_page=1&sort=name&cursor={{itemCursor}}",
                    checks=[
                        "pm.test('cursor mode', () => pm.expect(pm.response.json().pagination.total).to.eql(null));",
                        "pm.test('last page', () => pm.expect(pm.response.json().pagination.next_cursor).to.eql(null));",
                        "pm.test('Unpack', () => pm.expect(pm.response.json().items[0].name).to.eql('Unpack'));",
                    ],
                ),
                request(
                    "Cursor of another sort is 400",
                    "GET",
                    "/v1/buckets/{{bucketId}}/items?per_page=1&sort=-name&cursor={{itemCursor}}",
                    status=400,
                ),
                request("Get item", "GET", "/v1/buckets/{{bucketId}}/items/{{itemId}}"),
                request("Replace item", "PUT", "/v1/buckets/{{bucketId}}/items/{{itemId}}", body={"name": "Pack bags"}),
                request(
                    "Tick item",
                    "PATCH",
                    "/v1/buckets/{{bucketId}}/items/{{itemId}}",
                    body={"done": True},
                    checks=["pm.test('done', () => pm.expect(pm.response.json().item.done).to.eql(true));"],
                ),
                request("Delete item", "DELETE", "/v1/buckets/{{bucketId}}/items/{{itemId}}"),
                request(
                    "Delete bucket",
                    "DELETE",
                    "/v1/buckets/{{bucketId}}",
                    checks=[
                        "pm.test('deleted id', () => pm.expect(pm.response.json().deleted).to.eql(pm.collectionVariables.get('bucketId')));"
                    ],
                ),
                request("Deleted bucket is 404", "GET", "/v1/buckets/{{bucketId}}", status=404),
            ),
            folder(
                "Safe retries and concurrent edits",
                request(
                    "Create with an Idempotency-Key",
                    "POST",
                    "/v1/buckets",
                    status=201,
                    headers={"Idempotency-Key": "create-{{userEmail}}"},
                    body={"name": "Postman retry"},
                    save={"retryBucketId": "pm.response.json().bucket.id", "etag": "pm.response.headers.get('ETag')"},
                ),
                request(
                    "Retry gets the same answer, nothing created",
                    "POST",
                    "/v1/buckets",
                    status=201,
                    headers={"Idempotency-Key": "create-{{userEmail}}"},
                    body={"name": "Postman retry"},
                    checks=[
                        "pm.test('replayed', () => pm.expect(pm.response.headers.get('Idempotent-Replayed')).to.eql('true'));",
                        "pm.test('same bucket', () => pm.expect(pm.response.json().bucket.id).to.eql(pm.collectionVariables.get('retryBucketId')));",
                    ],
                ),
                request(
                    "Same key, other body is 422",
                    "POST",
                    "/v1/buckets",
                    status=422,
                    headers={"Idempotency-Key": "create-{{userEmail}}"},
                    body={"name": "Something else"},
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Idempotency-Key was used with a different request'));"
                    ],
                ),
                request(
                    "Unchanged since the ETag is 304",
                    "GET",
                    "/v1/buckets/{{retryBucketId}}",
                    status=304,
                    raw_check=True,
                    headers={"If-None-Match": "{{etag}}"},
                ),
                request(
                    "Edit with If-Match",
                    "PATCH",
                    "/v1/buckets/{{retryBucketId}}",
                    headers={"If-Match": "{{etag}}"},
                    body={"name": "Postman edited on device A"},
                    save={"newEtag": "pm.response.headers.get('ETag')"},
                ),
                request(
                    "Lost update refused: stale If-Match is 412",
                    "PATCH",
                    "/v1/buckets/{{retryBucketId}}",
                    status=412,
                    headers={"If-Match": "{{etag}}"},
                    body={"name": "Postman edited on device B"},
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Precondition failed: the resource has changed'));"
                    ],
                ),
                request(
                    "Delete with the current ETag",
                    "DELETE",
                    "/v1/buckets/{{retryBucketId}}",
                    headers={"If-Match": "{{newEtag}}"},
                ),
            ),
            folder(
                "Casting (as admin)",
                request(
                    "Admin login",
                    "POST",
                    "/v1/auth/login",
                    token=None,
                    body={"email": "{{adminEmail}}", "password": "{{adminPassword}}"},
                    save={"adminToken": "pm.response.json().auth_token"},
                ),
                request("Plain users cannot list actors", "GET", "/v1/actors", status=403),
                request(
                    "Create actor",
                    "POST",
                    "/v1/actors",
                    token="adminToken",
                    status=201,
                    body={"name": "Postman Actor", "age": 41, "gender": "female"},
                    save={"actorId": "pm.response.json().actor.id"},
                ),
                request("List actors", "GET", "/v1/actors?gender=female&min_age=18", token="adminToken"),
                request("Get actor", "GET", "/v1/actors/{{actorId}}", token="adminToken"),
                request("Update actor", "PATCH", "/v1/actors/{{actorId}}", token="adminToken", body={"age": 42}),
                request(
                    "Create movie",
                    "POST",
                    "/v1/movies",
                    token="adminToken",
                    status=201,
                    body={
                        "title": "Postman Movie {{$timestamp}}",
                        "release_date": "2020-8-12",
                        "actor_ids": ["{{actorId}}"],
                    },
                    save={"movieId": "pm.response.json().movie.id"},
                    checks=[
                        "pm.test('cast', () => pm.expect(pm.response.json().movie.actors.length).to.eql(1));",
                        "pm.test('date', () => pm.expect(pm.response.json().movie.release_date).to.eql('2020-08-12'));",
                    ],
                ),
                request(
                    "List movies",
                    "GET",
                    "/v1/movies?released_after=2020-01-01&actor_id={{actorId}}",
                    token="adminToken",
                ),
                request("Get movie", "GET", "/v1/movies/{{movieId}}", token="adminToken"),
                request("Update movie", "PATCH", "/v1/movies/{{movieId}}", token="adminToken", body={"actor_ids": []}),
                request("Movie cast", "GET", "/v1/movies/{{movieId}}/actors", token="adminToken"),
                request("Actor's movies", "GET", "/v1/actors/{{actorId}}/movies", token="adminToken"),
                request("Delete movie", "DELETE", "/v1/movies/{{movieId}}", token="adminToken"),
                request("Delete actor", "DELETE", "/v1/actors/{{actorId}}", token="adminToken"),
            ),
            folder(
                "Images",
                request(
                    "Upload image",
                    "POST",
                    "/v1/images",
                    token="adminToken",
                    status=201,
                    form=[
                        {"key": "images", "type": "file", "src": "fixtures/sample.png"},
                        {"key": "title", "type": "text", "value": "Postman sample"},
                        {"key": "tags", "type": "text", "value": "postman, sample"},
                    ],
                    save={"imageId": "pm.response.json().images[0].id"},
                    checks=[
                        "pm.test('png', () => pm.expect(pm.response.json().images[0].content_type).to.eql('image/png'));"
                    ],
                ),
                # Read back by the account that uploaded it: with read replicas, another account
                # sees a new image within the replicas' lag (docs/replicas.md).
                request("List images", "GET", "/v1/images?tag=postman", token="adminToken"),
                request("Get image", "GET", "/v1/images/{{imageId}}", token="adminToken"),
                request(
                    "Download image",
                    "GET",
                    "/v1/images/{{imageId}}/file",
                    token="adminToken",
                    raw_check=True,
                    checks=[
                        "pm.test('content type', () => pm.expect(pm.response.headers.get('Content-Type')).to.eql('image/png'));",
                        "pm.collectionVariables.set('imageEtag', pm.response.headers.get('ETag'));",
                    ],
                ),
                request(
                    "Download thumbnail", "GET", "/v1/images/{{imageId}}/thumbnail", token="adminToken", raw_check=True
                ),
                request(
                    "Users cannot upload",
                    "POST",
                    "/v1/images",
                    status=403,
                    form=[{"key": "images", "type": "file", "src": "fixtures/sample.png"}],
                ),
                request(
                    "Update image",
                    "PATCH",
                    "/v1/images/{{imageId}}",
                    token="adminToken",
                    body={"title": "Renamed", "tags": ["postman"]},
                ),
                request("Delete image", "DELETE", "/v1/images/{{imageId}}", token="adminToken"),
            ),
            folder(
                "Users (as admin)",
                request("List users", "GET", "/v1/users?q=postman", token="adminToken"),
                request("Get user", "GET", "/v1/users/{{userId}}", token="adminToken"),
                request(
                    "Promote user",
                    "PATCH",
                    "/v1/users/{{userId}}",
                    token="adminToken",
                    body={"role": "casting_assistant"},
                    checks=[
                        "pm.test('role', () => pm.expect(pm.response.json().user.role).to.eql('casting_assistant'));"
                    ],
                ),
                request("Promotion works at once", "GET", "/v1/actors"),
            ),
            folder(
                "Errors",
                request("Unknown route is 404", "GET", "/v1/nothing-here", token=None, status=404),
                request("Query integers are ASCII digits (1_0 is 400)", "GET", "/v1/buckets?per_page=1_0", status=400),
                request(
                    "Wrong method is 405",
                    "DELETE",
                    "/v1/health",
                    token=None,
                    status=405,
                    checks=["pm.test('Allow', () => pm.expect(pm.response.headers.get('Allow')).to.include('GET'));"],
                ),
            ),
            folder(
                "Logout",
                request("Logout", "POST", "/v1/auth/logout", body={"refresh_token": "{{refreshToken}}"}),
                request(
                    "Revoked token is 401",
                    "GET",
                    "/v1/auth/me",
                    status=401,
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Token has been revoked. Please log in again.'));"
                    ],
                ),
                request("Logout again is 401", "POST", "/v1/auth/logout", status=401),
                request(
                    "Login again",
                    "POST",
                    "/v1/auth/login",
                    token=None,
                    body={"email": me, "password": "postman password 2"},
                    save={"token": "pm.response.json().auth_token"},
                ),
            ),
            folder(
                "Leaving",
                request(
                    "Export my account",
                    "GET",
                    "/v1/auth/me/export",
                    checks=[
                        "pm.test('attachment', () => pm.expect(pm.response.headers.get('Content-Disposition')).to.match(/^attachment; filename=\"account-[0-9]+\\.json\"$/));",
                        "pm.test('mine', () => pm.expect(pm.response.json().user.id).to.eql(Number(pm.collectionVariables.get('userId'))));",
                        "pm.test('lists', () => pm.expect(pm.response.json().buckets).to.be.an('array'));",
                    ],
                ),
                request(
                    "Leaving with a wrong password is 422",
                    "DELETE",
                    "/v1/auth/me",
                    status=422,
                    body={"password": "not my password"},
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Password is incorrect'));"
                    ],
                ),
                request(
                    "Delete my account",
                    "DELETE",
                    "/v1/auth/me",
                    body={"password": "postman password 2"},
                    checks=[
                        "pm.test('deleted', () => pm.expect(pm.response.json().deleted).to.eql(Number(pm.collectionVariables.get('userId'))));"
                    ],
                ),
                request(
                    "A token of a deleted account is 401",
                    "GET",
                    "/v1/auth/me",
                    status=401,
                    checks=[
                        "pm.test('message', () => pm.expect(pm.response.json().message).to.eql('Invalid token. Please log in again.'));"
                    ],
                ),
                request(
                    "The address registers again",
                    "POST",
                    "/v1/auth/register",
                    token=None,
                    status=201,
                    body={"email": me, "password": "postman password"},
                ),
            ),
        ],
    }


def environment():
    values = {"baseUrl": "http://127.0.0.1:5000", "adminEmail": "admin@example.com", "adminPassword": "password123"}
    return {"name": "Local", "values": [{"key": k, "value": v, "enabled": True} for k, v in values.items()]}


if __name__ == "__main__":
    (HERE / "collection.json").write_text(json.dumps(build(), indent=2) + "\n")
    (HERE / "environment.json").write_text(json.dumps(environment(), indent=2) + "\n")
