"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the mail tests.

    sink = SmtpSink().start()            # a free port; sink.url is the app's SMTP_URL
    ...
    message = sink.wait_for(1)[0]        # the parsed messages, once there are this many
    token = token_in(message)            # from the link in its plain-text body
    sink.stop(); sink.start()            # an outage, on the same port

It can refuse recipients (`refuse[address] = "550 ..."`) and ask for a login
(`SmtpSink(login=("user", "secret"))`, over plain SMTP, which aiosmtpd allows when told).

Run as a program, it writes each message it receives into a directory, one file per message,
for the documentation's examples: python -m tests.smtp_sink --port 8025 --mailbox /tmp/mailbox
"""

import argparse
import email
import email.policy
import os
import re
import threading
import time
import warnings
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.helpers import free_port

LINK = re.compile(r"https?://\S+")


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        refusal = self.sink.refuse.get(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.sink.received(envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port=None, login=None, on_message=None):
        self.port = port or free_port()
        self.login = login
        self.refuse = {}
        self.messages = []
        self._on_message = on_message
        self._condition = threading.Condition()
        self._controller = None

    @property
    def url(self):
        if self.login:
            return f"smtp://{self.login[0]}:{self.login[1]}@127.0.0.1:{self.port}"
        return f"smtp://127.0.0.1:{self.port}"

    def start(self):
        options = {}
        if self.login:
            options = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
        with warnings.catch_warnings():  # AUTH without TLS: fine on loopback, in a test
            warnings.simplefilter("ignore", UserWarning)
            self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)
            self._controller.start()
        return self

    def stop(self):
        """Go down: connections are refused until start()."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        good = (auth_data.login.decode(), auth_data.password.decode()) == tuple(self.login)
        return AuthResult(success=good, handled=False)  # the server answers 235 or 535

    def received(self, content):
        message = email.message_from_bytes(content, policy=email.policy.default)
        with self._condition:
            self.messages.append(message)
            self._condition.notify_all()
        if self._on_message:
            self._on_message(content)

    def wait_for(self, count, timeout=15):
        """The messages, once at least `count` arrived (AssertionError after `timeout` s)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(self.messages)} of {count} mails arrived within {timeout} s")
                self._condition.wait(remaining)
            return list(self.messages)

    def to(self, address):
        with self._condition:
            return [message for message in self.messages if message["To"] == address]

    def clear(self):
        with self._condition:
            self.messages.clear()


def link_in(message):
    """The link in a message's plain-text body."""
    body = message.get_body(preferencelist=("plain",)).get_content()
    match = LINK.search(body)
    if match is None:
        raise AssertionError(f"no link in the mail:\n{body}")
    return match.group(0)


def token_in(message):
    """The `token` query parameter of the message's link."""
    return parse_qs(urlsplit(link_in(message)).query)["token"][0]


def _serve(port, mailbox):
    os.makedirs(mailbox, exist_ok=True)
    counter = iter(range(1, 10**9))

    def keep(content):
        path = os.path.join(mailbox, f"{time.time_ns()}-{next(counter)}.eml")
        with open(path + ".part", "wb") as handle:
            handle.write(content)
        os.rename(path + ".part", path)  # a reader never sees half a mail

    sink = SmtpSink(port, on_message=keep).start()
    print(f"SMTP sink on 127.0.0.1:{port}, mails into {mailbox}", flush=True)
    try:
        threading.Event().wait()
    finally:
        sink.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="An SMTP server that writes each mail into a directory.")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--mailbox", required=True)
    arguments = parser.parse_args()
    _serve(arguments.port, arguments.mailbox)
