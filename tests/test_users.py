"""/v1/users: administration behind manage:users."""

from sqlalchemy import select

from app.extensions import db
from app.models import Bucket, User
from tests.helpers import APITestCase


class UserAdminTests(APITestCase):
    def setUp(self):
        super().setUp()
        self.admin_id, self.admin = self.account("admin", "root@example.com")

    def test_only_manage_users_may_enter(self):
        for role in ("user", "casting_assistant", "casting_director", "executive_producer"):
            headers = self.headers_for(role)
            with self.subTest(role=role):
                self.assertError(self.client.get("/v1/users", headers=headers), 403)
                self.assertError(self.client.get(f"/v1/users/{self.admin_id}", headers=headers), 403)
                self.assertError(
                    self.client.patch(f"/v1/users/{self.admin_id}", headers=headers, json={"role": "user"}), 403
                )
                self.assertError(self.client.delete(f"/v1/users/{self.admin_id}", headers=headers), 403)
        self.assertError(self.client.get("/v1/users"), 401)

    def test_list_search_filter_sort(self):
        self.account("casting_director", "carol@example.com")
        self.account("user", "dave@example.com")
        body = self.client.get("/v1/users", headers=self.admin).json
        self.assertEqual(body["pagination"]["total"], 3)
        self.assertEqual(
            {u["email"] for u in body["users"]}, {"root@example.com", "carol@example.com", "dave@example.com"}
        )
        body = self.client.get("/v1/users?q=CAROL", headers=self.admin).json
        self.assertEqual([u["email"] for u in body["users"]], ["carol@example.com"])
        body = self.client.get("/v1/users?role=admin", headers=self.admin).json
        self.assertEqual([u["email"] for u in body["users"]], ["root@example.com"])
        body = self.client.get("/v1/users?sort=-email", headers=self.admin).json
        self.assertEqual(
            [u["email"] for u in body["users"]], ["root@example.com", "dave@example.com", "carol@example.com"]
        )
        self.assertError(self.client.get("/v1/users?role=king", headers=self.admin), 400)
        self.assertError(self.client.get("/v1/users?sort=password_hash", headers=self.admin), 400)
        self.assertNotIn("password_hash", str(body))

    def test_get_patch_delete(self):
        user_id, headers = self.account("user", "eve@example.com")
        body = self.client.get(f"/v1/users/{user_id}", headers=self.admin).json
        self.assertEqual(body["user"]["email"], "eve@example.com")
        response = self.client.patch(f"/v1/users/{user_id}", headers=self.admin, json={"role": "executive_producer"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json["user"]["role"], "executive_producer")
        self.assertIn("post:movies", response.json["user"]["permissions"])
        self.assertEqual(self.client.get("/v1/movies", headers=headers).status_code, 200)
        self.client.post("/v1/buckets", headers=headers, json={"name": "mine"})
        response = self.client.delete(f"/v1/users/{user_id}", headers=self.admin)
        self.assertEqual(response.json, {"success": True, "deleted": user_id})
        self.assertIsNone(db.session.get(User, user_id))
        self.assertEqual(db.session.scalars(select(Bucket)).all(), [])
        self.assertError(self.client.get("/v1/auth/me", headers=headers), 401, "Invalid token. Please log in again.")
        self.assertError(self.client.get(f"/v1/users/{user_id}", headers=self.admin), 404)
        self.assertError(self.client.delete(f"/v1/users/{user_id}", headers=self.admin), 404)

    def test_bad_role_changes(self):
        user_id, _ = self.account()
        for body, field in (
            ({"role": "king"}, "role"),
            ({}, "role"),
            ({"role": None}, "role"),
            ({"role": 1}, "role"),
            ({"role": "admin", "email": "x@y.z"}, "email"),
        ):
            with self.subTest(body=body):
                self.assertFieldError(self.client.patch(f"/v1/users/{user_id}", headers=self.admin, json=body), field)
        self.assertError(self.client.patch(f"/v1/users/{user_id}", headers=self.admin, json=["admin"]), 400)
        self.assertError(self.client.put(f"/v1/users/{user_id}", headers=self.admin, json={"role": "admin"}), 405)

    def test_last_admin_cannot_be_demoted_or_deleted(self):
        self.assertError(
            self.client.patch(f"/v1/users/{self.admin_id}", headers=self.admin, json={"role": "user"}), 409
        )
        self.assertError(self.client.delete(f"/v1/users/{self.admin_id}", headers=self.admin), 409)
        second_id, second = self.account("admin")
        response = self.client.patch(f"/v1/users/{self.admin_id}", headers=second, json={"role": "user"})
        self.assertEqual(response.status_code, 200)
        self.assertError(self.client.delete(f"/v1/users/{second_id}", headers=second), 409)
        self.assertError(self.client.get("/v1/users", headers=self.admin), 403)
