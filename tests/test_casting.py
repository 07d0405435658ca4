"""/v1/actors and /v1/movies: the cast both ways and the permission matrix."""

import unittest
from datetime import date, timedelta

from sqlalchemy import insert, select, update

from app.extensions import db
from app.models import Actor, ActorTally, CatalogueCount, Movie, movie_actors
from app.seed import recount_all
from tests.helpers import IS_POSTGRES, APITestCase, actor_tallies, captured_statements, count_queries, tallied_actors

ROLES = ("user", "casting_assistant", "casting_director", "executive_producer", "admin")
ALLOWED = {
    "get:actors": {"casting_assistant", "casting_director", "executive_producer", "admin"},
    "get:movies": {"casting_assistant", "casting_director", "executive_producer", "admin"},
    "post:actors": {"casting_director", "executive_producer", "admin"},
    "patch:actors": {"casting_director", "executive_producer", "admin"},
    "delete:actors": {"casting_director", "executive_producer", "admin"},
    "patch:movies": {"casting_director", "executive_producer", "admin"},
    "post:movies": {"executive_producer", "admin"},
    "delete:movies": {"executive_producer", "admin"},
}
ACTOR = {"name": "Ada Lovelace", "age": 36, "gender": "female"}


class CastingTestCase(APITestCase):
    def setUp(self):
        super().setUp()
        _, self.admin = self.account("admin")

    def new_actor(self, **fields):
        response = self.client.post("/v1/actors", headers=self.admin, json={**ACTOR, **fields})
        self.assertEqual(response.status_code, 201, response.json)
        return response.json["actor"]

    def new_movie(self, **fields):
        body = {"title": "Analytical Engine", "release_date": "2021-03-04", **fields}
        response = self.client.post("/v1/movies", headers=self.admin, json=body)
        self.assertEqual(response.status_code, 201, response.json)
        return response.json["movie"]


class PermissionMatrixTests(CastingTestCase):
    def requests(self):
        """(permission, method, path, body) for every casting endpoint; fresh ids each call."""
        actor = self.new_actor()["id"]
        movie = self.new_movie(title=f"M{actor}")["id"]
        return [
            ("get:actors", "get", "/v1/actors", None),
            ("get:actors", "get", f"/v1/actors/{actor}", None),
            ("get:actors", "get", f"/v1/actors/{actor}/movies", None),
            ("post:actors", "post", "/v1/actors", ACTOR),
            ("patch:actors", "patch", f"/v1/actors/{actor}", {"age": 40}),
            ("get:movies", "get", "/v1/movies", None),
            ("get:movies", "get", f"/v1/movies/{movie}", None),
            ("get:movies", "get", f"/v1/movies/{movie}/actors", None),
            ("post:movies", "post", "/v1/movies", {"title": f"New {actor}", "release_date": "2020-01-01"}),
            ("patch:movies", "patch", f"/v1/movies/{movie}", {"title": f"Renamed {actor}"}),
            ("delete:movies", "delete", f"/v1/movies/{movie}", None),
            ("delete:actors", "delete", f"/v1/actors/{actor}", None),
        ]

    def test_every_role_on_every_endpoint(self):
        for role in (None,) + ROLES:
            headers = self.headers_for(role) if role else {}
            for permission, method, path, body in self.requests():
                with self.subTest(role=role, method=method, path=path):
                    response = getattr(self.client, method)(path, headers=headers, json=body)
                    if role is None:
                        self.assertError(response, 401, "Provide an authorization header")
                    elif role in ALLOWED[permission]:
                        self.assertEqual(response.status_code, 201 if method == "post" else 200, response.json)
                        self.assertTrue(response.json["success"])
                    else:
                        self.assertError(response, 403)


class ActorTests(CastingTestCase):
    def test_crud(self):
        actor = self.new_actor(name="  Grace Hopper ", age=0)
        self.assertEqual(set(actor), {"id", "name", "age", "gender", "movie_count", "created_at", "modified_at"})
        self.assertEqual((actor["name"], actor["age"], actor["movie_count"]), ("Grace Hopper", 0, 0))
        url = f"/v1/actors/{actor['id']}"
        self.assertEqual(self.client.get(url, headers=self.admin).json["actor"]["name"], "Grace Hopper")
        patched = self.client.patch(url, headers=self.admin, json={"age": 150, "gender": "f"}).json["actor"]
        self.assertEqual((patched["age"], patched["gender"], patched["name"]), (150, "f", "Grace Hopper"))
        self.assertEqual(self.client.delete(url, headers=self.admin).json, {"success": True, "deleted": actor["id"]})
        self.assertError(self.client.get(url, headers=self.admin), 404)
        self.assertError(self.client.put(url, headers=self.admin, json=ACTOR), 405)

    def test_bad_actors(self):
        cases = [
            ({"age": -1}, "age"),
            ({"age": 151}, "age"),
            ({"age": "30"}, "age"),
            ({"age": 30.5}, "age"),
            ({"age": True}, "age"),
            ({"age": None}, "age"),
            ({"name": ""}, "name"),
            ({"name": " "}, "name"),
            ({"name": "x" * 121}, "name"),
            ({"gender": ""}, "gender"),
            ({"gender": "x" * 31}, "gender"),
            ({"id": 4}, "id"),
            ({"movie_count": 1}, "movie_count"),
            ({"nick": "x"}, "nick"),
        ]
        for fields, field in cases:
            with self.subTest(fields=str(fields)[:40]):
                self.assertFieldError(
                    self.client.post("/v1/actors", headers=self.admin, json={**ACTOR, **fields}), field
                )
        huge = '{"name": "A", "gender": "f", "age": 1000000000000000000000000000000}'
        self.assertFieldError(
            self.client.post("/v1/actors", headers=self.admin, data=huge, content_type="application/json"), "age"
        )
        for missing in ACTOR:
            body = {k: v for k, v in ACTOR.items() if k != missing}
            self.assertFieldError(self.client.post("/v1/actors", headers=self.admin, json=body), missing)
        actor_id = self.new_actor()["id"]
        self.assertFieldError(self.client.patch(f"/v1/actors/{actor_id}", headers=self.admin, json={"age": -5}), "age")
        self.assertError(self.client.patch(f"/v1/actors/{actor_id}", headers=self.admin, json={}), 422)
        self.assertEqual(db.session.scalar(select(Actor.age).where(Actor.id == actor_id)), 36)
        self.assertError(self.client.patch("/v1/actors/424242", headers=self.admin, json={"age": 3}), 404)

    def test_filters(self):
        self.new_actor(name="Young", age=20, gender="Female")
        self.new_actor(name="Middle", age=45, gender="male")
        self.new_actor(name="Old", age=80, gender="female")
        names = lambda q: [a["name"] for a in self.client.get(f"/v1/actors{q}", headers=self.admin).json["actors"]]  # noqa: E731
        self.assertEqual(names("?gender=female"), ["Young", "Old"])
        self.assertEqual(names("?min_age=45"), ["Middle", "Old"])
        self.assertEqual(names("?max_age=45&gender=male"), ["Middle"])
        self.assertEqual(names("?min_age=21&max_age=79"), ["Middle"])
        self.assertEqual(names("?q=OL&sort=-age"), ["Old"])
        self.assertEqual(names("?sort=age"), ["Young", "Middle", "Old"])
        for query in ("?min_age=50&max_age=40", "?min_age=x", "?max_age=-1", "?sort=gender"):
            with self.subTest(query=query):
                self.assertError(self.client.get(f"/v1/actors{query}", headers=self.admin), 400)

    def test_a_page_of_actors_with_movie_counts_costs_constant_queries(self):
        actor_ids = db.session.scalars(
            insert(Actor).returning(Actor.id), [{"name": f"a{n}", "age": 30, "gender": "x"} for n in range(120)]
        ).all()
        movie_id = db.session.scalars(
            insert(Movie).returning(Movie.id), [{"title": "m", "release_date": date(2000, 1, 1)}]
        ).one()
        db.session.execute(insert(movie_actors), [{"movie_id": movie_id, "actor_id": a} for a in actor_ids[::2]])
        recount_all()
        db.session.commit()
        with count_queries() as small:
            self.client.get("/v1/actors?per_page=2", headers=self.admin)
        with count_queries() as large:
            body = self.client.get("/v1/actors?per_page=100", headers=self.admin).json
        self.assertEqual([a["movie_count"] for a in body["actors"][:4]], [1, 0, 1, 0])
        self.assertEqual(len(small), len(large))
        self.assertLessEqual(len(large), 3, large)


class MovieTests(CastingTestCase):
    def test_cast_both_ways(self):
        a, b = self.new_actor(name="A")["id"], self.new_actor(name="B")["id"]
        movie = self.new_movie(actor_ids=[b, a, b], release_date="2020-8-2")
        self.assertEqual(movie["release_date"], "2020-08-02")
        self.assertEqual(movie["actors"], [{"id": a, "name": "A"}, {"id": b, "name": "B"}])
        self.assertNotIn("actor_ids", movie)
        cast = self.client.get(f"/v1/movies/{movie['id']}/actors", headers=self.admin).json["actors"]
        self.assertEqual([x["id"] for x in cast], [a, b])
        films = self.client.get(f"/v1/actors/{a}/movies", headers=self.admin).json["movies"]
        self.assertEqual([m["id"] for m in films], [movie["id"]])
        self.assertEqual(self.client.get(f"/v1/actors/{a}", headers=self.admin).json["actor"]["movie_count"], 1)
        patched = self.client.patch(f"/v1/movies/{movie['id']}", headers=self.admin, json={"actor_ids": [b]}).json[
            "movie"
        ]
        self.assertEqual(patched["actors"], [{"id": b, "name": "B"}])
        self.client.delete(f"/v1/actors/{b}", headers=self.admin)
        self.assertEqual(self.client.get(f"/v1/movies/{movie['id']}", headers=self.admin).json["movie"]["actors"], [])
        self.client.patch(f"/v1/movies/{movie['id']}", headers=self.admin, json={"actor_ids": [a]})
        self.client.delete(f"/v1/movies/{movie['id']}", headers=self.admin)
        self.assertEqual(db.session.execute(select(movie_actors)).all(), [])
        self.assertIsNotNone(db.session.get(Actor, a))

    def test_unknown_actor_ids_change_nothing(self):
        a = self.new_actor()["id"]
        response = self.client.post(
            "/v1/movies",
            headers=self.admin,
            json={"title": "T", "release_date": "2020-01-01", "actor_ids": [a, 998, 999]},
        )
        body = self.assertFieldError(response, "actor_ids")
        self.assertIn("998, 999", body["errors"]["actor_ids"][0])
        self.assertEqual(db.session.scalars(select(Movie)).all(), [])
        movie = self.new_movie(actor_ids=[a])
        response = self.client.patch(
            f"/v1/movies/{movie['id']}", headers=self.admin, json={"actor_ids": [999], "title": "Changed"}
        )
        self.assertFieldError(response, "actor_ids")
        current = self.client.get(f"/v1/movies/{movie['id']}", headers=self.admin).json["movie"]
        self.assertEqual((current["title"], [x["id"] for x in current["actors"]]), (movie["title"], [a]))

    def test_bad_movies(self):
        base = {"title": "T", "release_date": "2020-01-01"}
        cases = [
            ({"release_date": "2021-02-30"}, "release_date"),
            ({"release_date": "2021-13-01"}, "release_date"),
            ({"release_date": "01/02/2020"}, "release_date"),
            ({"release_date": "2020-01-01T00:00:00"}, "release_date"),
            ({"release_date": 20200101}, "release_date"),
            ({"release_date": ""}, "release_date"),
            ({"title": ""}, "title"),
            ({"title": "x" * 201}, "title"),
            ({"title": 3}, "title"),
            ({"actor_ids": "1"}, "actor_ids"),
            ({"actor_ids": [1.5]}, "actor_ids"),
            ({"actor_ids": ["1"]}, "actor_ids"),
            ({"actor_ids": [-1]}, "actor_ids"),
            ({"actor_ids": [2**40]}, "actor_ids"),
            ({"actor_ids": [True]}, "actor_ids"),
            ({"actors": []}, "actors"),
            ({"id": 1}, "id"),
        ]
        for fields, field in cases:
            with self.subTest(fields=str(fields)[:50]):
                self.assertFieldError(
                    self.client.post("/v1/movies", headers=self.admin, json={**base, **fields}), field
                )
        self.assertFieldError(self.client.post("/v1/movies", headers=self.admin, json={"title": "T"}), "release_date")
        self.assertEqual(db.session.scalars(select(Movie)).all(), [])

    def test_duplicate_movie_is_409(self):
        self.new_movie(title="Heat", release_date="1995-12-15")
        response = self.client.post(
            "/v1/movies", headers=self.admin, json={"title": "HEAT", "release_date": "1995-12-15"}
        )
        self.assertError(response, 409)
        other = self.new_movie(title="Heat", release_date="2020-01-01")
        self.assertError(
            self.client.patch(f"/v1/movies/{other['id']}", headers=self.admin, json={"release_date": "1995-12-15"}), 409
        )

    def test_titles_are_compared_as_people_read_them(self):
        self.new_movie(title="Cafe\u0301 Society", release_date="2016-05-11")
        same = {"title": "CAF\u00c9 SOCIETY", "release_date": "2016-05-11"}
        self.assertError(self.client.post("/v1/movies", headers=self.admin, json=same), 409)
        self.new_movie(title="Σίσυφος", release_date="2001-01-01")
        greek = {"title": "ΣΊΣΥΦΟΣ", "release_date": "2001-01-01"}
        self.assertError(self.client.post("/v1/movies", headers=self.admin, json=greek), 409)
        self.assertEqual(
            self.client.post("/v1/movies", headers=self.admin, json={**same, "release_date": "2017-01-01"}).status_code,
            201,
        )
        for q in ("caf\u00e9 society", "CAFE\u0301"):
            with self.subTest(q=q):
                found = self.client.get("/v1/movies", query_string={"q": q}, headers=self.admin).json["movies"]
                self.assertEqual(len(found), 2)
        blank = {"title": "\u200b\u200b", "release_date": "2001-01-01"}
        self.assertFieldError(self.client.post("/v1/movies", headers=self.admin, json=blank), "title")

    def test_filters_and_sorting(self):
        a = self.new_actor()["id"]
        self.new_movie(title="Old", release_date="1990-01-01")
        self.new_movie(title="Mid", release_date="2005-06-15", actor_ids=[a])
        self.new_movie(title="New", release_date="2020-01-01")
        titles = lambda q: [m["title"] for m in self.client.get(f"/v1/movies{q}", headers=self.admin).json["movies"]]  # noqa: E731
        self.assertEqual(titles("?released_after=2005-06-15"), ["Mid", "New"])
        self.assertEqual(titles("?released_before=2005-6-15"), ["Old", "Mid"])
        self.assertEqual(titles("?released_after=2000-01-01&released_before=2010-01-01"), ["Mid"])
        self.assertEqual(titles(f"?actor_id={a}"), ["Mid"])
        self.assertEqual(titles("?sort=-release_date"), ["New", "Mid", "Old"])
        self.assertEqual(titles("?q=i&sort=title"), ["Mid"])
        for query in (
            "?released_after=2020-02-30",
            "?released_after=2021-01-01&released_before=2020-01-01",
            "?actor_id=x",
            "?actor_id=99999999999",
            "?sort=cast",
        ):
            with self.subTest(query=query):
                self.assertError(self.client.get(f"/v1/movies{query}", headers=self.admin), 400)

    def test_a_page_of_100_movies_with_casts_costs_constant_queries(self):
        actor_ids = db.session.scalars(
            insert(Actor).returning(Actor.id), [{"name": f"a{n}", "age": 30, "gender": "x"} for n in range(10)]
        ).all()
        movie_ids = db.session.scalars(
            insert(Movie).returning(Movie.id),
            [{"title": f"m{n}", "release_date": date(2000, 1, n % 28 + 1)} for n in range(120)],
        ).all()
        db.session.execute(
            insert(movie_actors), [{"movie_id": m, "actor_id": a} for m in movie_ids for a in actor_ids[:4]]
        )
        recount_all()
        db.session.commit()
        with count_queries() as small:
            self.client.get("/v1/movies?per_page=2", headers=self.admin)
        with count_queries() as large:
            body = self.client.get("/v1/movies?per_page=100", headers=self.admin).json
        self.assertEqual(len(body["movies"]), 100)
        self.assertTrue(all(len(m["actors"]) == 4 for m in body["movies"]))
        self.assertEqual(len(small), len(large))
        self.assertLessEqual(len(large), 4, large)


class MovieListLoadTests(CastingTestCase):
    def test_a_movie_list_reads_only_the_id_and_name_of_each_cast_member(self):
        actor = self.new_actor(name="Ada", age=36, gender="female")
        self.new_movie(actor_ids=[actor["id"]])
        with captured_statements() as captured:
            body = self.client.get("/v1/movies", headers=self.admin).json
        self.assertEqual(body["movies"][0]["actors"], [{"id": actor["id"], "name": "Ada"}])
        page = next(statement for statement, _ in captured if "movie_actors" in statement)
        self.assertIn(".name", page.split(" FROM ")[0])
        for column in ("age", "gender", "movie_count"):
            self.assertNotIn(f".{column}", page.split(" FROM ")[0], "a cast member's other columns")


class CatalogueTotalTests(CastingTestCase):
    """The unfiltered lists' totals are catalogue_counts rows, kept by every insert and delete."""

    def stored_totals(self):
        return dict(db.session.execute(select(CatalogueCount.collection, CatalogueCount.total)).all())

    def listed_total(self, path):
        response = self.client.get(path, headers=self.admin)
        self.assertEqual(response.status_code, 200, response.json)
        return response.json["pagination"]["total"]

    def test_every_insert_and_delete_keeps_the_totals(self):
        a, b, c = (self.new_actor(name=name)["id"] for name in "abc")
        movie = self.new_movie(actor_ids=[a, b])["id"]
        self.new_movie(title="Other")
        for refused, status in (
            ({"title": "OTHER", "release_date": "2021-03-04"}, 409),  # a duplicate
            ({"title": "Lost", "release_date": "2021-03-04", "actor_ids": [a, 999999]}, 422),  # an unknown actor
        ):
            self.assertError(self.client.post("/v1/movies", headers=self.admin, json=refused), status)
        key = {**self.admin, "Idempotency-Key": "one-actor"}
        for _ in range(2):  # the replay inserts nothing
            self.assertEqual(self.client.post("/v1/actors", headers=key, json=ACTOR).status_code, 201)
        self.assertEqual(self.stored_totals(), {"actors": 4, "movies": 2})
        stale = {**self.admin, "If-Match": '"stale"'}
        self.assertError(self.client.delete(f"/v1/actors/{c}", headers=stale), 412)
        for path in (f"/v1/actors/{c}", f"/v1/movies/{movie}"):
            self.assertEqual(self.client.delete(path, headers=self.admin).status_code, 200)
            self.assertError(self.client.delete(path, headers=self.admin), 404)
        self.assertEqual(self.stored_totals(), {"actors": 3, "movies": 1})
        self.assertEqual((self.listed_total("/v1/actors"), self.listed_total("/v1/movies")), (3, 1))

    def test_unfiltered_totals_are_read_not_counted(self):
        self.new_actor()
        self.new_movie()
        for path, narrowed in (
            ("/v1/actors", "/v1/actors?q=ada&gender=female"),
            ("/v1/movies?sort=-title", "/v1/movies?released_after=2000-01-01"),
        ):
            with self.subTest(path=path):
                with captured_statements() as unfiltered:
                    self.assertEqual(self.listed_total(path), 1)
                sql = " ".join(statement for statement, _ in unfiltered)
                self.assertNotIn("count(", sql)
                self.assertIn("catalogue_counts", sql)
                with captured_statements() as filtered:
                    self.assertEqual(self.listed_total(narrowed), 1)
                sql = " ".join(statement for statement, _ in filtered)
                self.assertIn("count(", sql, "a search's total is counted, exactly")
                self.assertNotIn("catalogue_counts", sql)

    def test_the_seed_and_recount_set_the_totals(self):
        self.new_actor()
        db.session.execute(insert(Actor), [{"name": f"bulk {n}", "age": 30, "gender": "x"} for n in range(4)])
        db.session.execute(update(CatalogueCount).values(total=99))
        db.session.execute(update(ActorTally).values(total=99))
        db.session.add(ActorTally(gender_key="nobody", age=1, total=7))
        recount_all()  # what the seed runs after its bulk inserts
        db.session.commit()
        self.assertEqual(self.stored_totals(), {"actors": 5, "movies": 0})
        self.assertEqual(self.listed_total("/v1/actors"), 5)
        self.assertEqual(actor_tallies(), {("female", 36): 1, ("x", 30): 4})
        self.assertEqual(self.listed_total("/v1/actors?gender=X&max_age=30"), 4)


class ActorTallyTests(CastingTestCase):
    """A gender/min_age/max_age total is a sum of actor tallies, kept by every write of an actor."""

    QUERIES = (
        "gender=female",
        "gender=FEMALE&min_age=30",
        "gender=male&max_age=44",
        "min_age=30&max_age=60",
        "min_age=61",
        "max_age=29",
        "gender=Non-Binary&min_age=20&max_age=80",
        "gender=nobody",
    )

    def assertTotalsExact(self):
        """Every filtered total equals the actors counted afresh, and the tallies their GROUP BY."""
        self.assertEqual(actor_tallies(), tallied_actors())
        rows = db.session.execute(select(Actor.gender, Actor.age)).all()
        for query in self.QUERIES:
            with self.subTest(query=query):
                args = dict(arg.split("=") for arg in query.split("&"))
                counted = sum(
                    1
                    for gender, age in rows
                    if gender.lower() == args.get("gender", gender).lower()
                    and int(args.get("min_age", 0)) <= age <= int(args.get("max_age", 150))
                )
                response = self.client.get(f"/v1/actors?{query}", headers=self.admin)
                self.assertEqual(response.json["pagination"]["total"], counted)

    def patch(self, actor_id, fields, status=200, headers=None):
        response = self.client.patch(f"/v1/actors/{actor_id}", headers=headers or self.admin, json=fields)
        self.assertEqual(response.status_code, status, response.json)
        self.assertTotalsExact()
        return response

    def test_every_write_keeps_the_filtered_totals_exact(self):
        a = self.new_actor(gender="Female", age=30)["id"]
        b = self.new_actor(gender="female", age=30)["id"]
        c = self.new_actor(gender="male", age=45)["id"]
        d = self.new_actor(gender="Non-Binary", age=61)["id"]
        self.assertEqual(actor_tallies(), {("female", 30): 2, ("male", 45): 1, ("non-binary", 61): 1})
        self.assertTotalsExact()
        self.patch(a, {"gender": "male"})  # gender only
        self.patch(a, {"age": 29})  # age only
        self.patch(c, {"gender": "FEMALE", "age": 60})  # both
        self.patch(d, {"name": "Renamed"})  # neither
        before = db.session.execute(select(ActorTally.gender_key, ActorTally.age, ActorTally.total)).all()
        self.patch(b, {"gender": "Female"})  # its case only: the same tally, not -1 then +1
        after = db.session.execute(select(ActorTally.gender_key, ActorTally.age, ActorTally.total)).all()
        self.assertEqual(sorted(after), sorted(before))
        self.patch(b, {"gender": "male", "age": 45, "name": "Back"})
        self.patch(b, {"age": -1}, status=422)
        self.patch(b, {"age": 70}, status=412, headers={**self.admin, "If-Match": '"stale"'})
        self.patch(424242, {"age": 70}, status=404)
        self.assertEqual(self.client.delete(f"/v1/actors/{c}", headers=self.admin).status_code, 200)
        self.assertTotalsExact()
        self.assertError(self.client.delete(f"/v1/actors/{c}", headers=self.admin), 404)  # deleted already
        self.assertTotalsExact()
        self.assertEqual(actor_tallies(), {("male", 29): 1, ("male", 45): 1, ("non-binary", 61): 1})

    def test_the_filtered_total_reads_the_tallies_not_the_actors(self):
        for n in range(5):
            self.new_actor(name=f"a{n}", gender="female" if n % 2 else "male", age=30 + n)
        url = "/v1/actors?gender=Female&min_age=30&max_age=60&per_page=2"
        with captured_statements() as captured:
            response = self.client.get(url, headers=self.admin)
        self.assertEqual(response.json["pagination"]["total"], 2)
        self.assertLessEqual(len(captured), 3, captured)
        counts = [statement for statement, _ in captured if "sum(" in statement or "count(" in statement]
        self.assertEqual(len(counts), 1, captured)
        self.assertIn("FROM actor_tallies", counts[0])
        self.assertNotIn("FROM actors", counts[0])
        self.assertNotIn("count(", counts[0])
        for counted in ("/v1/actors?gender=female&q=a", f"/v1/movies/{self.new_movie()['id']}/actors?gender=female"):
            with self.subTest(url=counted):  # a search, a movie's cast: counted from the actors
                with captured_statements() as captured:
                    self.assertEqual(self.client.get(counted, headers=self.admin).status_code, 200)
                sql = " ".join(statement for statement, _ in captured)
                self.assertIn("count(", sql)
                self.assertNotIn("actor_tallies", sql)


@unittest.skipUnless(IS_POSTGRES, "plans are PostgreSQL's")
class CataloguePlanTests(CastingTestCase):
    """Filtered totals are index-only scans, and pages index scans, at a size where it matters."""

    SIZE = 6000

    def setUp(self):
        super().setUp()
        genders = ("female", "male", "non-binary")
        actors = [{"name": f"a{n}", "age": 8 + n % 83, "gender": genders[n % 3]} for n in range(self.SIZE)]
        start = date(1950, 1, 1)
        movies = [{"title": f"m{n}", "release_date": start + timedelta(days=n * 7)} for n in range(self.SIZE)]
        db.session.execute(insert(Actor), actors)
        db.session.execute(insert(Movie), movies)
        recount_all()
        db.session.commit()
        # As autovacuum would: statistics, and the visibility map an index-only scan relies on.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE actors, movies")

    def plans(self, url):
        """{"count": plan, "page": plan} of the statements a list request runs on its table."""
        with captured_statements() as captured:
            response = self.client.get(url, headers=self.admin)
        self.assertEqual(response.status_code, 200, response.json)
        table = url.split("?")[0].rsplit("/", 1)[1]
        plans = {}
        for statement, parameters in captured:
            if f"FROM {table}" in statement:
                rows = db.session.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
                plans["count" if "count(" in statement else "page"] = "\n".join(row[0] for row in rows)
        return plans

    def test_a_gender_and_age_range_page_is_an_index_scan_and_its_total_no_count(self):
        plans = self.plans("/v1/actors?gender=Female&min_age=30&max_age=60&per_page=20")
        self.assertNotIn("count", plans, "the total is a sum of actor tallies")
        self.assertNotIn("Seq Scan", plans["page"])

    def test_a_gender_sorted_by_age_is_one_range_of_the_index(self):
        plans = self.plans("/v1/actors?gender=male&min_age=40&sort=-age&per_page=20")
        self.assertIn("Index Scan Backward using ix_actors_lower_gender_age", plans["page"])
        self.assertNotIn("Sort", plans["page"].replace("Sort Key", ""))

    def test_a_release_date_range_is_counted_from_the_index_alone(self):
        plans = self.plans("/v1/movies?released_after=1990-01-01&released_before=2000-01-01&per_page=20")
        self.assertIn("Index Only Scan using ix_movies_release_date", plans["count"])
        self.assertNotIn("Seq Scan", plans["page"])
