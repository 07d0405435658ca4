"""gunicorn's gthread worker, with each request's head, and a JSON-sized body, read by the
worker's poller, not a thread.

Why (issue 26, measured): gthread hands a connection to a thread as soon as its first byte
arrives, and the thread then reads the request line, headers and body blocking, with no deadline
(gthread's 5 s DEFAULT_WORKER_DATA_TIMEOUT only defers connections that send nothing at all).
150 connections sending one header byte a second so held all 128 threads, and nobody else was
served; so did slow bodies. Here a connection waits in the poller, costing no thread, until its
whole head has arrived, and then its whole body when the head announces one of at most
POLLER_BODY_BYTES (every JSON body the app takes: MAX_JSON_BYTES, 1 MiB by default). Each byte
that comes in is read without blocking. A head still incomplete HEAD_SECONDS after the connection
opened (or its previous answer) closes the connection; a body gets HEAD_SECONDS more, plus its
length at BODY_BYTES_PER_SECOND, then is answered 408. A pause longer than gunicorn's keepalive
(2 s) closes it too, as gthread does for any connection waiting in its poller. A client that
asked to hear `100 Continue` before sending its body hears it from here.

Bodies the poller leaves to the thread: a chunked one, a larger one (an image upload), and any
while the worker's poller already holds HELD_BYTES_MAX of requests. The thread receives those
before the request takes a fair-admission slot (app.fairness.admit).

Gunicorn's own refusals (a request line or headers over its limits, a request that is not valid
HTTP) are answered in the API's JSON envelope too, not in gunicorn's HTML.

A module of its own, outside the app package: gunicorn's master process loads the worker class,
and must not import the app (each worker loads it, so a HUP picks up new code).
"""

import json
import re
import threading
import time
from http import HTTPStatus

from gunicorn import util
from gunicorn.workers import gthread

HEAD_SECONDS = 10
POLLER_BODY_BYTES = (1 << 20) + 1  # JSON's limit and the byte past it by which the app sees an excess
BODY_BYTES_PER_SECOND = 64 * 1024  # a body's time: HEAD_SECONDS, and its length at this rate
HELD_BYTES_MAX = 64 << 20  # what one worker's poller holds of requests; past it, threads read bodies
HEAD_END = b"\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_READ = 64 * 1024
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)
_HTTP_11 = re.compile(rb"[^\r]* HTTP/1\.1\r\n")
_EXPECT = re.compile(rb"\r\nexpect:([^\r]*)(?=\r\n)", re.IGNORECASE)
# Where the status's phrase, capitalised as the app's messages are, would read badly (app.errors).
MESSAGES = {414: "URI too long", 500: "Internal server error"}


class HeadFirstThreadWorker(gthread.ThreadWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._held = 0  # bytes of requests held by connections waiting in the poller
        self._holding = threading.Lock()

    def handle(self, conn):
        if self.cfg.is_ssl:  # TLS is read by gthread itself (this API serves plain HTTP behind TLS)
            return super().handle(conn)
        arrived = self._request_arrived(conn)
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
        self._send_quietly(client, json_error(status))

    def _request_arrived(self, conn):
        """True once the head, and the body the poller takes, are read ahead (given back to the
        parser), None while more is to come, False if the client left or overran its time."""
        held = getattr(conn, "head", b"")
        if conn.parser is not None:  # a kept-alive connection may hold the next request's start
            held = conn.parser.unreader.take_buffered() + held
        conn.sock.setblocking(False)
        try:
            data = conn.sock.recv(_READ)
        except BlockingIOError:
            data = None
        except OSError:
            return self._let_go(conn, False)
        if data == b"" and not held:
            return self._let_go(conn, False)
        held += data or b""
        waiting, length = self._waiting_for(held) if data != b"" else (None, 0)
        if waiting == "body":
            held = self._continue(conn, held)
            if not self._room(conn, held):
                waiting = None  # the poller holds enough: the thread receives this body
        if waiting is not None:
            conn.head_since = getattr(conn, "head_since", None) or time.monotonic()
            allowed = HEAD_SECONDS + (length / BODY_BYTES_PER_SECOND if waiting == "body" else 0)
            if time.monotonic() - conn.head_since <= allowed:
                self._hold(conn, held)
                return None
            if waiting == "body":
                self.log.info("A request body from %s did not arrive in time: 408", conn.client)
                self._send_quietly(conn.sock, json_error(408))
            return self._let_go(conn, False)
        self._let_go(conn, True)
        conn.init()  # the parser, on the blocking socket; it reads what is held first
        conn.parser.unreader.unread(held)
        return True

    def _waiting_for(self, held):
        """("head", 0) while the head is incomplete, ("body", its length) while a body the poller
        takes is, or (None, 0): nothing more for the poller to wait for."""
        end = held.find(HEAD_END)
        if end < 0:
            return ("head", 0) if len(held) <= self._longest_head() else (None, 0)
        head = held[: end + 2]
        length = _LENGTH.search(head)
        if length is None or _CHUNKED.search(head):
            return None, 0
        length = int(length.group(1))
        if length > POLLER_BODY_BYTES or len(held) >= end + len(HEAD_END) + length:
            return None, 0
        expect = _EXPECT.search(head)
        if expect and (expect[1].strip().lower() != b"100-continue" or not _HTTP_11.match(head)):
            return None, 0  # gunicorn refuses an unknown expectation (417) and ignores HTTP/1.0's
        return "body", length

    def _continue(self, conn, held):
        """A client waiting for `100 Continue` before it sends its body hears it now, once: the
        Expect header is taken out, so gunicorn, reading the head later, does not say it again."""
        end = held.find(HEAD_END)
        head = _EXPECT.sub(b"", held[: end + 2])
        if len(head) == end + 2:
            return held
        self._send_quietly(conn.sock, CONTINUE)
        return head + held[end + 2 :]

    def _room(self, conn, held):
        """Whether the worker's poller may hold `held` for this connection (HELD_BYTES_MAX)."""
        with self._holding:
            others = self._held - len(getattr(conn, "head", b""))
            if others + len(held) > HELD_BYTES_MAX:  # counted again: gthread closes connections too
                others = sum(len(getattr(c, "head", b"")) for c in list(self.pending_conns) if c is not conn)
                self._held = others + len(getattr(conn, "head", b""))
            return others + len(held) <= HELD_BYTES_MAX

    def _hold(self, conn, held):
        with self._holding:
            self._held += len(held) - len(getattr(conn, "head", b""))
            conn.head = held

    def _let_go(self, conn, arrived):
        self._hold(conn, b"")
        conn.head_since = None
        return arrived

    def _send_quietly(self, sock, data):
        """A short answer, on a socket that may be non-blocking: a client gone is only noted."""
        try:
            util.write_nonblock(sock, data)
        except OSError:
            self.log.debug("Failed to send an answer to a client that left.")

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
