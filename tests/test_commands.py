"""manage.py: create-user, purge-tokens, seed (and seeding again)."""

from datetime import timedelta

from sqlalchemy import func, select

from app.commands import create_user, purge_tokens
from app.extensions import db
from app.models import (
    Actor,
    Bucket,
    CatalogueCount,
    Image,
    Item,
    Movie,
    RevokedToken,
    User,
    movie_actors,
)
from app.models.base import utcnow
from app.seed import seed
from tests.helpers import PASSWORD, APITestCase, actor_tallies, tallied_actors


class CreateUserTests(APITestCase):
    def invoke(self, command, *args):
        return self.app.test_cli_runner().invoke(command, list(args))

    def test_creates_then_updates(self):
        result = self.invoke(create_user, "Boss@Example.com", "--password", PASSWORD, "--role", "admin")
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Created boss@example.com", result.output)
        user = db.session.scalars(select(User)).one()
        self.assertEqual((user.email, user.role), ("boss@example.com", "admin"))
        login = self.client.post("/v1/auth/login", json={"email": "boss@example.com", "password": PASSWORD})
        self.assertEqual(login.status_code, 200)
        result = self.invoke(create_user, "boss@example.com", "--password", "a different one", "--role", "admin")
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Updated", result.output)
        self.assertEqual(
            self.client.post(
                "/v1/auth/login", json={"email": "boss@example.com", "password": "a different one"}
            ).status_code,
            200,
        )

    def test_finds_an_account_by_any_form_of_its_address(self):
        result = self.invoke(create_user, "ＢＯＳＳ@Bücher.example", "--password", PASSWORD, "--role", "admin")
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Created boss@xn--bcher-kva.example", result.output)
        result = self.invoke(create_user, "boss@xn--bcher-kva.example", "--password", PASSWORD, "--role", "admin")
        self.assertIn("Updated boss@xn--bcher-kva.example", result.output)
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 1)
        result = self.invoke(create_user, "a@localhost", "--password", PASSWORD)
        self.assertNotEqual(result.exit_code, 0)
        self.assertIn("not a valid e-mail address", result.output)

    def test_refuses_unknown_roles_and_weak_passwords(self):
        for args, complaint in (
            (["x@example.com", "--password", PASSWORD, "--role", "king"], "unknown role"),
            (["x@example.com", "--password", "short"], "weak password"),
            (["x@example.com", "--password", "y" * 80], "weak password"),
            (["not-an-email", "--password", PASSWORD], "e-mail"),
        ):
            with self.subTest(args=args):
                result = self.invoke(create_user, *args)
                self.assertNotEqual(result.exit_code, 0)
                self.assertIn(complaint, result.output)
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 0)

    def test_will_not_demote_the_last_admin(self):
        self.invoke(create_user, "boss@example.com", "--password", PASSWORD, "--role", "admin")
        result = self.invoke(create_user, "boss@example.com", "--password", "a new password", "--role", "user")
        self.assertNotEqual(result.exit_code, 0)
        self.assertIn("Cannot demote the last admin", result.output)
        self.assertEqual(db.session.scalars(select(User.role)).one(), "admin")
        login = self.client.post("/v1/auth/login", json={"email": "boss@example.com", "password": PASSWORD})
        self.assertEqual(login.status_code, 200, "a refused update must change nothing")


class PurgeTokensTests(APITestCase):
    def test_deletes_only_expired_rows(self):
        user_id, _ = self.account()
        now = utcnow()
        db.session.add_all(
            [
                RevokedToken(jti="old1", user_id=user_id, expires_at=now - timedelta(minutes=1)),
                RevokedToken(jti="old2", user_id=user_id, expires_at=now - timedelta(days=3)),
                RevokedToken(jti="live", user_id=user_id, expires_at=now + timedelta(minutes=10)),
            ]
        )
        db.session.commit()
        result = self.app.test_cli_runner().invoke(purge_tokens)
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Purged 2", result.output)
        self.assertEqual(db.session.scalars(select(RevokedToken.jti)).all(), ["live"])


class SeedTests(APITestCase):
    def test_small_seed_is_loginable_and_complete(self):
        args = [
            "--users",
            "2",
            "--buckets",
            "3",
            "--items",
            "4",
            "--actors",
            "10",
            "--movies",
            "5",
            "--images",
            "2",
            "--random-seed",
            "7",
        ]
        result = self.app.test_cli_runner().invoke(seed, args)
        self.assertEqual(result.exit_code, 0, result.output)
        count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
        self.assertEqual(count(Bucket), 6)
        self.assertEqual(count(Item), 24)
        self.assertEqual(count(Actor), 10)
        self.assertEqual(count(Movie), 5)
        self.assertEqual(count(Image), 2)
        casts = db.session.execute(
            select(movie_actors.c.movie_id, func.count()).group_by(movie_actors.c.movie_id)
        ).all()
        self.assertEqual(len(casts), 5)
        self.assertTrue(all(1 <= n <= 8 for _, n in casts))
        self.assertIn("demo@example.com", result.output)
        self.assertIn("casting-director@example.com", result.output)
        login = self.client.post("/v1/auth/login", json={"email": "demo@example.com", "password": "password123"})
        self.assertEqual(login.status_code, 200)
        buckets = self.client.get("/v1/buckets", headers={"Authorization": f"Bearer {login.json['auth_token']}"}).json
        self.assertEqual(buckets["pagination"]["total"], 3)
        self.assertTrue(all(bucket["item_count"] == 4 for bucket in buckets["buckets"]))
        counted = select(func.count()).where(movie_actors.c.actor_id == Actor.id).scalar_subquery()
        self.assertEqual(db.session.scalar(select(func.count()).where(Actor.movie_count != counted)), 0)
        self.assertEqual(db.session.scalars(select(User.bucket_count).where(User.email.like("%demo%"))).all(), [3])
        totals = dict(db.session.execute(select(CatalogueCount.collection, CatalogueCount.total)).all())
        self.assertEqual(totals, {"actors": 10, "movies": 5})
        self.assertEqual(actor_tallies(), tallied_actors())
        self.assertEqual(sum(actor_tallies().values()), 10)
        director = self.client.post(
            "/v1/auth/login", json={"email": "casting-director@example.com", "password": "password123"}
        ).json
        self.assertEqual(
            self.client.get("/v1/movies", headers={"Authorization": f"Bearer {director['auth_token']}"}).status_code,
            200,
        )

    def test_seed_refuses_negative_counts(self):
        for option in ("--users", "--buckets", "--items", "--actors", "--movies", "--images"):
            with self.subTest(option=option):
                result = self.app.test_cli_runner().invoke(seed, [option, "-1"])
                self.assertEqual(result.exit_code, 2, result.output)
                self.assertIn(f"Invalid value for {option}: must not be negative", result.output)
        self.assertEqual(db.session.scalar(select(func.count(User.id))), 0, "a refused seed writes nothing")


class SeedAgainTests(APITestCase):
    """`make seed` may run again at any time: it tops the data up to the requested shape and
    leaves existing accounts (password, role, tokens) as they are."""

    def seed(self, buckets, items, actors, movies, images):
        args = ["--users", "2", "--buckets", buckets, "--items", items, "--actors", actors, "--movies", movies]
        result = self.app.test_cli_runner().invoke(seed, [*args, "--images", images, "--random-seed", "3"])
        self.assertEqual(result.exit_code, 0, result.output)
        return result.output

    def shape(self):
        count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
        return {model.__name__: count(model) for model in (User, Bucket, Item, Actor, Movie, Image)}

    def assert_counters_match_rows(self):
        items = select(func.count()).where(Item.bucket_id == Bucket.id).scalar_subquery()
        self.assertEqual(db.session.scalar(select(func.count()).where(Bucket.item_count != items)), 0)
        buckets = select(func.count()).where(Bucket.owner_id == User.id).scalar_subquery()
        self.assertEqual(db.session.scalar(select(func.count()).where(User.bucket_count != buckets)), 0)
        casts = select(func.count()).where(movie_actors.c.actor_id == Actor.id).scalar_subquery()
        self.assertEqual(db.session.scalar(select(func.count()).where(Actor.movie_count != casts)), 0)
        totals = dict(db.session.execute(select(CatalogueCount.collection, CatalogueCount.total)).all())
        self.assertEqual(totals, {"actors": self.shape()["Actor"], "movies": self.shape()["Movie"]})
        self.assertEqual(actor_tallies(), tallied_actors())

    def login(self, email, password="password123"):
        response = self.client.post("/v1/auth/login", json={"email": email, "password": password})
        self.assertEqual(response.status_code, 200, response.json)
        return {"Authorization": f"Bearer {response.json['auth_token']}"}

    def test_twice_changes_nothing_and_keeps_every_token(self):
        self.seed("3", "4", "10", "5", "1")
        first = self.shape()
        tokens = {email: self.login(email) for email in ("demo@example.com", "casting-director@example.com")}
        tokens["admin@example.com"] = self.login("admin@example.com")

        output = self.seed("3", "4", "10", "5", "1")

        self.assertEqual(self.shape(), first)
        self.assertIn("Added 0 accounts, 0 buckets, 0 items, 0 actors, 0 movies, 0 images.", output)
        self.assertIn("casting-director@example.com", output)
        self.assertIn("existed: left as it was", output)
        for email, headers in tokens.items():
            with self.subTest(email=email):
                self.assertEqual(self.client.get("/v1/auth/me", headers=headers).status_code, 200)
        self.assertEqual(self.client.get("/v1/movies", headers=tokens["casting-director@example.com"]).status_code, 200)
        self.assert_counters_match_rows()

    def test_a_larger_shape_adds_only_what_is_missing(self):
        self.seed("3", "4", "10", "5", "1")
        demo = self.login("demo@example.com")
        # The owner's own bucket counts towards the shape; a changed password and role stay.
        self.assertEqual(self.client.post("/v1/buckets", json={"name": "Mine"}, headers=demo).status_code, 201)
        changed = {"current_password": "password123", "new_password": "a password of my own"}
        self.assertEqual(self.client.put("/v1/auth/password", json=changed, headers=demo).status_code, 200)
        admin = self.login("admin@example.com")
        producer_id = db.session.scalar(select(User.id).where(User.email == "executive-producer@example.com"))
        demoted = self.client.patch(f"/v1/users/{producer_id}", json={"role": "user"}, headers=admin)
        self.assertEqual(demoted.status_code, 200)
        director = self.login("casting-director@example.com")

        output = self.seed("5", "6", "12", "7", "2")

        self.assertIn("Added 0 accounts, 3 buckets, 36 items, 2 actors, 2 movies, 1 images.", output)
        self.assertEqual(
            self.shape(), {"User": 6, "Bucket": 10, "Item": 60, "Actor": 12, "Movie": 7, "Image": 2}
        )  # 2 owners and 4 role accounts; 2 x 5 buckets of 6 items, "Mine" included
        self.login("demo@example.com", "a password of my own")
        self.assertEqual(db.session.scalar(select(User.role).where(User.id == producer_id)), "user")
        self.assertEqual(self.client.get("/v1/auth/me", headers=director).status_code, 200)
        self.assert_counters_match_rows()
        casts = db.session.execute(
            select(movie_actors.c.movie_id, func.count()).group_by(movie_actors.c.movie_id)
        ).all()
        self.assertEqual(len(casts), 7, "every movie has a cast, the new ones too")
        self.assertTrue(all(1 <= n <= 8 for _, n in casts))
