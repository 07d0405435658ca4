wrk.method = "POST"
wrk.body = '{"email": "demo@example.com", "password": "password123"}'
wrk.headers["Content-Type"] = "application/json"
