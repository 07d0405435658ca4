"""Concurrent writes on one row: 2xx, 404, 409 or 422 with a true message, never 5xx,
and the database left consistent (no orphans, counters equal to the rows they count).
The casts' races run on SQLite as well as PostgreSQL."""

import threading

from tests.helpers import in_parallel
from tests.liveserver import LiveServerTestCase, RaceTestCase, stop_shared_server

ROUNDS = 5
WRITERS, WRITES = 4, 10


def tearDownModule():
    stop_shared_server()


class BucketRaces(LiveServerTestCase):
    def test_delete_a_bucket_while_items_are_posted_into_it(self):
        user_id, headers = self.server.account()
        answers = []
        for n in range(ROUNDS):
            bucket = self.server.request("POST", "/v1/buckets", json={"name": f"b{n}"}, headers=headers).json["bucket"]
            path = f"/v1/buckets/{bucket['id']}"
            post = ("POST", f"{path}/items", {"json": {"name": "thing"}, "headers": headers})
            answers += self.server.at_once([("DELETE", path, {"headers": headers})] + [post] * 5)
        self.assertStatuses(answers, {200, 201, 404})
        self.assertEqual(self.server.scalar("SELECT count(*) FROM buckets WHERE owner_id = :u", u=user_id), 0)
        self.assertEqual(
            self.server.scalar(
                "SELECT count(*) FROM items i LEFT JOIN buckets b ON b.id = i.bucket_id WHERE b.id IS NULL"
            ),
            0,
        )
        self.assertEqual(self.server.scalar("SELECT bucket_count FROM users WHERE id = :u", u=user_id), 0)


class CastRaces(RaceTestCase):
    def setUp(self):
        _, self.headers = self.server.account("executive_producer")
        self.actor_ids = [self.new_actor(f"actor {n}") for n in range(6)]

    def new_actor(self, name):
        body = {"name": name, "age": 40, "gender": "female"}
        return self.server.request("POST", "/v1/actors", json=body, headers=self.headers).json["actor"]["id"]

    def new_movie(self, title):
        body = {"title": title, "release_date": "2020-08-12"}
        return self.server.request("POST", "/v1/movies", json=body, headers=self.headers).json["movie"]["id"]

    def cast(self, movie_id):
        rows = self.server.rows("SELECT actor_id FROM movie_actors WHERE movie_id = :m ORDER BY actor_id", m=movie_id)
        return [actor_id for (actor_id,) in rows]

    def assertCountsMatchCasts(self):
        wrong = self.server.rows(
            "SELECT a.id, a.movie_count, count(ma.movie_id) FROM actors a "
            "LEFT JOIN movie_actors ma ON ma.actor_id = a.id GROUP BY a.id HAVING a.movie_count <> count(ma.movie_id)"
        )
        self.assertEqual(wrong, [])

    def test_four_concurrent_cast_replacements(self):
        ids = self.actor_ids
        casts = [ids[0:3], ids[2:5], ids[3:6], [ids[0], ids[5]]]
        for n in range(ROUNDS):
            movie = self.new_movie(f"recast {n}")
            path = f"/v1/movies/{movie}"
            answers = self.server.at_once(
                [("PATCH", path, {"json": {"actor_ids": cast}, "headers": self.headers}) for cast in casts]
            )
            self.assertStatuses(answers, {200, 409})
            written = [
                sorted(a["id"] for a in answer.json["movie"]["actors"]) for answer in answers if answer.status == 200
            ]
            self.assertTrue(written, "at least one replacement succeeds")
            self.assertIn(self.cast(movie), written, "the cast is one successful write's, whole")
        self.assertCountsMatchCasts()

    def test_delete_an_actor_while_a_cast_is_patched_to_include_them(self):
        movie = self.new_movie("with a vanishing actor")
        for n in range(ROUNDS):
            doomed = self.new_actor(f"doomed {n}")
            answers = self.server.at_once(
                [
                    ("DELETE", f"/v1/actors/{doomed}", {"headers": self.headers}),
                    (
                        "PATCH",
                        f"/v1/movies/{movie}",
                        {"json": {"actor_ids": [doomed, self.actor_ids[0]]}, "headers": self.headers},
                    ),
                ]
            )
            self.assertStatuses(answers, {200, 404, 409, 422})
            deleted, patched = answers
            self.assertEqual(deleted.status, 200)
            if patched.status == 422:
                self.assertEqual(patched.json["errors"], {"actor_ids": [f"Unknown actor ids: {doomed}."]})
            self.assertNotEqual(patched.message, "A movie with this title and release date already exists")
            self.assertNotIn(doomed, self.cast(movie))
        self.assertCountsMatchCasts()

    def test_four_writers_replace_one_cast_ten_times_each(self):
        """Issue 26 item 4: on SQLite this answered {200: 37, 500: 3}."""
        ids = self.actor_ids
        casts = [ids[0:3], ids[2:5], ids[3:6], [ids[0], ids[5]]]
        movie = self.new_movie("recast many times")
        path = f"/v1/movies/{movie}"
        barrier, answers = threading.Barrier(WRITERS), []

        def writer(cast):
            barrier.wait()
            for _ in range(WRITES):
                answer = self.server.request("PATCH", path, json={"actor_ids": cast}, headers=self.headers)
                answers.append((answer, cast))

        in_parallel(writer, [(cast,) for cast in casts])
        self.assertStatuses([answer for answer, _ in answers], {200})
        for answer, cast in answers:
            self.assertEqual(sorted(a["id"] for a in answer.json["movie"]["actors"]), cast, "its own write, whole")
        self.assertIn(self.cast(movie), casts)
        self.assertCountsMatchCasts()
