"""The account export when its database connection dies mid-stream, against a live gunicorn on PostgreSQL.

The 200 and the headers have long been sent; what the client must see is an incomplete transfer (no last
chunk), never a body that ends like a whole one.
"""

import http.client
import json
import socket
import time

from tests.liveserver import LiveServerTestCase

BUCKETS, ITEMS_PER_BUCKET = 5000, 10  # about 8 MiB of JSON: far more than the socket buffers hold


class ExportCutShort(LiveServerTestCase):
    server_env = {"EXPORTS_AT_ONCE": "1"}

    def seeded_account(self):
        user_id, headers = self.server.account()
        self.server.execute(
            "INSERT INTO buckets (owner_id, name, name_key, item_count, created_at, modified_at) "
            "SELECT :o, 'bucket ' || g, 'bucket ' || g, :n, now(), now() FROM generate_series(1, :b) g",
            o=user_id,
            n=ITEMS_PER_BUCKET,
            b=BUCKETS,
        )
        self.server.execute(
            "INSERT INTO items (bucket_id, name, description, done, created_at, modified_at) "
            "SELECT b.id, 'item ' || g, 'to do', false, now(), now() "
            "FROM buckets b CROSS JOIN generate_series(1, :n) g WHERE b.owner_id = :o",
            o=user_id,
            n=ITEMS_PER_BUCKET,
        )
        return headers

    def open_export(self, headers):
        """The export's answer with its body unread, on a socket whose small buffer makes the server wait."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(60)
        sock.connect(("127.0.0.1", self.server.port))
        connection.sock = sock
        connection.request("GET", "/v1/auth/me/export", headers=headers)
        return connection, connection.getresponse()

    def export_backend(self):
        """The pid of the server's connection reading the export (it waits between two FETCHes)."""
        sql = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE 'FETCH FORWARD%'"
        )
        for _ in range(100):
            pids = [pid for (pid,) in self.server.rows(sql)]
            if pids:
                return pids[0]
            time.sleep(0.05)
        self.fail("no export cursor in pg_stat_activity")

    def test_a_connection_killed_mid_stream_breaks_the_transfer_off(self):
        headers = self.seeded_account()
        connection, response = self.open_export(headers)
        self.assertEqual(response.status, 200)
        received = response.read(32 * 1024)
        self.assertTrue(received.startswith(b'{"user":'))
        self.server.scalar("SELECT pg_terminate_backend(:pid)", pid=self.export_backend())
        with self.assertRaises(http.client.IncompleteRead) as cut:
            while chunk := response.read(64 * 1024):
                received += chunk
        received += cut.exception.partial
        connection.close()
        self.assertNotIn(b'"success":true', received)
        with self.assertRaises(ValueError):  # what arrived is not a JSON document either
            json.loads(received)
        log = self.server.log()
        self.assertIn("cut short by the database: OperationalError", log)
        self.assertIn("the body was cut short", log)  # gunicorn's own line, without its traceback
        self.assertNotIn("Traceback", log)
        # The server carries on, and the export's slot (one here) came back.
        self.assertEqual(self.server.request("GET", "/v1/health").status, 200)
        _, small = self.server.account()
        again = self.server.request("GET", "/v1/auth/me/export", headers=small)
        self.assertEqual(again.status, 200, again.raw[:200])
        self.assertTrue(again.json["success"])

    def test_a_client_that_goes_away_mid_stream_gives_the_slot_back(self):
        headers = self.seeded_account()
        connection, response = self.open_export(headers)
        self.assertEqual(response.status, 200)
        response.read(16 * 1024)
        self.export_backend()  # the export reads
        connection.sock.shutdown(socket.SHUT_RDWR)
        connection.close()
        _, small = self.server.account()
        for _ in range(100):  # the server notices when its next write fails
            again = self.server.request("GET", "/v1/auth/me/export", headers=small)
            if again.status == 200:
                break
            self.assertEqual(again.status, 503)
            time.sleep(0.1)
        self.assertEqual(again.status, 200)
        self.assertNotIn("Traceback", self.server.log())
