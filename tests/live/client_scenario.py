"""Drives every endpoint of a live server through the generated Python client (`make client`).

Each step calls one operation by its operationId and checks the status and that the answer parsed into
the typed model the OpenAPI document names, with no field the document leaves out. The client raises on
any status the document does not list for the operation.
Mailed links are read from MAILBOX, the directory an SMTP sink the server mails to writes into
(`python -m tests.smtp_sink --mailbox DIR`, as .ci/live runs it).
Usage: MAILBOX=DIR python tests/live/client_scenario.py http://127.0.0.1:5000 ADMIN_EMAIL ADMIN_PASSWORD
Prints "client scenario: N steps passed" last.
"""

import email
import email.policy
import importlib
import io
import os
import re
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "build" / "api-client"))

from api_client import AuthenticatedClient, Client, models  # noqa: E402
from api_client.types import File  # noqa: E402

# Models whose extra keys are their content (free-form maps).
MAPS = {"IndexLinks", "ErrorErrors", "GetOpenapiJsonResponse200"}
TAGS = {}  # operationId -> module, filled from the generated package
PASSWORD = "correct horse battery"


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _index_operations():
    package = Path(importlib.import_module("api_client.api").__file__).parent
    for module in package.glob("*/*.py"):
        if module.stem != "__init__":
            TAGS[module.stem] = f"api_client.api.{module.parent.name}.{module.stem}"


def _undocumented(value, where):
    """Keys the document did not describe, anywhere in a parsed answer."""
    found = []
    if isinstance(value, list):
        for index, element in enumerate(value):
            found += _undocumented(element, f"{where}[{index}]")
    elif hasattr(value, "additional_properties"):
        if value.additional_properties and type(value).__name__ not in MAPS:
            found.append(f"{where}: {sorted(value.additional_properties)}")
        for name in getattr(type(value), "__attrs_attrs__", ()):
            if name.name != "additional_properties":
                found += _undocumented(getattr(value, name.name), f"{where}.{name.name}")
    return found


class Scenario:
    def __init__(self, base_url):
        self.base_url = base_url
        self.steps = 0
        self.called = set()
        self.anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)

    def client(self, token):
        return AuthenticatedClient(base_url=self.base_url, token=token, raise_on_unexpected_status=True)

    def call(self, operation_id, status, model, **kwargs):
        """One step: `operation_id` answers `status` with a `model` (a name in api_client.models, or None)."""
        module = importlib.import_module(TAGS[_snake(operation_id)])
        kwargs.setdefault("client", self.anonymous)
        response = module.sync_detailed(**kwargs)
        self.steps += 1
        self.called.add(_snake(operation_id))
        label = f"step {self.steps} {operation_id}"
        assert response.status_code == status, f"{label}: {response.status_code} {response.content[:300]!r}"
        if model is None:
            assert status != 304 or not response.content, f"{label}: a 304 has no body"
            return response
        expected = File if model == "File" else getattr(models, model)
        assert isinstance(response.parsed, expected), f"{label}: parsed as {type(response.parsed).__name__}"
        problems = _undocumented(response.parsed, model)
        assert not problems, f"{label}: undocumented fields {problems}"
        if expected is models.Error:
            assert response.parsed.success is False and response.parsed.error == status, label
        elif hasattr(response.parsed, "success"):
            assert response.parsed.success is True, label
        return response

    def walk(self, operation_id, key, **kwargs):
        """Every row of a list, two pages at a time: by `pagination.next`, then again by `next_cursor`."""
        by_page = self._collect(operation_id, key, kwargs, lambda pagination: _page_query(pagination.next_))
        by_cursor = self._collect(operation_id, key, kwargs, lambda pagination: _cursor_query(pagination.next_cursor))
        assert by_cursor == by_page, f"{operation_id}: cursor walk {by_cursor} != page walk {by_page}"
        return by_page

    def _collect(self, operation_id, key, kwargs, next_query):
        ids, query = [], {"per_page": 2}
        while query:
            parsed = self.call(operation_id, 200, _list_model(operation_id), **kwargs, **query).parsed
            ids += [row.id for row in getattr(parsed, key)]
            query = next_query(parsed.pagination)
        return ids


def _page_query(link):
    """The page and per_page of a `next` link, or None on the last page."""
    if not link:
        return None
    return {name: int(value) for name, value in parse_qsl(urlsplit(link).query) if name in ("page", "per_page")}


def _cursor_query(cursor):
    return {"per_page": 2, "cursor": cursor} if cursor else None


def _list_model(operation_id):
    listed = {"listActorMovies": "Movie", "listMovieActors": "Actor", "listItems": "Item"}
    noun = listed.get(operation_id) or operation_id.removeprefix("list").removesuffix("s")
    return f"{noun}ListResponse"


def _picture(fmt, color):
    out = io.BytesIO()
    PILImage.new("RGB", (40, 30), color).save(out, format=fmt)
    return File(payload=io.BytesIO(out.getvalue()), file_name=f"picture.{fmt.lower()}", mime_type=f"image/{fmt}")


def service(s):
    for operation_id in ("getIndex", "getV1Index"):
        assert s.call(operation_id, 200, "Index").parsed.version
    s.call("getHealth", 200, "Health")
    s.call("getOpenapiJson", 200, "GetOpenapiJsonResponse200")


def accounts(s):
    """Every auth operation; answers the signed-in client and its user id."""
    email = f"client-{uuid.uuid4().hex[:12]}@example.com"
    registered = s.call("register", 201, "RegisterResponse", body=models.Register(email=email, password=PASSWORD))
    s.call("register", 409, "Error", body=models.Register(email=email.upper(), password=PASSWORD))
    s.call("login", 401, "Error", body=models.Login(email=email, password="wrong password"))
    login = s.call("login", 200, "Token", body=models.Login(email=email, password=PASSWORD)).parsed
    grant = models.TokenRequest(grant_type=models.TokenRequestGrantType.PASSWORD, username=email, password=PASSWORD)
    token = s.call("issueToken", 200, "OAuthToken", body=grant).parsed
    assert token.token_type == "bearer"
    me = s.call("getMe", 200, "UserResponse", client=s.client(token.access_token)).parsed
    assert me.user.id == registered.parsed.user.id and me.user.email == email
    s.call("getMe", 401, "Error")
    refreshed = s.call("refresh", 200, "Token", body=models.Refresh(refresh_token=login.refresh_token)).parsed
    s.call("refresh", 401, "Error", body=models.Refresh(refresh_token=login.refresh_token))  # rotated
    change = models.PasswordChange(current_password=PASSWORD, new_password=PASSWORD + "!")
    changed = s.call("changePassword", 200, "Token", client=s.client(refreshed.auth_token), body=change).parsed
    s.call("getMe", 401, "Error", client=s.client(refreshed.auth_token))  # issued before the change
    user = s.client(changed.auth_token)
    sessions(s, user, email, PASSWORD + "!")
    s.call("logout", 200, "Message", client=user, body=models.Logout(refresh_token=changed.refresh_token))
    s.call("getMe", 401, "Error", client=user)
    again = s.call("login", 200, "Token", body=models.Login(email=email, password=PASSWORD + "!")).parsed
    return mail(s, email, s.client(again.auth_token), PASSWORD + "!"), registered.parsed.user.id


def mail(s, email, user, password):
    """Verification and password reset, following the mailed links; answers the client signed in after."""
    assert s.call("getMe", 200, "UserResponse", client=user).parsed.user.email_verified is False
    s.call("requestVerification", 202, "Message", client=user)
    s.call("verifyEmail", 400, "Error", body=models.EmailVerify(token="not-a-mailed-token"))
    token = mailed_token(email, "Verify your e-mail address")
    verified = s.call("verifyEmail", 200, "EmailVerifiedResponse", body=models.EmailVerify(token=token)).parsed
    assert verified.user.email_verified is True
    s.call("requestVerification", 409, "Error", client=user)
    for address in (email, f"nobody-{uuid.uuid4().hex[:12]}@example.com"):
        s.call("forgotPassword", 202, "Message", body=models.PasswordForgot(email=address))
    token = mailed_token(email, "Reset your password")
    s.call("resetPassword", 422, "Error", body=models.PasswordReset(token=token, new_password="short"))
    new_password = password + "?"
    reset = models.PasswordReset(token=token, new_password=new_password)
    s.call("resetPassword", 200, "Message", body=reset)
    s.call("resetPassword", 400, "Error", body=reset)  # a link works once
    s.call("getMe", 401, "Error", client=user)  # the reset ended every session
    again = s.call("login", 200, "Token", body=models.Login(email=email, password=new_password)).parsed
    return s.client(again.auth_token)


def mailed_token(to, subject, timeout=15):
    """The token of the newest mail to `to` with `subject` in MAILBOX (one file per mail, oldest first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(Path(os.environ["MAILBOX"]).glob("*.eml"))
        mails = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in files]
        mails = [m for m in mails if m["To"] == to and m["Subject"] == subject]
        if mails:
            return re.search(r"token=([\w-]+)", mails[-1].get_content()).group(1)
        time.sleep(0.1)
    raise AssertionError(f"no mail {subject!r} reached {to}")


def sessions(s, user, email, password):
    """The user's sessions after a password change: this one; a second device's login, then ended."""
    [only] = s.call("getSessions", 200, "SessionListResponse", client=user).parsed.sessions
    assert only.current is True
    phone = s.client(s.call("login", 200, "Token", body=models.Login(email=email, password=password)).parsed.auth_token)
    listed = s.call("getSessions", 200, "SessionListResponse", client=phone).parsed.sessions
    [phone_session] = [session for session in listed if session.current]
    assert {session.id for session in listed} == {only.id, phone_session.id}
    ended = s.call("endSession", 200, "Deleted", client=user, session_id=phone_session.id).parsed
    assert ended.deleted == phone_session.id
    s.call("getMe", 401, "Error", client=phone)
    s.call("endSession", 404, "Error", client=user, session_id=phone_session.id)


def buckets_and_items(s, user):
    created = [
        s.call("createBucket", 201, "BucketResponse", client=user, body=models.BucketInput(name=f"Bucket {n}"))
        for n in range(3)
    ]
    assert all(response.headers["Location"] for response in created)
    first = created[0].parsed.bucket.id
    s.call("createBucket", 409, "Error", client=user, body=models.BucketInput(name="Bucket 0"))
    ids = s.walk("listBuckets", "buckets", client=user)
    assert ids == sorted(response.parsed.bucket.id for response in created), ids
    s.call("getBucket", 200, "BucketResponse", client=user, bucket_id=first)
    s.call("replaceBucket", 200, "BucketResponse", client=user, bucket_id=first, body=models.BucketInput(name="Trips"))
    patched = s.call(
        "updateBucket", 200, "BucketResponse", client=user, bucket_id=first, body=models.BucketPatch(name="Journeys")
    ).parsed
    assert patched.bucket.name == "Journeys"
    items = [
        s.call(
            "createItem",
            201,
            "ItemResponse",
            client=user,
            bucket_id=first,
            body=models.ItemInput(name=f"Item {n}", description="somewhere"),
        ).parsed.item.id
        for n in range(3)
    ]
    assert s.walk("listItems", "items", client=user, bucket_id=first) == items
    s.call("getItem", 200, "ItemResponse", client=user, bucket_id=first, item_id=items[0])
    s.call(
        "replaceItem",
        200,
        "ItemResponse",
        client=user,
        bucket_id=first,
        item_id=items[0],
        body=models.ItemInput(name="See Kyoto", description="in spring", done=False),
    )
    done = s.call(
        "updateItem",
        200,
        "ItemResponse",
        client=user,
        bucket_id=first,
        item_id=items[0],
        body=models.ItemPatch(done=True),
    ).parsed
    assert done.item.done is True
    assert [
        row.id
        for row in s.call("listItems", 200, "ItemListResponse", client=user, bucket_id=first, done=True).parsed.items
    ] == [items[0]]
    s.call("createItem", 422, "Error", client=user, bucket_id=first, body=models.ItemInput(name=" "))
    s.call("deleteItem", 200, "Deleted", client=user, bucket_id=first, item_id=items[0])
    s.call("getItem", 404, "Error", client=user, bucket_id=first, item_id=items[0])
    assert s.call("deleteBucket", 200, "Deleted", client=user, bucket_id=first).parsed.deleted == first
    s.call("getBucket", 404, "Error", client=user, bucket_id=first)


def role_account(s, admin, role):
    """A new account with `role`, given by the admin; answers its client and id."""
    client, user_id = accounts_light(s)
    s.call(
        "updateUser",
        200,
        "UserResponse",
        client=admin,
        user_id=user_id,
        body=models.RoleChange(role=models.RoleChangeRole(role)),
    )
    return client, user_id


def accounts_light(s):
    email = f"role-{uuid.uuid4().hex[:12]}@example.com"
    body = s.call("register", 201, "RegisterResponse", body=models.Register(email=email, password=PASSWORD)).parsed
    return s.client(body.auth_token), body.user.id


def casting(s, admin):
    assistant, _ = role_account(s, admin, "casting_assistant")
    director, _ = role_account(s, admin, "casting_director")
    producer, _ = role_account(s, admin, "executive_producer")
    actor = models.ActorInput(name="Ada", age=36, gender="female")
    s.call("createActor", 403, "Error", client=assistant, body=actor)
    ada = s.call("createActor", 201, "ActorResponse", client=director, body=actor).parsed.actor.id
    bob = s.call(
        "createActor", 201, "ActorResponse", client=director, body=models.ActorInput(name="Bob", age=50, gender="male")
    ).parsed.actor.id
    s.call("updateActor", 200, "ActorResponse", client=director, actor_id=bob, body=models.ActorPatch(age=51))
    movie = models.MovieInput(title=f"Heat {uuid.uuid4().hex[:6]}", release_date=date(1995, 12, 15), actor_ids=[ada])
    s.call("createMovie", 403, "Error", client=director, body=movie)
    heat = s.call("createMovie", 201, "MovieResponse", client=producer, body=movie).parsed.movie.id
    s.call("createMovie", 409, "Error", client=producer, body=movie)
    cast = s.call(
        "updateMovie",
        200,
        "MovieResponse",
        client=director,
        movie_id=heat,
        body=models.MoviePatch(actor_ids=[ada, bob]),
    ).parsed.movie.actors
    assert sorted(member.id for member in cast) == sorted([ada, bob])
    s.call("listActors", 200, "ActorListResponse", client=assistant, gender="female")
    s.call("listMovies", 200, "MovieListResponse", client=assistant, actor_id=ada)
    s.call("getActor", 200, "ActorResponse", client=assistant, actor_id=ada)
    s.call("getMovie", 200, "MovieResponse", client=assistant, movie_id=heat)
    assert s.walk("listActorMovies", "movies", client=assistant, actor_id=ada) == [heat]
    assert sorted(s.walk("listMovieActors", "actors", client=assistant, movie_id=heat)) == sorted([ada, bob])
    s.call("deleteActor", 403, "Error", client=assistant, actor_id=bob)
    s.call("deleteActor", 200, "Deleted", client=director, actor_id=bob)
    s.call("deleteMovie", 403, "Error", client=director, movie_id=heat)
    s.call("deleteMovie", 200, "Deleted", client=producer, movie_id=heat)
    s.call("deleteActor", 200, "Deleted", client=director, actor_id=ada)


def images(s, admin, user):
    tag = f"t{uuid.uuid4().hex[:8]}"
    upload = models.UploadImagesBody(
        images=[_picture("PNG", (200, 30, 30)), _picture("JPEG", (30, 200, 30))], title="Holiday", tags=f"{tag}, sun"
    )
    s.call("uploadImages", 403, "Error", client=user, body=upload)
    upload.images = [_picture("PNG", (200, 30, 30)), _picture("JPEG", (30, 200, 30))]
    uploaded = s.call("uploadImages", 201, "ImageUploadResponse", client=admin, body=upload).parsed.images
    assert [image.content_type for image in uploaded] == ["image/png", "image/jpeg"]
    first = uploaded[0]
    listed = s.call("listImages", 200, "ImageListResponse", client=user, tag=tag).parsed.images
    assert sorted(image.id for image in listed) == sorted(image.id for image in uploaded)
    s.call("getImage", 200, "ImageResponse", client=user, image_id=first.id)
    data = s.call("getImageFile", 200, "File", client=user, image_id=first.id).parsed.payload.read()
    assert PILImage.open(io.BytesIO(data)).format == "PNG"
    s.call("getImageFile", 304, None, client=user, image_id=first.id, if_none_match=f'"{first.sha256}"')
    thumbnail = s.call("getImageThumbnail", 200, "File", client=user, image_id=first.id).parsed.payload.read()
    assert PILImage.open(io.BytesIO(thumbnail)).size
    patched = s.call(
        "updateImage",
        200,
        "ImageResponse",
        client=admin,
        image_id=first.id,
        body=models.ImagePatch(title="Sea", tags=["sea"]),
    ).parsed.image
    assert patched.tags == ["sea"]
    for image in uploaded:
        s.call("deleteImage", 200, "Deleted", client=admin, image_id=image.id)
    s.call("getImage", 404, "Error", client=user, image_id=first.id)


def administration(s, admin, user, user_id):
    s.call("listUsers", 403, "Error", client=user)
    listed = s.call("listUsers", 200, "UserListResponse", client=admin, role=models.ListUsersRole.USER).parsed
    assert all(account.role == "user" for account in listed.users)
    s.call("getUser", 200, "UserResponse", client=admin, user_id=user_id)
    s.call("deleteUser", 200, "Deleted", client=admin, user_id=user_id)
    s.call("getUser", 404, "Error", client=admin, user_id=user_id)
    s.call("getMe", 401, "Error", client=user)  # the token of a deleted user


def leaving(s):
    """An account exports its data, then deletes itself; its address registers again."""
    email = f"leaver-{uuid.uuid4().hex[:12]}@example.com"
    body = s.call("register", 201, "RegisterResponse", body=models.Register(email=email, password=PASSWORD)).parsed
    leaver = s.client(body.auth_token)
    kept = s.call("createBucket", 201, "BucketResponse", client=leaver, body=models.BucketInput(name="Kept")).parsed
    s.call("createItem", 201, "ItemResponse", client=leaver, bucket_id=kept.bucket.id, body=models.ItemInput(name="x"))
    exported = s.call("getAccountExport", 200, "AccountExport", client=leaver)
    assert exported.headers["Content-Disposition"] == f'attachment; filename="account-{body.user.id}.json"'
    assert [(b.name, [i.name for i in b.items]) for b in exported.parsed.buckets] == [("Kept", ["x"])]
    wrong = s.call("deleteMe", 422, "Error", client=leaver, body=models.AccountDeletion(password="not the password"))
    assert wrong.parsed.message == "Password is incorrect"
    gone = s.call("deleteMe", 200, "Deleted", client=leaver, body=models.AccountDeletion(password=PASSWORD)).parsed
    assert gone.deleted == body.user.id
    s.call("getMe", 401, "Error", client=leaver)
    s.call("register", 201, "RegisterResponse", body=models.Register(email=email, password=PASSWORD))


def main(base_url, admin_email, admin_password):
    _index_operations()
    s = Scenario(base_url)
    service(s)
    user, user_id = accounts(s)
    admin_login = s.call("login", 200, "Token", body=models.Login(email=admin_email, password=admin_password))
    admin = s.client(admin_login.parsed.auth_token)
    buckets_and_items(s, user)
    casting(s, admin)
    images(s, admin, user)
    administration(s, admin, user, user_id)
    leaving(s)
    untested = set(TAGS) - s.called
    assert not untested, f"operations the scenario does not drive: {sorted(untested)}"
    print(f"client scenario: {s.steps} steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
