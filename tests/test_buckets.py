"""/v1/buckets: owner-scoped CRUD and the collection helper."""

from sqlalchemy import insert, select

from app.extensions import db
from app.models import Bucket, Item
from app.seed import recount_all
from tests.helpers import APITestCase, count_queries


class BucketCrudTests(APITestCase):
    def setUp(self):
        super().setUp()
        self.user_id, self.h = self.account()

    def create(self, name="Travel", headers=None):
        return self.client.post("/v1/buckets", headers=headers or self.h, json={"name": name})

    def test_create_get_list(self):
        response = self.create("  Travel  ")
        self.assertEqual(response.status_code, 201)
        bucket = response.json["bucket"]
        self.assertEqual(set(bucket), {"id", "name", "item_count", "created_at", "modified_at"})
        self.assertEqual(bucket["name"], "Travel")
        self.assertEqual(bucket["item_count"], 0)
        self.assertEqual(response.headers["Location"], f"/v1/buckets/{bucket['id']}")
        self.assertEqual(self.client.get(response.headers["Location"], headers=self.h).json["bucket"], bucket)
        stored = db.session.get(Bucket, bucket["id"])
        self.assertEqual((stored.owner_id, stored.name), (self.user_id, "Travel"))

    def test_duplicate_names_per_owner(self):
        self.create("Travel")
        self.assertError(self.create("travel "), 409)
        self.assertEqual(self.create("Travel", headers=self.headers_for()).status_code, 201)
        self.assertError(self.create("TRAVEL"), 409)
        self.assertEqual(self.create("Travel 2").status_code, 201)

    def test_unicode_names(self):
        for name in ("Été à Paris", "東京旅行", "🎉 party", "É" * 100):
            with self.subTest(name=name):
                response = self.create(name)
                self.assertEqual(response.status_code, 201, response.json)
                self.assertEqual(response.json["bucket"]["name"], name)
        self.assertError(self.create("été à paris"), 409)

    def test_names_are_compared_as_people_read_them(self):
        """NFC and case-folded: either Unicode form of "Café" is one name, and so are the Greek
        words whose lower-case differs only by the final sigma."""
        nfc, nfd = "Caf\u00e9", "Cafe\u0301"
        self.assertEqual(self.create(nfd).json["bucket"]["name"], nfd, "kept as sent")
        self.assertError(self.create(nfc), 409, "You already have a bucket with this name")
        self.assertError(self.create("CAFE\u0301"), 409)
        sisyphus = self.create("Σίσυφος").json["bucket"]
        self.assertError(self.create("ΣΊΣΥΦΟΣ"), 409)
        self.assertEqual(self.create("Straße").status_code, 201)
        self.assertError(self.create("STRASSE"), 409)
        renamed = self.client.patch(f"/v1/buckets/{sisyphus['id']}", headers=self.h, json={"name": nfc})
        self.assertError(renamed, 409)
        recased = self.client.put(f"/v1/buckets/{sisyphus['id']}", headers=self.h, json={"name": "σίσυφος"})
        self.assertEqual(recased.status_code, 200, "its own name in another case")
        self.assertEqual(self.create(nfc, headers=self.headers_for()).status_code, 201, "per owner")

    def test_q_finds_either_form_of_a_name(self):
        for name in ("Cafe\u0301 crème", "Caf\u00e9 noir", "ΣΊΣΥΦΟΣ", "Straße"):
            self.assertEqual(self.create(name).status_code, 201)
        for q, found in (
            ("caf\u00e9", 2),
            ("CAFE\u0301", 2),
            ("crème", 1),
            ("σίσυφος", 1),
            ("ς", 1),
            ("strasse", 1),
            ("ß", 1),
        ):
            with self.subTest(q=q):
                body = self.client.get("/v1/buckets", query_string={"q": q}, headers=self.h).json
                self.assertEqual((len(body["buckets"]), body["pagination"]["total"]), (found, found))

    def test_a_name_of_invisible_characters_is_blank(self):
        for name in ("\u200b\u200b", "\ufeff", "\u200e\u200f", "\u2060 \u00a0", "\u3164", "\u2800", "\u200b\ufe0f"):
            with self.subTest(name=name):
                body = self.assertFieldError(self.create(name), "name")
                self.assertEqual(body["errors"]["name"], ["Must not be blank."])
        self.assertEqual(self.create("\u200b Trip \ufeff").json["bucket"]["name"], "Trip", "trimmed")
        self.assertEqual(self.create("❤\ufe0f").json["bucket"]["name"], "❤\ufe0f", "a variation selector stays")
        bucket_id = self.create("Kept").json["bucket"]["id"]
        item = self.client.post(f"/v1/buckets/{bucket_id}/items", headers=self.h, json={"name": "\u200b"})
        self.assertFieldError(item, "name")

    def test_bad_bodies(self):
        cases = [
            ({}, "name"),
            ({"name": ""}, "name"),
            ({"name": "   "}, "name"),
            ({"name": "\t\n"}, "name"),
            ({"name": None}, "name"),
            ({"name": 5}, "name"),
            ({"name": True}, "name"),
            ({"name": ["a"]}, "name"),
            ({"name": {"a": 1}}, "name"),
            ({"name": "x" * 101}, "name"),
            ({"name": "x" * 100000}, "name"),
            ({"name": "a\x00b"}, "name"),
            ({"name": "ok", "extra": 1}, "extra"),
            ({"name": "ok", "id": 9}, "id"),
            ({"name": "ok", "owner_id": 2}, "owner_id"),
            ({"name": "ok", "item_count": 3}, "item_count"),
            ({"name": "ok", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ]
        for body, field in cases:
            with self.subTest(body=str(body)[:60]):
                self.assertFieldError(self.client.post("/v1/buckets", headers=self.h, json=body), field)
        self.assertError(self.client.post("/v1/buckets", headers=self.h, json=[{"name": "x"}]), 400)
        self.assertError(
            self.client.post("/v1/buckets", headers=self.h, data="{", content_type="application/json"), 400
        )
        self.assertError(self.client.post("/v1/buckets", headers=self.h, data="name=x", content_type="text/plain"), 415)
        self.assertEqual(db.session.scalars(select(Bucket)).all(), [])

    def test_put_patch_delete(self):
        bucket_id = self.create("Old").json["bucket"]["id"]
        response = self.client.put(f"/v1/buckets/{bucket_id}", headers=self.h, json={"name": "New"})
        self.assertEqual(response.json["bucket"]["name"], "New")
        self.assertFieldError(self.client.put(f"/v1/buckets/{bucket_id}", headers=self.h, json={}), "name")
        response = self.client.patch(f"/v1/buckets/{bucket_id}", headers=self.h, json={"name": "Newer"})
        self.assertEqual(response.json["bucket"]["name"], "Newer")
        self.assertError(self.client.patch(f"/v1/buckets/{bucket_id}", headers=self.h, json={}), 422)
        self.assertFieldError(self.client.patch(f"/v1/buckets/{bucket_id}", headers=self.h, json={"name": " "}), "name")
        self.assertFieldError(self.client.patch(f"/v1/buckets/{bucket_id}", headers=self.h, json={"nam": "x"}), "nam")
        self.create("Taken")
        self.assertError(self.client.patch(f"/v1/buckets/{bucket_id}", headers=self.h, json={"name": "taken"}), 409)
        self.assertEqual(db.session.get(Bucket, bucket_id).name, "Newer")
        self.client.post(f"/v1/buckets/{bucket_id}/items", headers=self.h, json={"name": "a"})
        response = self.client.delete(f"/v1/buckets/{bucket_id}", headers=self.h)
        self.assertEqual(response.json, {"success": True, "deleted": bucket_id})
        self.assertIsNone(db.session.get(Bucket, bucket_id))
        self.assertEqual(db.session.scalars(select(Item).where(Item.bucket_id == bucket_id)).all(), [])
        self.assertError(self.client.get(f"/v1/buckets/{bucket_id}", headers=self.h), 404)

    def test_other_users_buckets_do_not_exist(self):
        bucket_id = self.create("Secret").json["bucket"]["id"]
        intruder = self.headers_for()
        self.assertError(self.client.get(f"/v1/buckets/{bucket_id}", headers=intruder), 404, "Resource not found")
        self.assertError(self.client.put(f"/v1/buckets/{bucket_id}", headers=intruder, json={"name": "x"}), 404)
        self.assertError(self.client.patch(f"/v1/buckets/{bucket_id}", headers=intruder, json={"name": "x"}), 404)
        self.assertError(self.client.delete(f"/v1/buckets/{bucket_id}", headers=intruder), 404)
        self.assertError(self.client.get(f"/v1/buckets/{bucket_id}/items", headers=intruder), 404)
        self.assertError(self.client.post(f"/v1/buckets/{bucket_id}/items", headers=intruder, json={"name": "x"}), 404)
        self.assertEqual(self.client.get("/v1/buckets", headers=intruder).json["buckets"], [])
        self.assertEqual(db.session.get(Bucket, bucket_id).name, "Secret")

    def test_needs_a_token(self):
        self.assertError(self.client.get("/v1/buckets"), 401, "Provide an authorization header")
        self.assertError(self.client.post("/v1/buckets", json={"name": "x"}), 401)
        self.assertError(
            self.client.get("/v1/buckets/1", headers={"Authorization": "Bearer junk"}),
            401,
            "Invalid token. Please log in again.",
        )


class CollectionTests(APITestCase):
    def setUp(self):
        super().setUp()
        self.user_id, self.h = self.account()

    def seed(self, names):
        db.session.execute(insert(Bucket), [{"owner_id": self.user_id, "name": name} for name in names])
        recount_all()
        db.session.commit()

    def get(self, query=""):
        return self.client.get(f"/v1/buckets{query}", headers=self.h)

    def test_empty_collection(self):
        body = self.get().json
        self.assertEqual(body["buckets"], [])
        self.assertEqual(
            body["pagination"],
            {"page": 1, "per_page": 20, "total": 0, "pages": 0, "next": None, "prev": None, "next_cursor": None},
        )

    def test_pages_and_links(self):
        self.seed([f"b{n:03d}" for n in range(45)])
        response = self.get("?page=2&per_page=20&sort=name")
        body = response.json
        self.assertEqual([b["name"] for b in body["buckets"]][:2], ["b020", "b021"])
        self.assertEqual(
            body["pagination"],
            {
                "page": 2,
                "per_page": 20,
                "total": 45,
                "pages": 3,
                "next": "/v1/buckets?page=3&per_page=20&sort=name",
                "prev": "/v1/buckets?page=1&per_page=20&sort=name",
                "next_cursor": body["pagination"]["next_cursor"],
            },
        )
        link = response.headers["Link"]
        self.assertIn('</v1/buckets?page=3&per_page=20&sort=name>; rel="next"', link)
        self.assertIn('</v1/buckets?page=1&per_page=20&sort=name>; rel="prev"', link)
        self.assertIn('rel="first"', link)
        self.assertIn('</v1/buckets?page=3&per_page=20&sort=name>; rel="last"', link)
        last = self.get("?page=3&per_page=20").json
        self.assertEqual(len(last["buckets"]), 5)
        self.assertIsNone(last["pagination"]["next"])

    def test_exactly_one_full_page_and_past_the_end(self):
        self.seed([f"b{n}" for n in range(20)])
        body = self.get().json
        self.assertEqual((len(body["buckets"]), body["pagination"]["pages"], body["pagination"]["next"]), (20, 1, None))
        past = self.get("?page=5").json
        self.assertEqual(past["buckets"], [])
        self.assertEqual(past["pagination"]["total"], 20)
        self.assertEqual(past["pagination"]["prev"], "/v1/buckets?page=1&per_page=20")

    def test_bad_paging_is_400(self):
        for query in (
            "?page=0",
            "?page=-1",
            "?page=abc",
            "?page=1.5",
            "?per_page=0",
            "?per_page=101",
            "?per_page=x",
            "?page=99999999999999999999",
            "?sort=owner_id",
            "?sort=-",
            "?sort=name;drop",
            "?q=" + "x" * 201,
            "?q=a%00b",
        ):
            with self.subTest(query=query):
                body = self.assertError(self.get(query), 400)
                self.assertTrue(body["errors"])

    def test_unknown_query_parameters_are_ignored(self):
        self.assertEqual(self.get("?cachebust=123").status_code, 200)

    def test_search_is_literal_and_case_insensitive(self):
        self.seed(["100% done", "100 percent", "snake_case", "snakeXcase", "Crème brûlée", "CRÈME fraîche"])

        def names(q):
            return sorted(b["name"] for b in self.get(f"?q={q}").json["buckets"])

        self.assertEqual(names("%25"), ["100% done"])
        self.assertEqual(names("_"), ["snake_case"])
        self.assertEqual(names("crème"), ["CRÈME fraîche", "Crème brûlée"])
        self.assertEqual(names("BRÛLÉE"), ["Crème brûlée"])
        self.assertEqual(names("\\"), [])

    def test_sort_both_ways_with_stable_ties(self):
        self.seed(["b", "a", "c", "a2"])
        asc = [b["name"] for b in self.get("?sort=name").json["buckets"]]
        desc = [b["name"] for b in self.get("?sort=-name").json["buckets"]]
        self.assertEqual(asc, ["a", "a2", "b", "c"])
        self.assertEqual(desc, list(reversed(asc)))
        ids = [b["id"] for b in self.get("?sort=created_at").json["buckets"]]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual([b["id"] for b in self.get("?sort=-created_at").json["buckets"]], sorted(ids, reverse=True))

    def test_a_page_of_100_costs_constant_queries(self):
        self.seed([f"b{n}" for n in range(150)])
        bucket_ids = db.session.scalars(select(Bucket.id)).all()
        db.session.execute(insert(Item), [{"bucket_id": bid, "name": "i"} for bid in bucket_ids for _ in range(3)])
        recount_all()
        db.session.commit()
        with count_queries() as small:
            self.get("?per_page=5")
        with count_queries() as large:
            body = self.get("?per_page=100").json
        self.assertEqual(len(body["buckets"]), 100)
        self.assertTrue(all(b["item_count"] == 3 for b in body["buckets"]))
        self.assertEqual(len(small), len(large))
        self.assertLessEqual(len(large), 1 + 3, large)  # auth + at most 3
