"""Ending a session while it refreshes, against a live gunicorn on PostgreSQL: the end wins, or the
refresh's new tokens die with the session; never a live token of an ended session."""

import threading

import jwt

from tests.liveserver import PASSWORD, LiveServerTestCase, bearer, stop_shared_server

ROUNDS = 10
MSG_REVOKED = "Token has been revoked. Please log in again."


def tearDownModule():
    stop_shared_server()


def sid(tokens):
    return jwt.decode(tokens["auth_token"], options={"verify_signature": False})["sid"]


class SessionRaces(LiveServerTestCase):
    def setUp(self):
        self.email = f"{self.id().rpartition('.')[2][:40]}@example.com"
        self.server.request("POST", "/v1/auth/register", {"email": self.email, "password": PASSWORD})

    def login(self):
        return self.server.request("POST", "/v1/auth/login", {"email": self.email, "password": PASSWORD}).json

    def assertDead(self, tokens):
        me = self.server.request("GET", "/v1/auth/me", headers=bearer(tokens["auth_token"]))
        self.assertEqual((me.status, me.message), (401, MSG_REVOKED))
        again = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        self.assertEqual((again.status, again.message), (401, MSG_REVOKED))

    def test_an_end_and_three_refreshes_of_one_session_at_once(self):
        laptop = self.login()
        for _ in range(ROUNDS):
            phone = self.login()
            refresh = ("POST", "/v1/auth/refresh", {"json": {"refresh_token": phone["refresh_token"]}})
            end = ("DELETE", f"/v1/auth/sessions/{sid(phone)}", {"headers": bearer(laptop["auth_token"])})
            answers = self.server.at_once([refresh, end, refresh, refresh])
            self.assertStatuses(answers, {200, 401})
            self.assertEqual(answers[1].json, {"success": True, "deleted": sid(phone)})
            refreshed = [answers[i] for i in (0, 2, 3) if answers[i].status == 200]
            self.assertLessEqual(len(refreshed), 1, "a refresh token is spent once")
            for answer in refreshed:
                self.assertDead(answer.json)
            self.assertDead(phone)
            self.assertEqual(self.server.scalar("SELECT count(*) FROM sessions WHERE id = :s", s=sid(phone)), 0)
        self.assertEqual(self.server.request("GET", "/v1/auth/me", headers=bearer(laptop["auth_token"])).status, 200)

    def test_a_device_refreshing_in_a_loop_is_signed_out_by_another(self):
        laptop = self.login()
        for _ in range(3):
            phone = self.login()
            latest, answers, ended = [phone], [], threading.Event()
            refresher = threading.Thread(target=self.refresh_until_refused, args=(latest, answers, ended))
            refresher.start()
            while len(answers) < 3:  # a few refreshes in, so the end meets a moving session
                threading.Event().wait(0.005)
            end = self.server.request("DELETE", f"/v1/auth/sessions/{sid(phone)}", headers=bearer(laptop["auth_token"]))
            ended.set()
            refresher.join(60)
            self.assertEqual(end.status, 200)
            self.assertNo5xx(answers)
            self.assertEqual((answers[-1].status, answers[-1].message), (401, MSG_REVOKED))
            for tokens in latest:
                self.assertDead(tokens)

    def refresh_until_refused(self, latest, answers, ended):
        """Refresh the newest tokens of `latest` again and again, keeping each answer, until one is refused."""
        while True:
            answer = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": latest[-1]["refresh_token"]})
            answers.append(answer)
            if answer.status != 200:
                return
            latest.append(answer.json)
            if ended.is_set() and len(answers) > 200:  # the end should have stopped it long ago
                return
