"""Counter columns under concurrency: whatever runs at once, each counter equals the rows it counts."""

import threading
import time
import uuid

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from tests.liveserver import LiveServerTestCase, stop_shared_server

TRIES = 3
DUPLICATE_MOVIE = "A movie with this title and release date already exists"


def tearDownModule():
    stop_shared_server()


class CounterRaces(LiveServerTestCase):
    def test_items_added_and_deleted_at_once(self):
        _, headers = self.server.account()
        bucket = self.server.request("POST", "/v1/buckets", {"name": "racing"}, headers).json["bucket"]["id"]
        items = f"/v1/buckets/{bucket}/items"
        existing = [self.server.request("POST", items, {"name": f"i{n}"}, headers).json["item"]["id"] for n in range(6)]
        requests = [("POST", items, {"json": {"name": f"new {n}"}, "headers": headers}) for n in range(8)]
        requests += [("DELETE", f"{items}/{item}", {"headers": headers}) for item in existing for _ in range(2)]
        self.assertStatuses(self.server.at_once(requests), {200, 201, 404})
        counted = self.server.scalar("SELECT count(*) FROM items WHERE bucket_id = :b", b=bucket)
        self.assertEqual(counted, 8)
        self.assertEqual(self.server.scalar("SELECT item_count FROM buckets WHERE id = :b", b=bucket), counted)

    def test_items_added_while_their_bucket_is_deleted(self):
        _, headers = self.server.account()
        for _ in range(TRIES):
            bucket = self.server.request("POST", "/v1/buckets", {"name": "doomed"}, headers).json["bucket"]["id"]
            items = f"/v1/buckets/{bucket}/items"
            requests = [("POST", items, {"json": {"name": f"late {n}"}, "headers": headers}) for n in range(6)]
            requests.append(("DELETE", f"/v1/buckets/{bucket}", {"headers": headers}))
            self.assertStatuses(self.server.at_once(requests), {200, 201, 404})
            self.assertEqual(self.server.scalar("SELECT count(*) FROM items WHERE bucket_id = :b", b=bucket), 0)

    def test_items_deleted_while_their_bucket_is_deleted(self):
        """An item's delete locks its bucket before the item, as the bucket's delete does (its
        items go with it): neither waits for the other in a cycle, so no deadlock (no 409)."""
        _, headers = self.server.account()
        for _ in range(2 * TRIES):
            bucket = self.server.request("POST", "/v1/buckets", {"name": "emptied"}, headers).json["bucket"]["id"]
            items = f"/v1/buckets/{bucket}/items"
            made = [self.server.request("POST", items, {"name": f"i{n}"}, headers).json["item"]["id"] for n in range(6)]
            requests = [("DELETE", f"{items}/{item}", {"headers": headers}) for item in made]
            requests.insert(3, ("DELETE", f"/v1/buckets/{bucket}", {"headers": headers}))
            self.assertStatuses(self.server.at_once(requests), {200, 404})
            self.assertEqual(self.server.scalar("SELECT count(*) FROM items WHERE bucket_id = :b", b=bucket), 0)

    def test_buckets_created_and_deleted_at_once(self):
        user, headers = self.server.account()
        existing = [
            self.server.request("POST", "/v1/buckets", {"name": f"b{n}"}, headers).json["bucket"]["id"]
            for n in range(5)
        ]
        requests = [("POST", "/v1/buckets", {"json": {"name": f"n{n % 4}"}, "headers": headers}) for n in range(8)]
        requests += [("DELETE", f"/v1/buckets/{b}", {"headers": headers}) for b in existing for _ in range(2)]
        self.assertStatuses(self.server.at_once(requests), {200, 201, 404, 409})
        counted = self.server.scalar("SELECT count(*) FROM buckets WHERE owner_id = :u", u=user)
        self.assertEqual(counted, 4)
        self.assertEqual(self.server.scalar("SELECT bucket_count FROM users WHERE id = :u", u=user), counted)

    def test_buckets_renamed_created_and_deleted_at_once(self):
        """Every writer of a user's buckets takes the user's row first: no deadlock, and the count
        and the revision (that keys cached search totals) move with exactly the writes that landed."""
        user, headers = self.server.account()
        existing = [
            self.server.request("POST", "/v1/buckets", {"name": f"b{n}"}, headers).json["bucket"]["id"]
            for n in range(6)
        ]
        revision = self.server.scalar("SELECT buckets_revision FROM users WHERE id = :u", u=user)
        requests = [("POST", "/v1/buckets", {"json": {"name": f"n{n % 3}"}, "headers": headers}) for n in range(6)]
        requests += [
            ("PUT", f"/v1/buckets/{b}", {"json": {"name": f"n{n % 3}"}, "headers": headers})
            for n, b in enumerate(existing[:3])
        ]
        requests += [("DELETE", f"/v1/buckets/{b}", {"headers": headers}) for b in existing[2:] for _ in range(2)]
        answers = self.server.at_once(requests)
        self.assertStatuses(answers, {200, 201, 404, 409})
        counted = self.server.scalar("SELECT count(*) FROM buckets WHERE owner_id = :u", u=user)
        self.assertEqual(self.server.scalar("SELECT bucket_count FROM users WHERE id = :u", u=user), counted)
        created = sum(answer.status == 201 for answer in answers)
        renamed = sum(
            answer.status == 200 for (method, *_), answer in zip(requests, answers, strict=True) if method == "PUT"
        )
        deleted = 6 + created - counted
        moved = self.server.scalar("SELECT buckets_revision FROM users WHERE id = :u", u=user) - revision
        self.assertEqual(moved, created + renamed + deleted)

    def test_casts_changed_and_movies_deleted_at_once(self):
        _, admin = self.server.account("admin")
        actors = [
            self.server.request("POST", "/v1/actors", {"name": f"a{n}", "age": 30, "gender": "x"}, admin).json["actor"][
                "id"
            ]
            for n in range(5)
        ]
        for attempt in range(TRIES):
            movie = self.server.request(
                "POST",
                "/v1/movies",
                {"title": f"m{attempt}", "release_date": "2001-01-01", "actor_ids": actors[:2]},
                admin,
            ).json["movie"]["id"]
            path = f"/v1/movies/{movie}"
            requests = [("PATCH", path, {"json": {"actor_ids": actors[n : n + 3]}, "headers": admin}) for n in range(3)]
            requests += [("PATCH", path, {"json": {"actor_ids": actors[::2]}, "headers": admin})]
            if attempt == TRIES - 1:
                requests += [("DELETE", path, {"headers": admin})] * 2
            self.assertStatuses(self.server.at_once(requests), {200, 404})
            drift = self.server.rows(
                "SELECT id, movie_count FROM actors WHERE movie_count <> "
                "(SELECT count(*) FROM movie_actors WHERE actor_id = actors.id)"
            )
            self.assertEqual(drift, [])

    def test_actors_and_movies_created_and_deleted_at_once(self):
        # Row-lock queues on the catalogue counts, yes; deadlocks (a 409 of another message), never.
        _, admin = self.server.account("admin")

        def created(path, body):
            answer = self.server.request("POST", path, body, admin)
            self.assertEqual(answer.status, 201, answer.json)
            return answer.json[path.rsplit("/", 1)[1][:-1]]["id"]

        for attempt in range(TRIES):
            actors = [created("/v1/actors", {"name": f"a{n}", "age": 30, "gender": "x"}) for n in range(6)]
            movies = [
                created("/v1/movies", {"title": f"old {attempt}-{n}", "release_date": "2001-01-01"}) for n in range(4)
            ]
            new_actor = {"name": "new", "age": 40, "gender": "y"}
            requests = [("POST", "/v1/actors", {"json": new_actor, "headers": admin})] * 6
            requests += [
                ("DELETE", f"/v1/actors/{actor}", {"headers": admin}) for actor in actors[:3] for _ in range(2)
            ]
            # Three titles twice each (one of each pair is a duplicate); some casts name a doomed actor.
            casts = [{"title": f"new {attempt}-{n % 3}", "actor_ids": [actors[n % 4], actors[5]]} for n in range(6)]
            requests += [
                ("POST", "/v1/movies", {"json": {**cast, "release_date": "2001-01-01"}, "headers": admin})
                for cast in casts
            ]
            requests += [("DELETE", f"/v1/movies/{movie}", {"headers": admin}) for movie in movies for _ in range(2)]
            answers = self.server.at_once(requests)
            self.assertStatuses(answers, {200, 201, 404, 409, 422})
            self.assertEqual({a.message for a in answers if a.status == 409} - {DUPLICATE_MOVIE}, set())
            totals = dict(self.server.rows("SELECT collection, total FROM catalogue_counts"))
            counted = {table: self.server.scalar(f"SELECT count(*) FROM {table}") for table in ("actors", "movies")}
            self.assertEqual(totals, counted)

    def test_actors_moved_between_tallies_deleted_and_created_at_once(self):
        # Lock order (actor row, tally rows sorted, catalogue count) rules out deadlocks: no 409 at all.
        _, admin = self.server.account("admin")
        genders = [f"race {uuid.uuid4().hex[:8]}", f"RACE {uuid.uuid4().hex[:8]}"]
        keys = [gender.lower() for gender in genders]

        def created(age, gender):
            answer = self.server.request("POST", "/v1/actors", {"name": "racer", "age": age, "gender": gender}, admin)
            self.assertEqual(answer.status, 201, answer.json)
            return answer.json["actor"]

        for _ in range(TRIES):
            moved, doomed = created(30, genders[0]), created(50, genders[0])
            up, down = created(60, genders[1]), created(70, genders[1])
            etag = self.server.request("GET", f"/v1/actors/{moved['id']}", headers=admin).headers["etag"]
            path = f"/v1/actors/{moved['id']}"
            requests = [("PATCH", path, {"json": {"age": age}, "headers": admin}) for age in (31, 32, 33, 40)]
            requests += [("PATCH", path, {"json": {"gender": genders[1].upper(), "age": 30}, "headers": admin})]
            requests += [("PATCH", path, {"json": {"age": 34}, "headers": {**admin, "If-Match": etag}})] * 2
            # Two actors moved back and forth the opposite ways between the same two tallies.
            requests += [
                ("PATCH", f"/v1/actors/{actor['id']}", {"json": {"age": age}, "headers": admin})
                for actor, ages in ((up, (70, 60) * 3), (down, (60, 70) * 3))
                for age in ages
            ]
            requests += [
                ("PATCH", f"/v1/actors/{doomed['id']}", {"json": {"age": age}, "headers": admin}) for age in (40, 30)
            ]
            requests += [("DELETE", f"/v1/actors/{doomed['id']}", {"headers": admin})] * 2
            requests += [
                ("POST", "/v1/actors", {"json": {"name": "new", "age": 40, "gender": g}, "headers": admin})
                for g in genders * 3
            ]
            answers = self.server.at_once(requests)
            self.assertStatuses(answers, {200, 201, 404, 412})
            self.assertTrue(any(a.status == 404 for a in answers), "one of the two DELETEs of one actor")
            tallies = self.server.rows(
                "SELECT gender_key, age, total FROM actor_tallies WHERE gender_key IN :keys AND total <> 0",
                keys=tuple(keys),
            )
            counted = self.server.rows(
                "SELECT lower(gender), age, count(*) FROM actors "
                "WHERE lower(gender) IN :keys GROUP BY lower(gender), age",
                keys=tuple(keys),
            )
            self.assertEqual(sorted(tallies), sorted(counted))
            totals = dict(self.server.rows("SELECT collection, total FROM catalogue_counts"))
            self.assertEqual(totals["actors"], self.server.scalar("SELECT count(*) FROM actors"))

    def test_a_write_waiting_for_a_tally_holds_no_later_tally_nor_the_count(self):
        # The lock order, seen from outside: a write queued on one tally row holds no tally after
        # it in key order, nor the catalogue count (so no two such writes can wait for each other).
        _, admin = self.server.account("admin")
        gender = f"order {uuid.uuid4().hex[:8]}"
        for age in (60, 70):
            self.server.request("POST", "/v1/actors", {"name": "placed", "age": age, "gender": gender}, admin)
        actor = self.server.request("POST", "/v1/actors", {"name": "moved", "age": 70, "gender": gender}, admin)
        writes = [
            ("PATCH", f"/v1/actors/{actor.json['actor']['id']}", {"age": 60}),  # from the later tally to the first
            ("POST", "/v1/actors", {"name": "new", "age": 60, "gender": gender}),
        ]
        answers = []
        tally = "SELECT 1 FROM actor_tallies WHERE gender_key = :g AND age = :age FOR UPDATE"
        with self.server.engine.connect() as holder:
            holder.execute(text(tally), {"g": gender, "age": 60})  # the first tally, held
            threads = [
                threading.Thread(target=lambda w=w: answers.append(self.server.request(*w, headers=admin)))
                for w in writes
            ]
            for thread in threads:
                thread.start()
            self.wait_for_lock_waits("INSERT INTO actor_tallies%", len(writes))
            with self.server.engine.connect() as probe:
                for statement, params in (
                    (tally + " NOWAIT", {"g": gender, "age": 70}),
                    ("SELECT 1 FROM catalogue_counts WHERE collection = 'actors' FOR UPDATE NOWAIT", {}),
                ):
                    try:
                        probe.execute(text(statement), params)
                    except OperationalError as error:
                        self.fail(f"held by a write waiting for an earlier tally: {statement} ({error.orig})")
                probe.rollback()
            holder.rollback()
        for thread in threads:
            thread.join()
        self.assertEqual(sorted(a.status for a in answers), [200, 201])
        tallies = self.server.rows("SELECT age, total FROM actor_tallies WHERE gender_key = :g", g=gender)
        self.assertEqual(sorted(tallies), [(60, 3), (70, 1)])

    def wait_for_lock_waits(self, query, n, seconds=10):
        deadline = time.monotonic() + seconds
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE :query"
        )
        while self.server.scalar(sql, query=query) < n:
            self.assertLess(time.monotonic(), deadline, f"{n} statements never waited for a lock: {query}")
            time.sleep(0.02)
