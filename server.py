"""gunicorn's gthread worker, with each request's head read by the worker's poller, not a thread.

Why (issue 26, measured): gthread hands a connection to a thread as soon as its first byte
arrives, and the thread then reads the request line and headers blocking, with no deadline
(gthread's 5 s DEFAULT_WORKER_DATA_TIMEOUT only defers connections that send nothing at all).
150 connections sending one header byte a second so held all 128 threads, and nobody else was
served. Here a connection waits in the poller, costing no thread, until its whole head has
arrived; each byte that comes in is read without blocking, and a head still incomplete
HEAD_SECONDS after the connection opened (or its previous answer) closes the connection. A pause longer than gunicorn's
keepalive (2 s) closes it too, as gthread does for any connection waiting in its poller.
The body is read by the request's thread, before it takes a fair-admission slot
(app.fairness.admit).

Gunicorn's own refusals (a request line or headers over its limits, a request that is not valid
HTTP) are answered in the API's JSON envelope too, not in gunicorn's HTML.

A module of its own, outside the app package: gunicorn's master process loads the worker class,
and must not import the app (each worker loads it, so a HUP picks up new code).
"""

import json
import time
from http import HTTPStatus

from gunicorn import util
from gunicorn.workers import gthread

HEAD_SECONDS = 10
HEAD_END = b"\r\n\r\n"
_READ = 64 * 1024
# Where the status's phrase, capitalised as the app's messages are, would read badly (app.errors).
MESSAGES = {414: "URI too long", 500: "Internal server error"}


class HeadFirstThreadWorker(gthread.ThreadWorker):
    def handle(self, conn):
        if self.cfg.is_ssl:  # TLS is read by gthread itself (this API serves plain HTTP behind TLS)
            return super().handle(conn)
        arrived = self._head_arrived(conn)
        if arrived is None:
            return gthread._DEFER  # back to the poller until more bytes come
        if not arrived:
            # Closed here, at once: gthread's graceful close lingers up to 2 s on the worker's
            # main thread, reading what the client still sends, and a slow client keeps sending.
            conn.sock.close()
            return False
        return super().handle(conn)

    def handle_error(self, req, client, addr, exc):
        """Gunicorn picks the status and logs it (error and access lines); the answer is JSON."""
        written = _Written()
        super().handle_error(req, written, addr, exc)
        status = int(written.data.split(b" ", 2)[1])  # b"HTTP/1.1 414 URI Too Long\r\n..."
        try:
            util.write_nonblock(client, json_error(status))
        except OSError:
            self.log.debug("Failed to send error message.")

    def _head_arrived(self, conn):
        """True once the whole head is read ahead (given back to the parser), None while more
        is to come, False if the client left or overran HEAD_SECONDS."""
        held = getattr(conn, "head", b"")
        if conn.parser is not None:  # a kept-alive connection may hold the next request's start
            held = conn.parser.unreader.take_buffered() + held
        conn.sock.setblocking(False)
        try:
            data = conn.sock.recv(_READ)
        except BlockingIOError:
            data = None
        except OSError:
            return False
        if data == b"" and not held:
            return False
        held += data or b""
        if HEAD_END not in held and len(held) <= self._longest_head() and data != b"":
            conn.head = held
            conn.head_since = getattr(conn, "head_since", None) or time.monotonic()
            return None if time.monotonic() - conn.head_since <= HEAD_SECONDS else False
        conn.head = b""
        conn.head_since = None
        conn.init()  # the parser, on the blocking socket; it reads what is held first
        conn.parser.unreader.unread(held)
        return True

    def _longest_head(self):
        """The longest head gunicorn's limits allow: past it, gunicorn answers (414, 431)."""
        cfg = self.cfg
        return cfg.limit_request_line + cfg.limit_request_fields * (cfg.limit_request_field_size + 2) + 4


class _Written:
    """Stands in for the client's socket while gunicorn writes its HTML answer: keeps it."""

    def __init__(self):
        self.data = b""

    def gettimeout(self):
        return 0.0

    def sendall(self, data):
        self.data += data


def json_error(status):
    """A whole HTTP answer in the API's error envelope (app.errors), for a request the app never saw."""
    reason = HTTPStatus(status).phrase
    message = MESSAGES.get(status) or reason.capitalize()
    body = json.dumps({"success": False, "error": status, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body
