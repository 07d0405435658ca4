"""/v1/buckets/<id>/items: items reached only through their own bucket."""

import unittest

from sqlalchemy import delete, event, select

from app.extensions import db
from app.models import Item
from tests.helpers import IS_POSTGRES, APITestCase


class ItemTests(APITestCase):
    def setUp(self):
        super().setUp()
        _, self.h = self.account()
        self.bucket_id = self.client.post("/v1/buckets", headers=self.h, json={"name": "Home"}).json["bucket"]["id"]
        self.base = f"/v1/buckets/{self.bucket_id}/items"

    def add(self, **fields):
        return self.client.post(self.base, headers=self.h, json={"name": "Paint", **fields})

    def test_create_with_defaults_and_location(self):
        response = self.add()
        self.assertEqual(response.status_code, 201)
        item = response.json["item"]
        self.assertEqual(set(item), {"id", "bucket_id", "name", "description", "done", "created_at", "modified_at"})
        self.assertEqual((item["bucket_id"], item["description"], item["done"]), (self.bucket_id, "", False))
        self.assertEqual(response.headers["Location"], f"{self.base}/{item['id']}")
        self.assertEqual(self.client.get(response.headers["Location"], headers=self.h).json["item"], item)
        bucket = self.client.get(f"/v1/buckets/{self.bucket_id}", headers=self.h).json["bucket"]
        self.assertEqual(bucket["item_count"], 1)

    def test_full_item(self):
        item = self.add(name=" Fix roof ", description="  before winter ", done=True).json["item"]
        self.assertEqual((item["name"], item["description"], item["done"]), ("Fix roof", "  before winter ", True))

    def test_bad_items(self):
        cases = [
            ({"name": ""}, "name"),
            ({"name": "  "}, "name"),
            ({"name": "x" * 201}, "name"),
            ({"description": "x" * 2001}, "description"),
            ({"done": "true"}, "done"),
            ({"done": 1}, "done"),
            ({"done": None}, "done"),
            ({"description": 5}, "description"),
            ({"bucket_id": 2}, "bucket_id"),
            ({"colour": "red"}, "colour"),
            ({"name": "a\x00"}, "name"),
        ]
        for fields, field in cases:
            with self.subTest(fields=str(fields)[:50]):
                self.assertFieldError(self.add(**fields), field)
        self.assertFieldError(self.client.post(self.base, headers=self.h, json={}), "name")
        self.assertError(self.client.post(self.base, headers=self.h, json=[]), 400)
        self.assertEqual(db.session.scalars(select(Item)).all(), [])

    def test_put_replaces_patch_changes(self):
        item_id = self.add(description="d", done=True).json["item"]["id"]
        url = f"{self.base}/{item_id}"
        replaced = self.client.put(url, headers=self.h, json={"name": "New"}).json["item"]
        self.assertEqual((replaced["name"], replaced["description"], replaced["done"]), ("New", "", False))
        patched = self.client.patch(url, headers=self.h, json={"done": True}).json["item"]
        self.assertEqual((patched["name"], patched["done"]), ("New", True))
        self.assertFieldError(self.client.patch(url, headers=self.h, json={"done": "yes"}), "done")
        self.assertFieldError(self.client.put(url, headers=self.h, json={"done": True}), "name")
        self.assertError(self.client.patch(url, headers=self.h, json={}), 422)
        self.assertEqual(self.client.delete(url, headers=self.h).json, {"success": True, "deleted": item_id})
        self.assertError(self.client.get(url, headers=self.h), 404)

    def test_filter_search_sort(self):
        for name, done in (("alpha", True), ("beta", False), ("gamma", True)):
            self.add(name=name, done=done)
        names = lambda query: [i["name"] for i in self.client.get(self.base + query, headers=self.h).json["items"]]  # noqa: E731
        self.assertEqual(names("?done=true"), ["alpha", "gamma"])
        self.assertEqual(names("?done=false"), ["beta"])
        self.assertEqual(names("?q=MM"), ["gamma"])
        self.assertEqual(names("?sort=-name"), ["gamma", "beta", "alpha"])
        self.assertError(self.client.get(self.base + "?done=maybe", headers=self.h), 400)
        self.assertError(self.client.get(self.base + "?sort=bucket_id", headers=self.h), 400)

    def test_items_only_through_their_own_bucket(self):
        item_id = self.add().json["item"]["id"]
        other_bucket = self.client.post("/v1/buckets", headers=self.h, json={"name": "Other"}).json["bucket"]["id"]
        wrong = f"/v1/buckets/{other_bucket}/items/{item_id}"
        for method in ("get", "put", "patch", "delete"):
            with self.subTest(method=method):
                self.assertError(getattr(self.client, method)(wrong, headers=self.h, json={"name": "x"}), 404)
        intruder = self.headers_for()
        own = f"{self.base}/{item_id}"
        for method in ("get", "put", "patch", "delete"):
            with self.subTest(intruder=method):
                self.assertError(getattr(self.client, method)(own, headers=intruder, json={"name": "x"}), 404)
        self.assertEqual(db.session.get(Item, item_id).name, "Paint")
        self.assertError(self.client.get("/v1/buckets/999999/items", headers=self.h), 404)

    @unittest.skipUnless(IS_POSTGRES, "SQLite: a write holds the database from its first statement")
    def test_an_item_deleted_before_the_write_locks_it_is_404(self):
        item_id = self.add().json["item"]["id"]

        def delete_first(conn, cursor, statement, *args):
            if statement.startswith("SELECT items.") and "FOR UPDATE" in statement:
                with db.engine.begin() as other:  # another request's DELETE, committed first
                    other.execute(delete(Item).where(Item.id == item_id))

        event.listen(db.engine, "before_cursor_execute", delete_first)
        try:
            response = self.client.patch(f"{self.base}/{item_id}", headers=self.h, json={"done": True})
        finally:
            event.remove(db.engine, "before_cursor_execute", delete_first)
        self.assertError(response, 404, "Resource not found")
        self.assertIsNone(db.session.get(Item, item_id))
