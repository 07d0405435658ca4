"""Every list: statement counts, cursor walks under concurrent writes, bad cursors, the page window,
and (on PostgreSQL) the plans behind search and deep pages."""

import io
import unittest
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import insert, select, text

from app.api.lists import ACTORS, BUCKETS, IMAGES, ITEMS, MOVIES, USERS
from app.extensions import db
from app.models import Actor, Bucket, Item, Movie, User, movie_actors
from app.models.base import utcnow
from app.seed import recount_all
from tests.helpers import IS_POSTGRES, APITestCase, captured_statements, count_queries, image_bytes, make_app

BAD_CURSOR = "Invalid cursor: it was altered, or it belongs to another list, sort, filter or user"


class CollectionCase(APITestCase):
    def setUp(self):
        super().setUp()
        self.user_id, self.h = self.account()
        self.admin_id, self.admin = self.account("admin")

    def buckets(self, names, owner_id=None, items=0):
        """Buckets (and `items` items in each) inserted in bulk, counters set as the services keep them."""
        owner_id = owner_id or self.user_id
        ids = db.session.scalars(
            insert(Bucket).returning(Bucket.id, sort_by_parameter_order=True),
            [{"owner_id": owner_id, "name": name} for name in names],
        ).all()
        if items:
            rows = [
                {"bucket_id": bid, "name": f"item {n % 7}", "done": n % 2 == 0} for bid in ids for n in range(items)
            ]
            db.session.execute(insert(Item), rows)
        recount_all()
        db.session.commit()
        return ids

    def catalogue(self, actors=6, movies=6):
        actor_ids = db.session.scalars(
            insert(Actor).returning(Actor.id, sort_by_parameter_order=True),
            [{"name": f"actor {n % 3}", "age": 20 + n % 4, "gender": "x"} for n in range(actors)],
        ).all()
        movie_ids = db.session.scalars(
            insert(Movie).returning(Movie.id, sort_by_parameter_order=True),
            [
                {"title": f"movie {movies}-{n}", "release_date": date(2000, 1, 1) + timedelta(days=n % 3)}
                for n in range(movies)
            ],
        ).all()
        db.session.execute(
            insert(movie_actors), [{"movie_id": m, "actor_id": a} for m in movie_ids for a in actor_ids[:3]]
        )
        recount_all()
        db.session.commit()
        return actor_ids, movie_ids

    def images(self, count):
        files = [("images", (io.BytesIO(image_bytes(color=(n, 0, 0))), f"i{n}.png")) for n in range(count)]
        data = {"images": [f[1] for f in files], "tags": "sea"}
        response = self.client.post("/v1/images", headers=self.admin, data=data, content_type="multipart/form-data")
        self.assertEqual(response.status_code, 201, response.json)
        return [image["id"] for image in response.json["images"]]

    def statements(self, url, headers):
        with count_queries() as statements:
            response = self.client.get(url, headers=headers)
        self.assertEqual(response.status_code, 200, response.json)
        return len(statements), response.json


class StatementCountTests(CollectionCase):
    """Auth is one statement, the page one, the total one or none (a counter)."""

    def fill(self, size):
        bucket_ids = self.buckets([f"b{size}-{n}" for n in range(size)], items=size)
        self.catalogue(actors=size, movies=size)
        return bucket_ids[0]

    def list_urls(self, bucket_id, actor_id, movie_id):
        return {
            "/v1/users": (self.admin, 3),
            "/v1/users?q=example&role=user": (self.admin, 3),
            "/v1/buckets": (self.h, 2),  # total from users.bucket_count
            "/v1/buckets?q=b": (self.h, 3),
            f"/v1/buckets/{bucket_id}/items": (self.h, 3),  # auth, bucket (carries item_count), page
            f"/v1/buckets/{bucket_id}/items?sort=-name": (self.h, 3),
            "/v1/actors?sort=-age": (self.admin, 3),  # auth, catalogue_counts, page
            "/v1/actors?gender=x&min_age=21&q=act": (self.admin, 3),
            "/v1/movies?sort=title": (self.admin, 3),
            "/v1/movies?released_after=2000-01-02": (self.admin, 3),
            f"/v1/actors/{actor_id}/movies": (self.admin, 3),  # auth, actor (carries movie_count), page
            f"/v1/movies/{movie_id}/actors": (self.admin, 3),  # auth, movie with its cast, page
            "/v1/images?tag=sea&sort=-size_bytes": (self.admin, 3),
        }

    def test_every_list_costs_at_most_three_statements_whatever_the_page_or_the_size(self):
        self.account()
        self.account()
        self.images(3)
        first = self.fill(4)
        actor_id = db.session.scalars(select(Actor.id)).first()
        movie_id = db.session.scalars(select(Movie.id)).first()
        small = {}
        for url, (headers, expected) in self.list_urls(first, actor_id, movie_id).items():
            with self.subTest(url=url):
                count, body = self.statements(f"{url}{'&' if '?' in url else '?'}per_page=1", headers)
                self.assertLessEqual(count, expected)
                small[url] = count
                cursor = body["pagination"]["next_cursor"]
                self.assertIsNotNone(cursor, body)
                count, _ = self.statements(f"{url}{'&' if '?' in url else '?'}per_page=1&page=2", headers)
                # No more than page 1: a search's page 2 reuses the total page 1 counted.
                self.assertLessEqual(count, small[url], "page 2 costs no more than page 1")
                count, _ = self.statements(f"{url}{'&' if '?' in url else '?'}per_page=1&cursor={cursor}", headers)
                self.assertLessEqual(count, small[url], "a cursor page costs no more (no total)")
        self.fill(30)
        for url, (headers, _) in self.list_urls(first, actor_id, movie_id).items():
            with self.subTest(url=url, size="large"):
                count, _ = self.statements(f"{url}{'&' if '?' in url else '?'}per_page=1&page=2", headers)
                self.assertEqual(count, small[url], "more rows cost no more statements")

    def test_a_single_get_is_two_statements_auth_and_the_row(self):
        bucket_id = self.buckets(["b"], items=1)[0]
        item_id = db.session.scalars(select(Item.id)).first()
        actor_id, movie_id = (ids[0] for ids in self.catalogue())
        image_id = self.images(1)[0]
        for url, headers in (
            (f"/v1/buckets/{bucket_id}", self.h),
            (f"/v1/buckets/{bucket_id}/items/{item_id}", self.h),
            (f"/v1/actors/{actor_id}", self.admin),
            (f"/v1/movies/{movie_id}", self.admin),
            (f"/v1/images/{image_id}", self.admin),
            (f"/v1/users/{self.user_id}", self.admin),
        ):
            with self.subTest(url=url):
                count, body = self.statements(url, headers)
                self.assertEqual(count, 2, body)
        self.assertEqual(self.statements("/v1/auth/me", self.h)[0], 1, "the auth statement is the row")
        self.assertEqual(len(self.client.get(f"/v1/movies/{movie_id}", headers=self.admin).json["movie"]["actors"]), 3)

    def test_counters_follow_every_write(self):
        bucket = self.client.post("/v1/buckets", headers=self.h, json={"name": "one"}).json["bucket"]
        self.client.post("/v1/buckets", headers=self.h, json={"name": "ONE"})  # 409: counts nothing
        items = f"/v1/buckets/{bucket['id']}/items"
        first = self.client.post(items, headers=self.h, json={"name": "a"}).json["item"]
        self.client.post(items, headers=self.h, json={"name": "b"})
        self.client.delete(f"{items}/{first['id']}", headers=self.h)
        self.assertEqual(self.client.get(f"/v1/buckets/{bucket['id']}", headers=self.h).json["bucket"]["item_count"], 1)
        self.assertEqual(self.client.get("/v1/buckets", headers=self.h).json["pagination"]["total"], 1)
        a, b, c = (
            self.client.post("/v1/actors", headers=self.admin, json={"name": n, "age": 1, "gender": "x"}) for n in "abc"
        )
        a, b, c = (r.json["actor"]["id"] for r in (a, b, c))
        movie = self.client.post(
            "/v1/movies", headers=self.admin, json={"title": "m", "release_date": "2001-01-01", "actor_ids": [a, b]}
        ).json["movie"]
        self.client.patch(f"/v1/movies/{movie['id']}", headers=self.admin, json={"actor_ids": [b, c]})
        counts = lambda: {  # noqa: E731
            x: self.client.get(f"/v1/actors/{x}", headers=self.admin).json["actor"]["movie_count"] for x in (a, b, c)
        }
        self.assertEqual(counts(), {a: 0, b: 1, c: 1})
        self.client.delete(f"/v1/movies/{movie['id']}", headers=self.admin)
        self.assertEqual(counts(), {a: 0, b: 0, c: 0})
        self.client.delete(f"/v1/buckets/{bucket['id']}", headers=self.h)
        self.assertEqual(self.client.get("/v1/buckets", headers=self.h).json["pagination"]["total"], 0)


class SearchTotalTests(CollectionCase):
    """A search's exact total is counted once per revision of the user's buckets."""

    def search(self, headers=None, q="ab", page=1):
        # In an app context of its own, as a served request is: the test's spans its requests.
        with self.app.app_context(), count_queries() as statements:
            response = self.client.get(f"/v1/buckets?q={q}&per_page=1&page={page}", headers=headers or self.h)
        self.assertEqual(response.status_code, 200, response.json)
        return response.json["pagination"]["total"], len(statements)

    def test_paging_through_a_search_counts_it_once(self):
        self.buckets(["ab1", "ab2", "ab3", "zz"])
        self.assertEqual(self.search(page=1), (3, 3))
        self.assertEqual(self.search(page=2), (3, 2), "auth and the page: the total was counted")
        self.assertEqual(self.search(page=3), (3, 2))
        self.assertEqual(self.search(q="AB", page=1), (3, 3), "another search is counted for itself")

    def test_every_write_to_the_buckets_gives_the_next_search_a_fresh_total(self):
        zz = self.buckets(["ab1", "zz"])[1]
        self.assertEqual(self.search()[0], 1)
        created = self.client.post("/v1/buckets", headers=self.h, json={"name": "xab"}).json["bucket"]["id"]
        self.assertEqual(self.search(), (2, 3))
        self.assertEqual(self.client.patch(f"/v1/buckets/{zz}", headers=self.h, json={"name": "abz"}).status_code, 200)
        self.assertEqual(self.search(), (3, 3))
        self.assertEqual(self.client.put(f"/v1/buckets/{zz}", headers=self.h, json={"name": "zz"}).status_code, 200)
        self.assertEqual(self.search(), (2, 3))
        self.assertEqual(self.client.delete(f"/v1/buckets/{created}", headers=self.h).status_code, 200)
        self.assertEqual(self.search(), (1, 3))
        self.assertEqual(self.search(), (1, 2))

    def test_a_refused_write_leaves_the_revision_and_the_total(self):
        self.buckets(["ab1", "ab2"])
        revision = db.session.scalar(select(User.buckets_revision).where(User.id == self.user_id))
        self.assertEqual(self.search(), (2, 3))
        self.assertError(self.client.post("/v1/buckets", headers=self.h, json={"name": "AB1"}), 409)
        db.session.expire_all()
        self.assertEqual(db.session.scalar(select(User.buckets_revision).where(User.id == self.user_id)), revision)
        self.assertEqual(self.search(), (2, 2))

    def test_a_write_through_another_process_is_seen(self):
        self.buckets(["ab1"])
        other = make_app()  # another worker, or another machine: its own cache
        self.assertEqual(self.search(), (1, 3))
        self.assertEqual(other.test_client().post("/v1/buckets", headers=self.h, json={"name": "ab2"}).status_code, 201)
        self.assertEqual(self.search()[0], 2)

    def test_an_account_given_a_deleted_accounts_id_gets_its_own_totals(self):
        first_id, first = self.account()
        for name in ("ab1", "ab2"):
            self.client.post("/v1/buckets", headers=first, json={"name": name})
        self.assertEqual(self.search(first)[0], 2)
        self.assertEqual(self.client.delete(f"/v1/users/{first_id}", headers=self.admin).status_code, 200)
        second_id, second = self.account()
        if not IS_POSTGRES:
            self.assertEqual(second_id, first_id, "SQLite gives the last deleted id to the next account")
        for name in ("ab1", "zz"):
            self.client.post("/v1/buckets", headers=second, json={"name": name})
        self.assertEqual(self.search(second)[0], 1)


class CursorTests(CollectionCase):
    def walk(self, url, headers, per_page=3, between=None):
        """Follow next_cursor to the end; `between(n)` runs after the n-th page."""
        seen, cursor, pages = [], None, 0
        while True:
            query = f"per_page={per_page}" + (f"&cursor={cursor}" if cursor else "")
            response = self.client.get(f"{url}{'&' if '?' in url else '?'}{query}", headers=headers)
            self.assertEqual(response.status_code, 200, response.json)
            key = next(k for k in response.json if k not in ("success", "pagination"))
            seen += [row["id"] for row in response.json[key]]
            cursor = response.json["pagination"]["next_cursor"]
            pages += 1
            if cursor is None:
                return seen
            if between:
                between(pages)

    def test_walks_neither_repeat_nor_skip_while_rows_come_and_go(self):
        bucket_id = self.buckets(["churn"])[0]
        items = f"/v1/buckets/{bucket_id}/items"
        now = utcnow()
        for sort in ("name", "-name", "done", "-done", "created_at", "-created_at", "id", "-id", "modified_at"):
            with self.subTest(sort=sort):
                # Few distinct names, two done states, one creation time: ties everywhere.
                rows = [
                    {
                        "bucket_id": bucket_id,
                        "name": "abc"[n % 3],
                        "done": n % 2 == 0,
                        "created_at": now,
                        "modified_at": now,
                    }
                    for n in range(14)
                ]
                ids = db.session.scalars(insert(Item).returning(Item.id, sort_by_parameter_order=True), rows).all()
                recount_all()
                db.session.commit()
                doomed = set(ids[1::4])

                def churn(page, doomed=doomed):
                    if page == 1:
                        for victim in doomed:
                            self.assertEqual(self.client.delete(f"{items}/{victim}", headers=self.h).status_code, 200)
                    if page <= 2:
                        for name, done in (("a", True), ("b", False), ("z", True)):
                            body = {"name": name, "done": done}
                            self.assertEqual(self.client.post(items, headers=self.h, json=body).status_code, 201)

                seen = self.walk(f"{items}?sort={sort}", self.h, between=churn)
                self.assertEqual(len(seen), len(set(seen)), "no row twice")
                self.assertLessEqual(set(ids) - doomed, set(seen), "no row that stayed is skipped")
                db.session.execute(Item.__table__.delete())
                db.session.commit()

    def test_walks_of_every_list_cover_it_exactly(self):
        bucket_id = self.buckets(["x"], items=11)[0]
        actor_ids, movie_ids = self.catalogue(actors=8, movies=7)
        self.images(4)
        for url, headers, expected in (
            ("/v1/users?sort=-role", self.admin, 2),
            (f"/v1/buckets/{bucket_id}/items?sort=done", self.h, 11),
            (f"/v1/buckets/{bucket_id}/items?sort=-name&done=true", self.h, 6),
            (f"/v1/buckets/{bucket_id}/items?q=ITEM 1", self.h, 2),
            ("/v1/actors?sort=-age", self.admin, 8),
            ("/v1/actors?sort=name&min_age=21", self.admin, 6),
            ("/v1/movies?sort=-release_date", self.admin, 7),
            (f"/v1/actors/{actor_ids[0]}/movies?sort=release_date", self.admin, 7),
            (f"/v1/movies/{movie_ids[0]}/actors?sort=-name", self.admin, 3),
            ("/v1/images?sort=-size_bytes", self.admin, 4),
            ("/v1/images?sort=title&tag=sea", self.admin, 4),
        ):
            with self.subTest(url=url):
                seen = self.walk(url, headers, per_page=2)
                self.assertEqual(len(seen), expected)
                self.assertEqual(len(set(seen)), expected)

    def test_cursor_mode_pagination_and_links(self):
        self.buckets([f"b{n}" for n in range(5)])
        first = self.client.get("/v1/buckets?per_page=2&sort=-name&q=b", headers=self.h)
        cursor = first.json["pagination"]["next_cursor"]
        self.assertIsInstance(cursor, str)
        response = self.client.get(f"/v1/buckets?per_page=2&sort=-name&q=b&cursor={cursor}", headers=self.h)
        pagination = response.json["pagination"]
        self.assertEqual([b["name"] for b in response.json["buckets"]], ["b2", "b1"])
        self.assertEqual(
            (pagination["page"], pagination["pages"], pagination["total"], pagination["prev"]), (None,) * 4
        )
        self.assertEqual(pagination["per_page"], 2)
        following = parse_qs(urlsplit(pagination["next"]).query)
        self.assertEqual(following["cursor"], [pagination["next_cursor"]])
        self.assertEqual((following["sort"], following["q"], following["per_page"]), (["-name"], ["b"], ["2"]))
        self.assertNotIn("page", following)
        self.assertIn(f'<{pagination["next"]}>; rel="next"', response.headers["Link"])
        last = self.client.get(pagination["next"], headers=self.h).json
        self.assertEqual([b["name"] for b in last["buckets"]], ["b0"])
        self.assertIsNone(last["pagination"]["next_cursor"])
        self.assertIsNone(last["pagination"]["next"])

    def test_bad_cursors_are_400(self):
        bucket_id = self.buckets([f"b{n}" for n in range(4)], items=4)[0]
        cursor = self.client.get("/v1/buckets?per_page=1&sort=name", headers=self.h).json["pagination"]["next_cursor"]
        payload, signature = cursor.split(".")
        altered = ("A" if payload[0] != "A" else "B") + payload[1:]
        _, other_user = self.account()
        self.buckets(["mine"], owner_id=db.session.scalars(select(Bucket.owner_id).order_by(Bucket.id.desc())).first())
        for url, headers in (
            (f"/v1/buckets?sort=name&cursor={altered}.{signature}", self.h),
            (f"/v1/buckets?sort=name&cursor={payload}.{signature[:-2]}", self.h),
            ("/v1/buckets?sort=name&cursor=garbage", self.h),
            ("/v1/buckets?sort=name&cursor=a.b.c", self.h),
            (f"/v1/buckets?sort=-name&cursor={cursor}", self.h),  # another sort
            (f"/v1/buckets?cursor={cursor}", self.h),  # the default sort is another sort
            (f"/v1/buckets?sort=name&q=b&cursor={cursor}", self.h),  # another filter
            (f"/v1/buckets/{bucket_id}/items?sort=name&cursor={cursor}", self.h),  # another endpoint
            (f"/v1/buckets?sort=name&cursor={cursor}", other_user),  # another user
        ):
            with self.subTest(url=url):
                self.assertError(self.client.get(url, headers=headers), 400, BAD_CURSOR)
        items = f"/v1/buckets/{bucket_id}/items"
        item_cursor = self.client.get(f"{items}?per_page=1&done=true", headers=self.h).json["pagination"]["next_cursor"]
        self.assertError(self.client.get(f"{items}?done=false&cursor={item_cursor}", headers=self.h), 400, BAD_CURSOR)
        self.assertEqual(self.client.get(f"{items}?done=true&cursor={item_cursor}", headers=self.h).status_code, 200)
        body = self.assertError(self.client.get(f"/v1/buckets?sort=name&page=1&cursor={cursor}", headers=self.h), 400)
        self.assertIn("cursor", body["errors"])
        # Refused by its declared shape (URL-safe ASCII), which also keeps generated URLs short.
        body = self.assertError(self.client.get("/v1/buckets?cursor=" + "é" * 10, headers=self.h), 400)
        self.assertEqual(body["message"], "Invalid query parameters")
        self.assertIn("cursor", body["errors"])
        self.assertEqual(self.client.get(f"/v1/buckets?sort=name&cursor={cursor}", headers=self.h).status_code, 200)


class QueryIntegerTests(CollectionCase):
    """Every integer a query string carries is ASCII digits: what int() also reads is a 400."""

    # Underscores, signs, spaces, other scripts' digits (full-width, Arabic-Indic), a float, hex.
    NOT_DIGITS = ("1_0", "+5", " 5", "5 ", "\uff12", "\u0663", "1.0", "0x5", "")

    def test_every_query_integer_takes_ascii_digits_only(self):
        actor_id = self.catalogue(actors=1, movies=1)[0][0]
        bucket_id = self.buckets(["b"])[0]
        lists = {
            "/v1/buckets": (self.h, ("page", "per_page")),
            f"/v1/buckets/{bucket_id}/items": (self.h, ("page", "per_page")),
            "/v1/users": (self.admin, ("page", "per_page")),
            "/v1/images": (self.admin, ("page", "per_page")),
            "/v1/actors": (self.admin, ("page", "per_page", "min_age", "max_age")),
            "/v1/movies": (self.admin, ("page", "per_page", "actor_id")),
            f"/v1/actors/{actor_id}/movies": (self.admin, ("page", "per_page")),
        }
        for url, (headers, names) in lists.items():
            for name in names:
                self.assertEqual(self.client.get(f"{url}?{name}=1", headers=headers).status_code, 200)
                for value in self.NOT_DIGITS:
                    with self.subTest(url=url, name=name, value=value):
                        response = self.client.get(url, query_string={name: value}, headers=headers)
                        body = self.assertError(response, 400, "Invalid query parameters")
                        self.assertIn(name, body["errors"])

    def test_dates_and_path_ids_take_ascii_digits_only(self):
        movie_id = self.catalogue(actors=1, movies=1)[1][0]
        query = {"released_after": "\uff12\uff10\uff12\uff10-01-01"}
        body = self.assertError(self.client.get("/v1/movies", query_string=query, headers=self.admin), 400)
        self.assertIn("released_after", body["errors"])
        self.assertEqual(self.client.get(f"/v1/movies/{movie_id}", headers=self.admin).status_code, 200)
        full_width = "".join(chr(0xFF10 + int(digit)) for digit in str(movie_id))
        self.assertError(self.client.get(f"/v1/movies/{full_width}", headers=self.admin), 404)


class ParentTests(CollectionCase):
    """A list inside a parent (a bucket's items, an actor's movies, a movie's cast) reads its parent only
    when it needs it, and an empty page is still 404 when the parent is not there, or not yours."""

    def test_a_missing_or_foreign_parent_is_404_whatever_narrows_the_list(self):
        bucket_id = self.buckets(["mine"], items=2)[0]
        actor_ids, movie_ids = self.catalogue(actors=2, movies=2)
        _, intruder = self.account()
        for query in ("", "?q=item", "?done=true", "?page=9"):
            with self.subTest(query=query):
                self.assertError(self.client.get(f"/v1/buckets/{bucket_id}/items{query}", headers=intruder), 404)
                self.assertError(self.client.get(f"/v1/actors/424242/movies{query}", headers=self.admin), 404)
                self.assertError(self.client.get(f"/v1/movies/424242/actors{query}", headers=self.admin), 404)
        for url in (f"/v1/actors/{actor_ids[0]}/movies?q=nothing", f"/v1/movies/{movie_ids[0]}/actors?q=nothing"):
            with self.subTest(url=url):
                body = self.client.get(url, headers=self.admin).json
                self.assertEqual((body["pagination"]["total"], body[url.split("/")[4].split("?")[0]]), (0, []))

    def test_a_cursor_page_of_a_parent_reads_no_parent(self):
        actor_ids, _ = self.catalogue(actors=2, movies=3)
        url = f"/v1/actors/{actor_ids[0]}/movies?per_page=1"
        cursor = self.client.get(url, headers=self.admin).json["pagination"]["next_cursor"]
        count, body = self.statements(f"{url}&cursor={cursor}", self.admin)
        self.assertEqual((count, len(body["movies"])), (2, 1), "auth and the page")


class PageWindowTests(CollectionCase):
    app_overrides = {"MAX_PAGE_OFFSET": 10}

    def test_pages_reach_max_page_offset_rows_then_point_to_cursor(self):
        self.buckets([f"b{n:02d}" for n in range(30)])
        ok = self.client.get("/v1/buckets?per_page=5&page=2", headers=self.h).json
        self.assertEqual(len(ok["buckets"]), 5)
        deep = self.assertError(self.client.get("/v1/buckets?per_page=5&page=3", headers=self.h), 400)
        self.assertIn("cursor", deep["message"])
        self.assertIn("10 rows", deep["message"])
        past = self.client.get("/v1/buckets?per_page=5&page=7", headers=self.h)
        self.assertEqual(past.status_code, 200)
        self.assertEqual((past.json["buckets"], past.json["pagination"]["total"]), ([], 30))
        cursor = ok["pagination"]["next_cursor"]
        walked = self.client.get(f"/v1/buckets?per_page=5&cursor={cursor}", headers=self.h).json
        self.assertEqual([b["name"] for b in walked["buckets"]], [f"b{n:02d}" for n in range(10, 15)])
        self.assertEqual(ok["pagination"]["next"], f"/v1/buckets?cursor={cursor}&per_page=5", "next walks on by cursor")


class DeclarationTests(unittest.TestCase):
    def test_every_sort_key_is_backed_by_an_index_led_by_the_scope(self):
        scopes = {"buckets": "owner_id", "items": "bucket_id"}
        for listing in (USERS, BUCKETS, ITEMS, ACTORS, MOVIES, IMAGES):
            table = listing.tie_breaker.table
            leads = {tuple(column.name for column in index.columns)[:3] for index in table.indexes}
            for name in listing.sortable:
                with self.subTest(list=listing.key, sort=name):
                    lead = (scopes[table.name],) if table.name in scopes else ()
                    wanted = (*lead, *dict.fromkeys((name, "id")))
                    self.assertTrue(wanted in leads or wanted == ("id",), f"{table.name}: no index on {wanted}")


@unittest.skipUnless(IS_POSTGRES, "plans are PostgreSQL's")
class PlanTests(CollectionCase):
    SIZE = 5000

    def setUp(self):
        super().setUp()
        now = utcnow()
        rows = [
            {"owner_id": self.user_id, "name": f"trip {n} {'zebra' if n % 1000 == 0 else 'plain'}", "created_at": now}
            for n in range(self.SIZE)
        ]
        db.session.execute(insert(Bucket), rows)
        recount_all()
        db.session.commit()
        # As autovacuum would: statistics, and the GIN pending list merged into the index.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE buckets")

    def plan_of(self, url, table="buckets"):
        with captured_statements() as captured:
            response = self.client.get(url, headers=self.h)
        self.assertEqual(response.status_code, 200, response.json)
        statement, parameters = next(s for s in reversed(captured) if f"FROM {table}" in s[0] and "LIMIT" in s[0])
        rows = db.session.connection().exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
        return response.json, "\n".join(row[0] for row in rows)

    def test_q_search_uses_the_trigram_index(self):
        body, plan = self.plan_of("/v1/buckets?q=ZEBRA&per_page=10")
        self.assertEqual(len(body["buckets"]), self.SIZE // 1000)
        self.assertIn("ix_buckets_name_key_trgm", plan)

    def test_a_deep_cursor_page_is_an_index_range_scan(self):
        cursor = None
        url = "/v1/buckets?sort=-name&per_page=100"
        for _ in range(40):  # 4000 rows deep
            cursor = self.client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=self.h).json["pagination"][
                "next_cursor"
            ]
        body, plan = self.plan_of(f"{url}&cursor={cursor}")
        self.assertEqual(len(body["buckets"]), 100)
        self.assertIn("ix_buckets_owner_id_name", plan)
        self.assertNotIn("Seq Scan", plan)
        self.assertNotIn("Sort", plan.replace("Sort Key", ""))

    def test_a_deep_page_skips_its_offset_in_the_sort_index_alone(self):
        body, plan = self.plan_of("/v1/buckets?sort=-name&per_page=20&page=196")  # 3900 rows deep
        self.assertEqual(len(body["buckets"]), 20)
        self.assertIn("Index Only Scan Backward using ix_buckets_owner_id_name", plan)
        self.assertNotIn("Seq Scan", plan)

    def test_every_search_column_has_a_trigram_index(self):
        indexes = set(db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_trgm'")))
        for listing in (USERS, BUCKETS, ITEMS, ACTORS, MOVIES, IMAGES):
            for column in listing.search:
                with self.subTest(column=str(column)):
                    self.assertIn(f"ix_{column.table.name}_{column.name}_trgm", indexes)
