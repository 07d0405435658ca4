"""ETag, If-None-Match and If-Match on every single JSON resource."""

import io

from tests.helpers import CONCURRENT, APITestCase, image_bytes

PRECONDITION_FAILED = "Precondition failed: the resource has changed"


class ConditionalTests(APITestCase):
    app_overrides = CONCURRENT

    def setUp(self):
        super().setUp()
        self.other_id, _ = self.account()
        _, self.admin = self.account("admin")
        self.bucket = self.create("/v1/buckets", {"name": "Trips"})["bucket"]
        self.bucket_url = f"/v1/buckets/{self.bucket['id']}"
        self.item = self.create(f"{self.bucket_url}/items", {"name": "Rome"})["item"]
        self.item_url = f"{self.bucket_url}/items/{self.item['id']}"
        self.actor = self.create("/v1/actors", {"name": "Ann", "age": 30, "gender": "female"})["actor"]
        self.actor_url = f"/v1/actors/{self.actor['id']}"
        movie = {"title": "Film", "release_date": "2020-01-01", "actor_ids": [self.actor["id"]]}
        self.movie_url = f"/v1/movies/{self.create('/v1/movies', movie)['movie']['id']}"
        upload = self.client.post(
            "/v1/images",
            headers=self.admin,
            data={"images": [(io.BytesIO(image_bytes()), "a.png")], "tags": "sea"},
            content_type="multipart/form-data",
        )
        self.image_url = upload.headers["Location"]
        self.user_url = f"/v1/users/{self.other_id}"
        self.urls = [self.bucket_url, self.item_url, self.actor_url, self.movie_url, self.image_url, self.user_url]

    def create(self, path, body):
        response = self.client.post(path, headers=self.admin, json=body)
        self.assertEqual(response.status_code, 201, response.json)
        self.assertEqual(response.headers["ETag"], self.etag(response.headers["Location"]))
        return response.json

    def etag(self, url):
        response = self.client.get(url, headers=self.admin)
        self.assertEqual(response.status_code, 200, response.json)
        return response.headers["ETag"]

    def send(self, method, url, etag=None, json=None):
        headers = {**self.admin, **({"If-Match": etag} if etag else {})}
        return getattr(self.client, method)(url, headers=headers, json=json)

    def test_get_answers_a_strong_etag_and_304_when_it_matches(self):
        for url in self.urls:
            with self.subTest(url=url):
                etag = self.etag(url)
                self.assertRegex(etag, r'^"[0-9a-f]{40}"$')
                self.assertEqual(etag, self.etag(url))
                cached = self.client.get(url, headers={**self.admin, "If-None-Match": etag})
                self.assertEqual(cached.status_code, 304)
                self.assertEqual(cached.get_data(), b"")
                self.assertEqual(cached.headers["ETag"], etag)
                self.assertEqual(cached.headers["Cache-Control"], "private, no-cache")
                listed = self.client.get(url, headers={**self.admin, "If-None-Match": f'"stale", {etag}'})
                self.assertEqual(listed.status_code, 304)
                fresh = self.client.get(url, headers={**self.admin, "If-None-Match": '"stale"'})
                self.assertEqual((fresh.status_code, fresh.headers["ETag"]), (200, etag))

    def test_etag_changes_with_every_change_of_the_representation(self):
        changes = [
            (self.bucket_url, lambda: self.send("put", self.bucket_url, json={"name": "Renamed"})),
            (self.bucket_url, lambda: self.send("patch", self.bucket_url, json={"name": "Again"})),
            (self.bucket_url, lambda: self.send("post", f"{self.bucket_url}/items", json={"name": "New"})),
            (self.bucket_url, lambda: self.send("delete", self.item_url)),
            (self.actor_url, lambda: self.send("patch", self.actor_url, json={"age": 31})),
            (self.movie_url, lambda: self.send("patch", self.movie_url, json={"title": "Other"})),
            (self.movie_url, lambda: self.send("patch", self.actor_url, json={"name": "Anna"})),  # cast name
            (self.actor_url, lambda: self.send("patch", self.movie_url, json={"actor_ids": []})),  # movie_count
            (self.movie_url, lambda: self.send("patch", self.movie_url, json={"actor_ids": [self.actor["id"]]})),
            (self.movie_url, lambda: self.send("delete", self.actor_url)),  # leaves the cast
            (self.image_url, lambda: self.send("patch", self.image_url, json={"tags": "sea,sun"})),
            (self.image_url, lambda: self.send("patch", self.image_url, json={"title": "Beach"})),
            (self.user_url, lambda: self.send("patch", self.user_url, json={"role": "casting_assistant"})),
        ]
        for url, change in changes:
            before = self.etag(url)
            answer = change()
            self.assertIn(answer.status_code, (200, 201), answer.json)
            self.assertNotEqual(self.etag(url), before, (url, answer.request.path))

    def test_item_changes(self):
        before = self.etag(self.item_url)
        patched = self.send("patch", self.item_url, before, {"done": True})
        self.assertEqual(patched.status_code, 200)
        self.assertEqual(patched.headers["ETag"], self.etag(self.item_url))
        self.assertNotEqual(patched.headers["ETag"], before)
        replaced = self.send("put", self.item_url, patched.headers["ETag"], {"name": "Paris"})
        self.assertEqual(replaced.status_code, 200)
        self.assertNotEqual(replaced.headers["ETag"], patched.headers["ETag"])

    def writes(self):
        """Every PUT, PATCH and DELETE of a resource, once each."""
        return [
            ("put", self.bucket_url, {"name": "Stale"}),
            ("patch", self.bucket_url, {"name": "Stale"}),
            ("put", self.item_url, {"name": "Stale"}),
            ("patch", self.item_url, {"done": True}),
            ("patch", self.actor_url, {"age": 99}),
            ("patch", self.movie_url, {"actor_ids": []}),
            ("patch", self.image_url, {"tags": "stale"}),
            ("patch", self.user_url, {"role": "admin"}),
        ] + [("delete", url, None) for url in reversed(self.urls)]

    def test_every_write_route_of_a_resource_is_in_the_stale_if_match_test(self):
        """A PUT, PATCH or DELETE added without `for_write` would answer a stale If-Match with
        anything but 412: it must be listed in `writes`, which the next test sends."""
        routes = self.app.url_map.bind("localhost")
        listed = {(method.upper(), routes.match(url, method.upper())[0]) for method, url, _ in self.writes()}
        declared = {
            (method, rule.endpoint)
            for rule in self.app.url_map.iter_rules()
            if rule.rule.startswith("/v1/") and not rule.rule.startswith("/v1/auth/")
            for method in rule.methods & {"PUT", "PATCH", "DELETE"}
        }
        self.assertEqual(listed, declared)

    def test_stale_if_match_is_412_and_changes_nothing(self):
        for method, url, body in self.writes():
            with self.subTest(method=method, url=url):
                before = self.client.get(url, headers=self.admin)
                answer = self.send(method, url, '"0123456789abcdef0123456789abcdef01234567"', body)
                self.assertError(answer, 412, PRECONDITION_FAILED)
                after = self.client.get(url, headers=self.admin)
                self.assertEqual(after.get_data(), before.get_data())

    def test_matching_or_star_if_match_goes_through(self):
        for method, url, body in [
            ("patch", self.bucket_url, {"name": "Fresh"}),
            ("patch", self.actor_url, {"age": 40}),
            ("patch", self.image_url, {"tags": "x"}),
            ("patch", self.user_url, {"role": "casting_director"}),
        ]:
            with self.subTest(url=url):
                answer = self.send(method, url, self.etag(url), body)
                self.assertEqual(answer.status_code, 200, answer.json)
                self.assertEqual(answer.headers["ETag"], self.etag(url))
                self.assertEqual(self.send(method, url, "*", body).status_code, 200)
        for url in reversed(self.urls):
            with self.subTest(url=url):
                self.assertEqual(self.send("delete", url, self.etag(url)).status_code, 200)
                self.assertError(self.send("delete", url, "*"), 404)

    def test_concurrent_patches_with_one_if_match_one_wins(self):
        for url, field in ((self.bucket_url, "name"), (self.item_url, "name"), (self.movie_url, "title")):
            with self.subTest(url=url):
                etag = self.etag(url)
                statuses = self.concurrent_statuses(
                    8,
                    lambda client, n, url=url, etag=etag, field=field: client.patch(
                        url, headers={**self.admin, "If-Match": etag}, json={field: f"Writer {n}"}
                    ),
                )
                self.assertEqual(sorted(statuses), [200] + [412] * 7)

    def test_concurrent_deletes_with_one_if_match_one_wins(self):
        etag = self.etag(self.bucket_url)
        statuses = self.concurrent_statuses(
            6, lambda client, n: client.delete(self.bucket_url, headers={**self.admin, "If-Match": etag})
        )
        self.assertEqual(statuses.count(200), 1, statuses)
        self.assertTrue(set(statuses) <= {200, 404, 412}, statuses)

    def concurrent_statuses(self, n, send):
        return [response.status_code for response in self.concurrently(n, send)]
