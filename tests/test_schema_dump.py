"""The schemas' short dump path (app/fields.py) answers exactly what marshmallow's own dump does."""

import io
import unittest
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from unittest import mock

import marshmallow
import orjson
from marshmallow import fields, post_dump

from app.fields import Schema, UTCDateTime
from tests.helpers import APITestCase, image_bytes


@contextmanager
def marshmallows_own_dump():
    """Every schema of ours dumps the way plain marshmallow does, nested ones included."""
    with mock.patch.object(Schema, "dump", marshmallow.Schema.dump):
        yield


def both_ways(schema, obj, **kwargs):
    fast = orjson.dumps(schema.dump(obj, **kwargs))
    with marshmallows_own_dump():
        reference = orjson.dumps(schema.dump(obj, **kwargs))
    return fast, reference


class Inner(Schema):
    id = fields.Integer()
    label = fields.String(data_key="name")


class Everything(Schema):
    id = fields.Integer()
    title = fields.String(attribute="heading")
    absent = fields.String()
    defaulted = fields.String(dump_default="none given")
    called = fields.Integer(dump_default=lambda: 7)
    nothing = fields.String(allow_none=True)
    stamp = UTCDateTime()
    shouted = fields.Function(lambda obj: obj.heading.upper())
    owner_name = fields.String(attribute="owner.name")
    inner = fields.Nested(Inner)
    inners = fields.Nested(Inner, many=True)
    flags = fields.List(fields.Boolean())
    extra = fields.Dict()


class Hooked(Inner):
    @post_dump
    def stamp_it(self, data, **kwargs):
        return {**data, "hooked": True}


class SchemaDumpUnitTests(unittest.TestCase):
    def sample(self, **changes):
        values = {
            "id": 3,
            "heading": "Hello",
            "nothing": None,
            "stamp": datetime(2024, 2, 29, 23, 59, 58, 999),
            "owner": SimpleNamespace(name="Ann"),
            "inner": SimpleNamespace(id=1, label="one"),
            "inners": [SimpleNamespace(id=2, label="two"), {"id": 3, "label": "three"}],
            "flags": [True, False],
            "extra": {"a": 1},
        }
        return SimpleNamespace(**{**values, **changes})

    def assertSame(self, schema, obj, **kwargs):
        fast, reference = both_ways(schema, obj, **kwargs)
        self.assertEqual(fast, reference)
        return orjson.loads(fast)

    def test_every_kind_of_field_dumps_as_marshmallow_does(self):
        dumped = self.assertSame(Everything(), self.sample())
        self.assertEqual(dumped["title"], "Hello")
        self.assertNotIn("absent", dumped)
        self.assertEqual(dumped["inners"][1], {"id": 3, "name": "three"})

    def test_nones_missing_values_and_dicts(self):
        self.assertSame(Everything(), self.sample(inner=None, inners=None, stamp=None, id=None))
        self.assertSame(
            Everything(exclude=("shouted",)), {"id": 1, "heading": "from a dict", "owner": {"name": "B"}, "items": 2}
        )
        self.assertSame(Inner(), {"keys": 1})  # missing keys fall back to attributes, as in marshmallow

    def test_many_only_and_exclude(self):
        objs = [self.sample(id=n) for n in range(3)]
        self.assertSame(Everything(many=True), objs)
        self.assertSame(Everything(), objs, many=True)
        self.assertSame(Everything(only=("id", "inner")), self.sample())
        self.assertSame(Everything(exclude=("stamp",)), self.sample())
        self.assertSame(Inner(many=True), None)

    def test_times_are_written_as_strftime_writes_them(self):
        field = UTCDateTime()
        moments = [
            datetime(2026, 11, 24, 0, 19, 34),
            datetime(2026, 11, 24, 0, 19, 34, 999999),
            datetime(999, 1, 2, 3, 4, 5),
            datetime(2026, 11, 24, 1, 2, 3, tzinfo=timezone(timedelta(hours=2))),
        ]
        for moment in moments:
            self.assertEqual(field._serialize(moment, "at", None), moment.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def test_a_schema_with_a_dump_hook_keeps_marshmallows_path(self):
        self.assertEqual(self.assertSame(Hooked(), {"id": 1, "label": "x"}), {"id": 1, "name": "x", "hooked": True})


class ApiAnswersTests(APITestCase):
    """Every JSON answer of the API, byte for byte, with the short path and without it."""

    def setUp(self):
        super().setUp()
        self.user_id, self.admin = self.account("admin")
        bucket = self.post("/v1/buckets", {"name": "Trips"})["bucket"]
        self.post(f"/v1/buckets/{bucket['id']}/items", {"name": "Rome", "description": "", "done": True})
        self.post(f"/v1/buckets/{bucket['id']}/items", {"name": "Oslo"})
        actor = self.post("/v1/actors", {"name": "Ann", "age": 30, "gender": "female"})["actor"]
        self.post("/v1/actors", {"name": "Bob", "age": 41, "gender": "male"})
        movie = self.post("/v1/movies", {"title": "Film", "release_date": "2020-8-12", "actor_ids": [actor["id"]]})
        self.post("/v1/movies", {"title": "Empty cast", "release_date": "2021-01-01"})
        upload = self.client.post(
            "/v1/images",
            headers=self.admin,
            data={"images": [(io.BytesIO(image_bytes()), "a.png")], "tags": "sea, sun"},
            content_type="multipart/form-data",
        )
        self.assertEqual(upload.status_code, 201, upload.json)
        image = upload.json["images"][0]
        self.paths = [
            "/v1/",
            "/v1/health",
            "/v1/auth/me",
            "/v1/users",
            f"/v1/users/{self.user_id}",
            "/v1/buckets?per_page=1",
            f"/v1/buckets/{bucket['id']}",
            f"/v1/buckets/{bucket['id']}/items?sort=-name",
            f"/v1/buckets/{bucket['id']}/items?per_page=1&cursor=",
            "/v1/actors?gender=female",
            f"/v1/actors/{actor['id']}",
            f"/v1/actors/{actor['id']}/movies",
            "/v1/movies?sort=-release_date",
            f"/v1/movies/{movie['movie']['id']}",
            f"/v1/movies/{movie['movie']['id']}/actors",
            "/v1/images?tag=sea",
            f"/v1/images/{image['id']}",
            "/v1/buckets/999999",
        ]

    def post(self, path, body):
        response = self.client.post(path, headers=self.admin, json=body)
        self.assertEqual(response.status_code, 201, response.json)
        return response.json

    def answer(self, path):
        response = self.client.get(path, headers=self.admin)
        self.assertEqual(response.mimetype, "application/json", path)
        return response.status_code, response.headers.get("ETag"), response.get_data()

    def test_every_answer_is_the_same_byte_for_byte(self):
        for path in self.paths:
            with self.subTest(path=path):
                fast = self.answer(path)
                with marshmallows_own_dump():
                    reference = self.answer(path)
                self.assertEqual(fast, reference)
