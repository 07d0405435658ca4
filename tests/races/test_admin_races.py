"""The last-admin rule under concurrency: whatever admins do to each other at once, one stays."""

from tests.liveserver import LiveServerTestCase, stop_shared_server

TRIES = 4


def tearDownModule():
    stop_shared_server()


class LastAdminRaces(LiveServerTestCase):
    def two_lone_admins(self):
        self.server.execute("UPDATE users SET role = 'user' WHERE role = 'admin'")
        return self.server.account("admin"), self.server.account("admin")

    def assertOneAdminLeft(self, answers):
        self.assertStatuses(answers, {200, 401, 403, 404, 409})
        self.assertGreaterEqual(self.server.scalar("SELECT count(*) FROM users WHERE role = 'admin'"), 1)
        refusals = {a.message for a in answers if a.status == 409}
        self.assertLessEqual(refusals, {"Cannot demote the last admin", "Cannot delete the last admin"})

    def test_two_admins_demote_each_other(self):
        for _ in range(TRIES):
            (a, a_headers), (b, b_headers) = self.two_lone_admins()
            answers = self.server.at_once(
                [
                    ("PATCH", f"/v1/users/{b}", {"json": {"role": "user"}, "headers": a_headers}),
                    ("PATCH", f"/v1/users/{a}", {"json": {"role": "user"}, "headers": b_headers}),
                ]
            )
            self.assertOneAdminLeft(answers)

    def test_delete_an_admin_while_the_other_is_demoted(self):
        for _ in range(TRIES):
            (a, a_headers), (b, b_headers) = self.two_lone_admins()
            answers = self.server.at_once(
                [
                    ("DELETE", f"/v1/users/{b}", {"headers": a_headers}),
                    ("PATCH", f"/v1/users/{a}", {"json": {"role": "user"}, "headers": b_headers}),
                ]
            )
            self.assertOneAdminLeft(answers)
