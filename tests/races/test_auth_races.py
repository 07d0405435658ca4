"""Concurrent uses of one token: every answer is 2xx or 4xx, and one revocation row per jti."""

from tests.liveserver import LiveServerTestCase, bearer, stop_shared_server


def tearDownModule():
    stop_shared_server()


class TokenRaces(LiveServerTestCase):
    def test_twenty_logouts_with_one_token(self):
        """One logs out (200); the other nineteen used a revoked token (401), whether their request
        started before or after the winner's revocation was committed."""
        user_id, headers = self.server.account()
        answers = self.server.fire(20, "POST", "/v1/auth/logout", headers=headers)
        self.assertStatuses(answers, {200, 401})
        self.assertEqual(sorted(a.status for a in answers), [200] + [401] * 19)
        revoked = "Token has been revoked. Please log in again."
        self.assertEqual({a.message for a in answers if a.status == 401}, {revoked})
        self.assertEqual(self.server.scalar("SELECT count(*) FROM revoked_tokens WHERE user_id = :u", u=user_id), 1)
        self.assertEqual(self.server.request("GET", "/v1/auth/me", headers=headers).status, 401)

    def test_refresh_and_logout_of_one_refresh_token_at_once(self):
        for _ in range(5):
            _, headers = self.server.account()
            login = self.server.request("GET", "/v1/auth/me", headers=headers).json
            tokens = self.server.tokens(login["user"]["email"])
            refresh = {"refresh_token": tokens["refresh_token"]}
            answers = self.server.at_once(
                [
                    ("POST", "/v1/auth/refresh", {"json": refresh}),
                    ("POST", "/v1/auth/refresh", {"json": refresh}),
                    ("POST", "/v1/auth/logout", {"json": refresh, "headers": bearer(tokens["auth_token"])}),
                ]
            )
            self.assertStatuses(answers, {200, 401})
            self.assertLessEqual([a.status for a in answers[:2]].count(200), 1, "a refresh token is spent once")
            self.assertEqual(answers[2].status, 200)
            jti_rows = self.server.rows("SELECT jti, count(*) FROM revoked_tokens GROUP BY jti HAVING count(*) > 1")
            self.assertEqual(jti_rows, [])
            again = self.server.request("POST", "/v1/auth/refresh", json=refresh)
            self.assertEqual((again.status, again.message), (401, "Token has been revoked. Please log in again."))
