"""Admins acting on each other at once, on PostgreSQL (a live gunicorn) and SQLite: one admin always
stays, and an admin who has just lost the role cannot complete a role change afterwards."""

from tests.liveserver import RaceTestCase, stop_shared_server

TRIES = 4
ROUNDS = 5
NOT_AN_ADMIN = "Permission manage:users is required"


def tearDownModule():
    stop_shared_server()


class LastAdminRaces(RaceTestCase):
    def lone_admins(self, n):
        self.server.execute("UPDATE users SET role = 'user' WHERE role = 'admin'")
        return [self.server.account("admin") for _ in range(n)]

    def assertOneAdminLeft(self, answers):
        self.assertStatuses(answers, {200, 401, 403, 404, 409})
        self.assertGreaterEqual(self.server.scalar("SELECT count(*) FROM users WHERE role = 'admin'"), 1)
        refusals = {a.message for a in answers if a.status == 409}
        self.assertLessEqual(refusals, {"Cannot demote the last admin", "Cannot delete the last admin"})

    def test_two_admins_demote_each_other(self):
        for _ in range(TRIES):
            (a, a_headers), (b, b_headers) = self.lone_admins(2)
            answers = self.server.at_once(
                [
                    ("PATCH", f"/v1/users/{b}", {"json": {"role": "user"}, "headers": a_headers}),
                    ("PATCH", f"/v1/users/{a}", {"json": {"role": "user"}, "headers": b_headers}),
                ]
            )
            self.assertOneAdminLeft(answers)

    def test_delete_an_admin_while_the_other_is_demoted(self):
        for _ in range(TRIES):
            (a, a_headers), (b, b_headers) = self.lone_admins(2)
            answers = self.server.at_once(
                [
                    ("DELETE", f"/v1/users/{b}", {"headers": a_headers}),
                    ("PATCH", f"/v1/users/{a}", {"json": {"role": "user"}, "headers": b_headers}),
                ]
            )
            self.assertOneAdminLeft(answers)

    def test_of_two_crossing_demotions_one_is_refused(self):
        """A third admin stays whatever happens, so the last-admin rule never decides: the second
        demotion must be refused because its author is no admin any more (issue 26 item 6)."""
        for _ in range(ROUNDS):
            (a, a_headers), (b, b_headers), _third = self.lone_admins(3)
            answers = self.server.at_once(
                [
                    ("PATCH", f"/v1/users/{b}", {"json": {"role": "user"}, "headers": a_headers}),
                    ("PATCH", f"/v1/users/{a}", {"json": {"role": "user"}, "headers": b_headers}),
                ]
            )
            self.assertNo5xx(answers)
            self.assertEqual(sorted((x.status, x.message) for x in answers if x.status != 200), [(403, NOT_AN_ADMIN)])
            roles = self.server.rows("SELECT role FROM users WHERE id IN (:a, :b)", a=a, b=b)
            self.assertEqual(sorted(role for (role,) in roles), ["admin", "user"])

    def test_an_admin_deleted_while_deleting_another_deletes_nothing(self):
        for _ in range(ROUNDS):
            (a, a_headers), (b, b_headers), _third = self.lone_admins(3)
            answers = self.server.at_once(
                [
                    ("DELETE", f"/v1/users/{b}", {"headers": a_headers}),
                    ("DELETE", f"/v1/users/{a}", {"headers": b_headers}),
                ]
            )
            self.assertStatuses(answers, {200, 401, 403})
            self.assertEqual(self.server.scalar("SELECT count(*) FROM users WHERE id IN (:a, :b)", a=a, b=b), 1)
