from tests.helpers import APITestCase


class IndexTests(APITestCase):
    def test_root_and_v1_link_everything(self):
        for path in ("/", "/v1"):
            response = self.client.get(path)
            self.assertEqual(response.status_code, 200)
            links = response.json["links"]
            for key in ("docs", "openapi", "health", "buckets", "actors", "movies", "images", "users"):
                self.assertIn(key, links)
            self.assertEqual(links["docs"], "/docs")
            self.assertEqual(links["openapi"], "/v1/openapi.json")

    def test_health_reports_database(self):
        response = self.client.get("/v1/health")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json, {"success": True, "status": "ok", "database": "ok"})
