"""Tokens of an external OpenID Connect issuer, beside our own HS256 tokens.

A real JWKS server runs on loopback (tests/jwks_server.py) and signs the
tokens; nothing of HTTP or the database is mocked. Cache lifetimes and
refetch intervals are settings, shrunk here instead of asserting on time.
"""

import base64
import hashlib
import hmac
import io
import json
import threading
import time
import unittest
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from app.extensions import db
from app.models import Bucket, User
from app.permissions import PERMISSIONS, ROLE_PERMISSIONS
from config import ConfigError, build_config
from tests.helpers import PASSWORD, APITestCase, bearer, image_bytes, in_parallel
from tests.jwks_server import AUDIENCE, JwksServer

MSG_INVALID = "Invalid token. Please log in again."
MSG_EXPIRED = "Signature expired. Please log in again."
MSG_REVOKED = "Token has been revoked. Please log in again."

# One request per permission that needs nothing else to get past the check.
PROBES = {
    "get:actors": ("get", "/v1/actors", None),
    "get:movies": ("get", "/v1/movies", None),
    "get:images": ("get", "/v1/images", None),
    "post:actors": ("post", "/v1/actors", {"name": "Ann", "age": 30, "gender": "female"}),
    "patch:actors": ("patch", "/v1/actors/999999", {"age": 31}),
    "delete:actors": ("delete", "/v1/actors/999999", None),
    "post:movies": ("post", "/v1/movies", {"title": "T", "release_date": "2020-01-01"}),
    "patch:movies": ("patch", "/v1/movies/999999", {"title": "U"}),
    "delete:movies": ("delete", "/v1/movies/999999", None),
    "post:images": ("post", "/v1/images", None),
    "patch:images": ("patch", "/v1/images/999999", {"title": "x"}),
    "delete:images": ("delete", "/v1/images/999999", None),
    "manage:users": ("get", "/v1/users", None),
}

_server = None


def setUpModule():
    global _server
    _server = JwksServer()


def tearDownModule():
    _server.stop()


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade_token(header, claims, sign=lambda signing_input: b""):
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


class OIDCTestCase(APITestCase):
    settings = {}

    def setUp(self):
        self.issuer = _server
        self.issuer.fetches = 0
        self.issuer.garbage = False
        if not self.issuer._server:
            self.issuer.start()
        self.kid = self.issuer.add_key()
        self.app_overrides = self.issuer.settings(**self.settings)
        super().setUp()

    def tearDown(self):
        super().tearDown()
        if not self.issuer._server:
            self.issuer.start()

    def external(self, kid=None, **changes):
        return bearer(self.issuer.token(kid or self.kid, **changes))

    def me(self, headers):
        return self.client.get("/v1/auth/me", headers=headers)


class ExternalAccountTests(OIDCTestCase):
    def test_first_token_creates_the_account_and_me_shows_it(self):
        headers = self.external(sub="auth0|alice", email="Alice@Example.com", permissions=["get:actors"])
        response = self.me(headers)
        self.assertEqual(response.status_code, 200, response.json)
        user = response.json["user"]
        self.assertEqual(
            set(user), {"id", "email", "role", "permissions", "external_id", "email_verified", "created_at"}
        )
        self.assertEqual(user["email"], "Alice@Example.com")
        self.assertIsNone(user["role"])
        self.assertEqual(user["permissions"], ["get:actors"])
        self.assertEqual(user["external_id"], "auth0|alice")
        self.assertEqual(self.me(headers).json["user"]["id"], user["id"])
        stored = db.session.scalars(select(User)).one()
        self.assertIsNone(stored.password_hash)
        self.assertIsNone(stored.email)

    def test_local_accounts_show_a_null_external_id(self):
        _, headers = self.account()
        self.assertIsNone(self.me(headers).json["user"]["external_id"])

    def test_no_email_claim_is_null_and_a_new_email_claim_is_kept(self):
        self.assertIsNone(self.me(self.external()).json["user"]["email"])
        self.assertEqual(self.me(self.external(email="new@example.com")).json["user"]["email"], "new@example.com")
        self.assertEqual(self.me(self.external()).json["user"]["email"], "new@example.com")

    def test_an_email_claim_that_cannot_be_kept_as_text_is_ignored(self):
        # A JSON escape can carry a NUL or a lone surrogate: PostgreSQL keeps neither in a text.
        for n, odd in enumerate(("a\x00@example.com", "x\ud800@example.com")):
            with self.subTest(email=repr(odd)):
                sub = f"auth0|odd{n}"
                created = self.me(self.external(sub=sub, email=odd))
                self.assertEqual(created.status_code, 200, created.json)
                self.assertIsNone(created.json["user"]["email"])
                self.me(self.external(sub=sub, email="kept@example.com"))
                again = self.me(self.external(sub=sub, email=odd))
                self.assertEqual(again.status_code, 200, again.json)
                self.assertEqual(again.json["user"]["email"], "kept@example.com")

    def test_permissions_are_filtered_and_read_from_each_token(self):
        granted = ["get:movies", "read:everything", "admin", 7, "manage:users"]
        self.assertEqual(
            self.me(self.external(permissions=granted)).json["user"]["permissions"], ["get:movies", "manage:users"]
        )
        # Taken away at the provider: the next token has fewer.
        self.assertEqual(self.me(self.external(permissions=["get:movies"])).json["user"]["permissions"], ["get:movies"])
        self.assertEqual(
            self.client.get("/v1/users", headers=self.external(permissions=["get:movies"])).status_code, 403
        )

    def test_a_space_separated_permissions_claim_works_too(self):
        headers = self.external(permissions="get:actors get:movies bogus")
        self.assertEqual(self.me(headers).json["user"]["permissions"], ["get:actors", "get:movies"])

    def test_a_permissions_claim_of_another_type_grants_nothing(self):
        self.assertEqual(self.me(self.external(permissions={"get:actors": True})).json["user"]["permissions"], [])

    def test_without_permissions_claim_nothing_is_granted_but_buckets_are_owned(self):
        headers = self.external(permissions=None)
        self.assertEqual(self.me(headers).json["user"]["permissions"], [])
        self.assertError(self.client.get("/v1/images", headers=headers), 403)
        created = self.client.post("/v1/buckets", json={"name": "Trips"}, headers=headers)
        self.assertEqual(created.status_code, 201, created.json)
        bucket_id = created.json["bucket"]["id"]
        item = self.client.post(f"/v1/buckets/{bucket_id}/items", json={"name": "Rome"}, headers=headers)
        self.assertEqual(item.status_code, 201)
        listed = self.client.get("/v1/buckets", headers=headers).json["buckets"]
        self.assertEqual([b["name"] for b in listed], ["Trips"])
        # Another external account and a local one see none of it.
        other = self.external(sub="auth0|bob")
        self.assertEqual(self.client.get("/v1/buckets", headers=other).json["buckets"], [])
        self.assertError(self.client.get(f"/v1/buckets/{bucket_id}", headers=other), 404)
        self.assertError(self.client.get(f"/v1/buckets/{bucket_id}", headers=self.headers_for()), 404)

    def test_permission_matrix_for_role_like_permission_sets(self):
        for role, permissions in ROLE_PERMISSIONS.items():
            headers = self.external(sub=f"auth0|{role}", permissions=sorted(permissions))
            for permission, (method, path, body) in PROBES.items():
                with self.subTest(role=role, permission=permission):
                    response = getattr(self.client, method)(path, json=body, headers=headers)
                    if permission in permissions:
                        self.assertNotIn(response.status_code, (401, 403), response.json)
                    else:
                        self.assertError(response, 403)
        self.assertEqual(set(PROBES), PERMISSIONS)

    def test_images_work_for_external_accounts(self):
        headers = self.external(permissions=sorted(ROLE_PERMISSIONS["admin"]))
        upload = self.client.post(
            "/v1/images", data={"images": [(io.BytesIO(image_bytes()), "a.png")]}, headers=headers
        )
        self.assertEqual(upload.status_code, 201, upload.json)
        image = upload.json["images"][0]
        self.assertEqual(image["owner_id"], self.me(headers).json["user"]["id"])
        self.assertEqual(self.client.get(image["links"]["file"], headers=headers).status_code, 200)

    def test_hs256_tokens_keep_working_beside_external_ones(self):
        user_id, headers = self.account("casting_assistant")
        self.assertEqual(self.me(headers).json["user"]["id"], user_id)
        self.assertEqual(self.client.get("/v1/actors", headers=headers).status_code, 200)
        self.assertEqual(self.me(self.external()).status_code, 200)
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 2)

    def test_an_external_email_may_equal_a_local_accounts(self):
        self.register("same@example.com")
        headers = self.external(email="same@example.com")
        self.assertEqual(self.me(headers).json["user"]["email"], "same@example.com")
        login = self.client.post("/v1/auth/login", json={"email": "same@example.com", "password": PASSWORD})
        self.assertEqual(login.status_code, 200)
        self.assertNotEqual(
            self.me(bearer(login.json["auth_token"])).json["user"]["id"], self.me(headers).json["user"]["id"]
        )
        again = self.client.post("/v1/auth/register", json={"email": "same@example.com", "password": PASSWORD})
        self.assertError(again, 409)

    def test_password_login_and_change_are_refused(self):
        headers = self.external(email="ext@example.com")
        self.assertEqual(self.me(headers).status_code, 200)
        login = self.client.post("/v1/auth/login", json={"email": "ext@example.com", "password": PASSWORD})
        self.assertError(login, 401, "Invalid email or password")
        change = self.client.put(
            "/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": "another password"},
            headers=headers,
        )
        self.assertError(
            change, 409, "This account signs in through the external identity provider: change its password there"
        )


class ExternalLogoutTests(OIDCTestCase):
    def test_logout_revokes_a_token_with_a_jti(self):
        headers = self.external()
        self.assertEqual(self.me(headers).status_code, 200)
        response = self.client.post("/v1/auth/logout", headers=headers)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json["message"], "Successfully logged out")
        self.assertError(self.me(headers), 401, MSG_REVOKED)
        self.assertError(self.client.post("/v1/auth/logout", headers=headers), 401, MSG_REVOKED)
        # Another token of the same account still works.
        self.assertEqual(self.me(self.external()).status_code, 200)

    def test_a_jti_longer_than_ours_is_revoked_too(self):
        headers = self.external(jti="AT." + "x" * 300)
        self.assertEqual(self.client.post("/v1/auth/logout", headers=headers).status_code, 200)
        self.assertError(self.me(headers), 401, MSG_REVOKED)

    def test_a_jti_of_any_text_is_revoked_too(self):
        headers = self.external(jti="\ud800")  # a lone surrogate, as a JSON escape can carry
        self.assertEqual(self.me(headers).status_code, 200)
        self.assertEqual(self.client.post("/v1/auth/logout", headers=headers).status_code, 200)
        self.assertError(self.me(headers), 401, MSG_REVOKED)

    def test_a_token_living_past_year_9999_is_revoked_without_error(self):
        headers = self.external(exp=10**12)
        self.assertEqual(self.client.post("/v1/auth/logout", headers=headers).status_code, 200)
        self.assertError(self.me(headers), 401, MSG_REVOKED)

    def test_logout_without_jti_answers_but_the_provider_owns_the_session(self):
        headers = self.external(jti=None)
        self.assertEqual(self.client.post("/v1/auth/logout", headers=headers).status_code, 200)
        self.assertEqual(self.me(headers).status_code, 200)

    def test_an_external_token_cannot_revoke_a_local_refresh_token(self):
        body = self.register()
        response = self.client.post(
            "/v1/auth/logout", json={"refresh_token": body["refresh_token"]}, headers=self.external()
        )
        self.assertError(response, 401, MSG_INVALID)
        refreshed = self.client.post("/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
        self.assertEqual(refreshed.status_code, 200)


class ExternalAdminTests(OIDCTestCase):
    def test_admins_list_and_delete_external_accounts_but_cannot_change_their_role(self):
        external_id = self.me(self.external(sub="github|42", email="gh@example.com")).json["user"]["id"]
        admin = self.headers_for("admin")
        users = self.client.get("/v1/users", headers=admin).json["users"]
        listed = {user["id"]: user for user in users}[external_id]
        self.assertEqual(
            (listed["external_id"], listed["role"], listed["email"]), ("github|42", None, "gh@example.com")
        )
        self.assertEqual(
            self.client.get(f"/v1/users/{external_id}", headers=admin).json["user"]["external_id"], "github|42"
        )
        patch = self.client.patch(f"/v1/users/{external_id}", json={"role": "admin"}, headers=admin)
        self.assertError(
            patch, 409, "This account's permissions come from the external identity provider: change them there"
        )
        self.assertIsNone(db.session.get(User, external_id).role)
        self.assertEqual(self.client.delete(f"/v1/users/{external_id}", headers=admin).json["deleted"], external_id)
        self.assertError(self.client.get(f"/v1/users/{external_id}", headers=admin), 404)

    def test_sorting_users_by_email_or_role_walks_external_accounts_too(self):
        admin_id, admin = self.account("admin")
        local_id, _ = self.account()
        external_ids = [self.me(self.external(sub=f"auth0|{n}")).json["user"]["id"] for n in range(3)]
        everyone = sorted([admin_id, local_id, *external_ids])
        for sort in ("email", "-email", "role", "-role"):
            with self.subTest(sort=sort):
                seen, url = [], f"/v1/users?sort={sort}&per_page=2"
                while url:
                    page = self.client.get(url, headers=admin).json
                    seen += [user["id"] for user in page["users"]]
                    cursor = page["pagination"]["next_cursor"]
                    url = f"/v1/users?sort={sort}&per_page=2&cursor={cursor}" if cursor else None
                self.assertEqual(sorted(seen), everyone)
        found = self.client.get("/v1/users?q=auth0", headers=admin).json["users"]
        self.assertEqual(found, [])
        self.me(self.external(sub="auth0|mail", email="findme@example.com"))
        found = self.client.get("/v1/users?q=FINDME", headers=admin).json["users"]
        self.assertEqual([user["external_id"] for user in found], ["auth0|mail"])

    def test_an_external_admin_manages_users(self):
        user_id, _ = self.account()
        headers = self.external(permissions=["manage:users"])
        self.assertEqual(self.client.get(f"/v1/users/{user_id}", headers=headers).status_code, 200)
        self.assertEqual(
            self.client.patch(f"/v1/users/{user_id}", json={"role": "admin"}, headers=headers).status_code, 200
        )


class TokenValidationTests(OIDCTestCase):
    def assertInvalid(self, headers, message=MSG_INVALID):
        self.assertError(self.me(headers), 401, message)

    def test_wrong_issuer_wrong_audience_and_missing_claims_are_invalid(self):
        self.assertInvalid(self.external(iss="https://evil.example.com/"))
        self.assertInvalid(self.external(iss=None))
        self.assertInvalid(self.external(aud="https://another.api/"))
        self.assertInvalid(self.external(aud=["https://another.api/"]))
        for claim in ("sub", "aud", "exp", "iat"):
            with self.subTest(missing=claim):
                self.assertInvalid(self.external(**{claim: None}))
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 0)

    def test_a_single_string_audience_is_accepted(self):
        self.assertEqual(self.me(self.external(aud=AUDIENCE)).status_code, 200)

    def test_bad_subjects_are_invalid(self):
        for sub in ("", 42, "has space", "tab\there", "x" * 256, "ünïcode", ["auth0|a"]):
            with self.subTest(sub=sub):
                self.assertInvalid(self.external(sub=sub))
        self.assertEqual(self.me(self.external(sub="x" * 255)).status_code, 200)

    def test_expired_and_not_yet_valid(self):
        now = int(time.time())
        self.assertInvalid(self.external(iat=now - 7200, exp=now - 3600), MSG_EXPIRED)
        self.assertInvalid(self.external(iat=now + 3600, exp=now + 7200))
        self.assertInvalid(self.external(nbf=now + 3600))
        # Within the leeway (30 s by default), clock skew is forgiven.
        self.assertEqual(self.me(self.external(iat=now + 5, nbf=now + 5)).status_code, 200)
        self.assertEqual(self.me(self.external(iat=now - 600, exp=now - 5)).status_code, 200)

    def test_a_key_the_issuer_does_not_publish_is_invalid(self):
        foreign = self.issuer.add_key(published=False)
        self.assertInvalid(self.external(kid=foreign))
        # Signed by another key under a published kid: a bad signature.
        token = jwt.encode(
            self.issuer.claims(), self.issuer.private_key(foreign), algorithm="RS256", headers={"kid": self.kid}
        )
        self.assertInvalid(bearer(token))
        self.assertInvalid(
            bearer(jwt.encode(self.issuer.claims(), self.issuer.private_key(self.kid), algorithm="RS256"))
        )

    def test_algorithm_confusion_is_refused(self):
        public_pem = (
            self.issuer.private_key(self.kid)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        claims = self.issuer.claims()
        hs256 = handmade_token(
            {"alg": "HS256", "typ": "JWT", "kid": self.kid},
            claims,
            lambda signing_input: hmac.new(public_pem, signing_input, hashlib.sha256).digest(),
        )
        self.assertInvalid(bearer(hs256))
        for alg in ("none", "None", "NONE"):
            self.assertInvalid(bearer(handmade_token({"alg": alg, "typ": "JWT", "kid": self.kid}, claims)))
        # A token of the issuer signed with our own secret never passes either.
        ours = jwt.encode(claims, self.app.config["SECRET_KEY"], algorithm="HS256", headers={"kid": self.kid})
        self.assertInvalid(bearer(ours))
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 0)

    def test_key_url_headers_are_refused_even_when_the_signature_is_good(self):
        attacker = self.issuer.add_key(published=False)
        attacker_jwk = self.issuer._public_jwk(attacker, self.issuer.private_key(attacker))
        for header in (
            {"jku": "http://127.0.0.1:1/jwks.json"},
            {"x5u": "http://127.0.0.1:1/cert.pem"},
            {"jwk": attacker_jwk},
            {"x5c": ["MIIB"]},
        ):
            with self.subTest(header=list(header)):
                self.assertInvalid(self.external(headers=header))
                self.assertInvalid(self.external(kid=attacker, headers=header))

    def test_garbage_and_headerless_tokens_are_invalid(self):
        for token in ("garbage", "a.b.c", handmade_token({"alg": "RS256"}, self.issuer.claims())):
            with self.subTest(token=token[:20]):
                self.assertInvalid(bearer(token))

    def test_another_asymmetric_algorithm_only_when_configured(self):
        ec_kid = self.issuer.add_key(kind="EC")
        self.assertInvalid(self.external(kid=ec_kid))  # OIDC_ALGORITHMS is RS256


class MoreAlgorithmsTests(OIDCTestCase):
    settings = {"OIDC_ALGORITHMS": "RS256, ES256"}

    def test_es256_when_configured(self):
        ec_kid = self.issuer.add_key(kind="EC")
        self.assertEqual(self.me(self.external(kid=ec_kid)).status_code, 200)
        self.assertEqual(self.me(self.external()).status_code, 200)


class KeyCacheTests(OIDCTestCase):
    def test_keys_are_cached(self):
        for _ in range(5):
            self.assertEqual(self.me(self.external()).status_code, 200)
        self.assertEqual(self.issuer.fetches, 1)

    def test_unknown_kid_then_the_key_appears_rotation_without_restart(self):
        self.assertEqual(self.me(self.external()).status_code, 200)
        new_kid = self.issuer.add_key(published=False)
        self.assertError(self.me(self.external(kid=new_kid)), 401, MSG_INVALID)
        self.issuer.publish(new_kid)
        self.issuer.remove(self.kid)
        self.assertEqual(self.me(self.external(kid=new_kid)).status_code, 200)
        self.assertEqual(self.issuer.fetches, 3)

    def test_issuer_down_with_a_warm_cache_still_works(self):
        self.assertEqual(self.me(self.external()).status_code, 200)
        self.issuer.stop()
        self.assertEqual(self.me(self.external()).status_code, 200)

    def test_issuer_down_with_a_cold_cache_is_503(self):
        self.issuer.stop()
        response = self.me(self.external())
        self.assertError(response, 503, "The identity provider cannot be reached: try again shortly")
        self.assertIn("Retry-After", response.headers)
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 0)
        self.issuer.start()
        self.assertEqual(self.me(self.external()).status_code, 200)

    def test_a_jwks_answer_that_is_not_json_is_503(self):
        self.issuer.garbage = True
        self.assertError(self.me(self.external()), 503)

    def test_hs256_tokens_work_while_the_issuer_is_down(self):
        self.issuer.stop()
        self.assertEqual(self.me(self.headers_for()).status_code, 200)
        self.assertEqual(self.issuer.fetches, 0)


class ShortLifetimeTests(OIDCTestCase):
    settings = {"OIDC_JWKS_LIFETIME_SECONDS": 0.05}

    def expire_cache(self):
        time.sleep(0.1)

    def test_a_key_removed_is_refused_after_the_cache_lifetime(self):
        self.assertEqual(self.me(self.external()).status_code, 200)
        self.issuer.remove(self.kid)
        self.expire_cache()
        self.assertError(self.me(self.external()), 401, MSG_INVALID)
        self.assertEqual(self.issuer.fetches, 2)

    def test_a_stale_key_keeps_working_while_the_issuer_is_down(self):
        self.assertEqual(self.me(self.external()).status_code, 200)
        self.issuer.stop()
        self.expire_cache()
        self.assertEqual(self.me(self.external()).status_code, 200)
        unknown = self.issuer.add_key()
        self.assertError(self.me(self.external(kid=unknown)), 503)


class KidFloodTests(OIDCTestCase):
    settings = {"OIDC_JWKS_MIN_REFETCH_SECONDS": 3600}

    def test_a_flood_of_random_kids_costs_at_most_one_fetch(self):
        self.assertEqual(self.me(self.external()).status_code, 200)
        token = self.issuer.token(self.kid)
        header, rest = token.split(".", 1)
        for _ in range(200):
            forged = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": uuid.uuid4().hex}).encode())
            self.assertError(self.me(bearer(f"{forged}.{rest}")), 401, MSG_INVALID)
        self.assertLessEqual(self.issuer.fetches, 2)
        self.assertEqual(self.me(self.external()).status_code, 200)

    def test_a_cold_flood_in_parallel_costs_one_fetch(self):
        statuses = []

        def hit():
            client = self.app.test_client()
            for _ in range(10):
                response = client.get("/v1/auth/me", headers=bearer(self._random_kid_token()))
                statuses.append(response.status_code)

        in_parallel(hit, [()] * 20)
        self.assertEqual(statuses, [401] * 200)
        self.assertEqual(self.issuer.fetches, 1)

    def _random_kid_token(self):
        token = self.issuer.token(self.kid)
        forged = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": uuid.uuid4().hex}).encode())
        return f"{forged}.{token.split('.', 1)[1]}"


class ConcurrentFirstSightTests(OIDCTestCase):
    def test_twenty_concurrent_first_requests_make_one_account(self):
        barrier = threading.Barrier(20)
        answers = []
        tokens = [self.issuer.token(self.kid, sub="auth0|race", email="race@example.com") for _ in range(20)]

        def first_request(token):
            client = self.app.test_client()
            barrier.wait()
            response = client.post("/v1/buckets", json={"name": f"b-{uuid.uuid4().hex}"}, headers=bearer(token))
            answers.append(response.status_code)

        in_parallel(first_request, [(token,) for token in tokens])
        self.assertEqual(answers, [201] * 20)
        accounts = db.session.scalars(select(User).where(User.external_id == "auth0|race")).all()
        self.assertEqual(len(accounts), 1)
        owners = db.session.scalars(select(Bucket.owner_id).distinct()).all()
        self.assertEqual(owners, [accounts[0].id])


class OIDCOffTests(APITestCase):
    """Without OIDC_ISSUER, the issuer's tokens are just invalid tokens."""

    def test_external_tokens_are_invalid_and_no_key_is_fetched(self):
        server = _server
        server.fetches = 0
        kid = server.add_key()
        response = self.client.get("/v1/auth/me", headers=bearer(server.token(kid)))
        self.assertError(response, 401, MSG_INVALID)
        self.assertEqual(server.fetches, 0)
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 0)


class OIDCConfigTests(unittest.TestCase):
    def test_the_jwks_url_defaults_to_the_issuers_well_known_path(self):
        config = build_config("testing", OIDC_ISSUER="https://tenant.eu.auth0.com/", OIDC_AUDIENCE="api")
        self.assertEqual(config["OIDC_JWKS_URL"], "https://tenant.eu.auth0.com/.well-known/jwks.json")
        self.assertEqual(config["OIDC_ALGORITHMS"], ["RS256"])
        self.assertEqual(config["OIDC_PERMISSIONS_CLAIM"], "permissions")

    def test_an_issuer_needs_an_audience_and_asymmetric_algorithms(self):
        with self.assertRaises(ConfigError):
            build_config("testing", OIDC_ISSUER="https://tenant.eu.auth0.com/")
        for algorithms in ("HS256", "RS256,none", " , "):
            with self.subTest(algorithms=algorithms), self.assertRaises(ConfigError):
                build_config(
                    "testing", OIDC_ISSUER="https://t.example/", OIDC_AUDIENCE="api", OIDC_ALGORITHMS=algorithms
                )

    def test_off_by_default(self):
        self.assertIsNone(build_config("testing")["OIDC_ISSUER"])


class ExternalAccountSessionTests(OIDCTestCase):
    def test_an_external_account_has_no_sessions_here(self):
        headers = self.external(sub="auth0|sessions")
        response = self.client.get("/v1/auth/sessions", headers=headers)
        self.assertEqual(response.status_code, 200, response.json)
        self.assertEqual(response.json, {"success": True, "sessions": []})
        self.assertError(self.client.delete("/v1/auth/sessions/1", headers=headers), 404)
