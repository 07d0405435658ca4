"""Mail: an outbox written in the request's transaction, and the sender that delivers it.

- `enqueue` writes a mail into the outbox table with the change that causes it; it goes
  nowhere unless that transaction commits. The commit itself wakes this process's sender
  (the session's after_commit event), so the mail leaves within a moment of the answer.
- The sender is a thread of each web process (started with the gunicorn worker, or by the first
  mail a request of the process commits; never in a command-line process). It claims due mails in small
  batches, sends them over one SMTP connection (smtplib) and deletes each one the server took.
  A mail the server did not take is tried again every MAIL_RETRY_SECONDS for its first 10
  minutes, then every tenth of its age (at most hourly), until 24 hours have passed: then it
  is marked failed (`manage.py mail status`, `mail retry`). A permanent refusal (5xx) fails
  it at once.
- A claim moves the mail's `next_attempt_at` past a lease (CLAIM_LEASE): on PostgreSQL the
  due rows are picked with FOR UPDATE SKIP LOCKED, and SQLite runs one writer at a time, so two
  senders (workers, instances) never take the same mail; a sender sends no mail of a batch
  once half the lease has passed. A process that died mid-batch leaves its claimed mails to
  the next sender when the lease ends: a restart loses nothing.
- Without SMTP_URL, mails are written to the log (in production without their bodies, which hold live
  links, and a warning says so at start).
- Bodies hold live links, so the outbox keeps them encrypted with a key derived from SECRET_KEY.
"""

import base64
import logging
import os
import smtplib
import ssl
import threading
import time
from contextlib import contextmanager
from datetime import timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from urllib.parse import unquote, urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, has_app_context, has_request_context
from flask_sqlalchemy.session import Session
from sqlalchemy import create_engine, delete, event, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from app import database
from app.extensions import db
from app.models import OutboxMail
from app.models.base import utcnow

log = logging.getLogger("app.mail")

BATCH = 10
CLAIM_LEASE = timedelta(minutes=2)
FAST_RETRIES = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=24)
LONGEST_RETRY = timedelta(hours=1)
# With nothing due, a sender looks again after this long at most: for mails another process
# wrote without waking it (`manage.py mail retry`). Its own retries it knows the time of.
IDLE_SECONDS = 30
SMTP_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
WRITTEN = "mail_written"  # session.info: this transaction wrote a mail
ERROR_LENGTH = 500  # mail_outbox.last_error


# -- writing ---------------------------------------------------------------------


def enqueue(kind, recipient, subject, body):
    """Put a mail into the outbox in the current transaction (flushed; the request commits it).

    `recipient` None writes a stand-in that the sender drops unsent: a request that must cost
    the same whether or not its address has an account writes one mail either way.
    """
    sealed = seal(body, current_app.config["SECRET_KEY"])
    db.session.execute(insert(OutboxMail).values(kind=kind, recipient=recipient, subject=subject, body=sealed))
    db.session.info[WRITTEN] = True


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session):
    """The commit that made a mail visible wakes this process's sender. A request's commit starts
    it first if need be (a web process whose server did not: the Flask dev server, tests); a
    command-line process starts none, the web processes send what it wrote."""
    if not session.info.pop(WRITTEN, False) or not has_app_context():
        return
    sender = current_app.extensions["mail"]
    if has_request_context():
        sender.start()
    sender.wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session):
    session.info.pop(WRITTEN, None)


def _fernet(secret):
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mail outbox").derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(text, secret):
    return _fernet(secret).encrypt(text.encode("utf-8")).decode("ascii")


def unseal(sealed, secret):
    return _fernet(secret).decrypt(sealed.encode("ascii")).decode("utf-8")


# -- reading (operators, metrics) ---------------------------------------------------


def count_waiting(session=None):
    """How many mails wait to be sent (cheap: the sender's index answers it)."""
    session = session or db.session
    return session.scalar(select(func.count()).select_from(OutboxMail).where(OutboxMail.failed_at.is_(None)))


def waiting_and_failed(limit):
    """(waiting mails soonest first, failed mails newest first), `limit` of each, and the totals."""
    waiting = OutboxMail.failed_at.is_(None)
    rows = {
        "waiting": db.session.scalars(
            select(OutboxMail).where(waiting).order_by(OutboxMail.next_attempt_at).limit(limit)
        ).all(),
        "failed": db.session.scalars(
            select(OutboxMail).where(~waiting).order_by(OutboxMail.failed_at.desc()).limit(limit)
        ).all(),
    }
    totals = dict(
        db.session.execute(
            select(waiting.label("is_waiting"), func.count()).select_from(OutboxMail).group_by("is_waiting")
        ).all()
    )
    return rows, {"waiting": totals.get(True, 0), "failed": totals.get(False, 0)}


def retry_failed(ids=None):
    """Failed mails (all, or those of `ids`) wait again, with a new 24 hours; how many."""
    now = utcnow()
    stmt = update(OutboxMail).where(OutboxMail.failed_at.is_not(None))
    if ids is not None:
        stmt = stmt.where(OutboxMail.id.in_(ids))
    return db.session.execute(stmt.values(failed_at=None, queued_at=now, next_attempt_at=now)).rowcount


def discard_failed(ids=None):
    """Delete failed mails (all, or those of `ids`); how many."""
    stmt = delete(OutboxMail).where(OutboxMail.failed_at.is_not(None))
    if ids is not None:
        stmt = stmt.where(OutboxMail.id.in_(ids))
    return db.session.execute(stmt).rowcount


# -- the schedule -----------------------------------------------------------------


def next_attempt(queued_at, now, retry_seconds):
    """When a mail the server did not take is tried again, or None: give up."""
    age = now - queued_at
    if age >= GIVE_UP_AFTER:
        return None
    if age < FAST_RETRIES:
        return now + timedelta(seconds=retry_seconds)
    return now + min(max(age / 10, timedelta(seconds=retry_seconds)), LONGEST_RETRY)


# -- transports ---------------------------------------------------------------------


class ServerUnavailable(Exception):
    """The SMTP server could not be reached or would not take mail now: try again later."""


class Refused(Exception):
    """The server refused this one mail; `permanent` for a 5xx answer."""

    def __init__(self, code, text):
        super().__init__(f"{code} {text}")
        self.permanent = 500 <= code < 600


class SmtpTransport:
    """SMTP through smtplib, as SMTP_URL says: smtp://, smtp+starttls:// or smtps://.

    Its log lines and errors name the host and port, never the credentials.
    """

    def __init__(self, url, timeout):
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or SMTP_PORTS[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password or "")
        self.timeout = timeout

    def __repr__(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    @contextmanager
    def connection(self):
        """A logged-in connection's send(message); ServerUnavailable if there is none to have."""
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as error:
            raise ServerUnavailable(describe(error)) from None
        try:
            yield lambda message: self._send(smtp, message)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _connect(self):
        context = ssl.create_default_context()
        if self.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.scheme == "smtp+starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    @staticmethod
    def _send(smtp, message):
        try:
            smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            raise Refused(code, text.decode("utf-8", "replace")) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            raise Refused(error.smtp_code, error.smtp_error.decode("utf-8", "replace")) from None
        except (OSError, smtplib.SMTPException) as error:
            raise ServerUnavailable(describe(error)) from None


class LogTransport:
    """No SMTP_URL: each mail is written to the log, whole in development. In production its body
    is left out: it holds a live single-use link, and no secret may reach a log there."""

    def __init__(self, whole=True):
        self.whole = whole

    def __repr__(self):
        return "the log"

    @contextmanager
    def connection(self):
        yield self._send

    def _send(self, message):
        body = message.get_content().rstrip() if self.whole else "(body withheld in production: it holds a link)"
        log.info(
            "mail (SMTP_URL is not set, so it is only logged)\nTo: %s\nSubject: %s\n\n%s",
            message["To"],
            message["Subject"],
            body,
        )


def describe(error):
    return f"{error.__class__.__name__}: {error}"[:ERROR_LENGTH]


def transport_for(config):
    if config["SMTP_URL"]:
        return SmtpTransport(config["SMTP_URL"], config["SMTP_TIMEOUT_SECONDS"])
    return LogTransport(whole=config["APP_ENV"] != "production")


def build_message(mail, sender_address, secret):
    """The message of an outbox row. Its Message-ID is the row's, so a mail sent again after a
    crash is recognisably the same one."""
    message = EmailMessage()
    message["From"] = sender_address
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(mail.created_at.replace(tzinfo=timezone.utc))
    domain = parseaddr(sender_address)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<outbox.{mail.id}.{int(mail.created_at.timestamp())}@{domain}>"
    body = unseal(mail.body, secret)
    # 7bit when it can be: the link then stands in the raw message as it is, unwrapped.
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message


# -- the sender ----------------------------------------------------------------------


class Sender:
    """This process's mail sender: one daemon thread, started by `start` in each process
    (a thread does not survive a fork: a forked worker starts its own)."""

    def __init__(self, app):
        config = app.config
        self.transport = transport_for(config)
        self.mail_from = config["MAIL_FROM"]
        self.secret = config["SECRET_KEY"]
        self.retry_seconds = config["MAIL_RETRY_SECONDS"]
        with app.app_context():
            self.database_url = db.engine.url  # as Flask-SQLAlchemy resolved it (SQLite paths)
        self.settings = config
        self._pid = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = None
        self._engine = None
        self._server_back_at = 0.0  # monotonic: after a failed connection, no new one before this

    def start(self):
        """Start the thread in this process, once (cheap when it runs already)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._wake, self._stopping = threading.Event(), threading.Event()
            self._engine = None  # a parent's connections are not ours
            self._thread = threading.Thread(target=self._run, name="mail-sender", daemon=True)
            self._thread.start()

    def stop(self, timeout=10):
        """Stop this process's sender: it ends the mail it is sending and leaves the rest of its
        batch due at once, for the next sender (a worker going down, a test's app)."""
        if self._pid != os.getpid() or self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def wake(self):
        """Look at the outbox now (a mail was just committed)."""
        if self._pid == os.getpid():
            self._wake.set()

    # -- the loop ----------------------------------------------------------------

    def _run(self):
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                pause = self.send_due()
            except DBAPIError as error:  # the database is away: an outage, not a bug
                log.warning("mail sender: the database cannot be reached (%s); trying again", error.__class__.__name__)
                pause = self.retry_seconds
            except Exception:
                log.exception("mail sender: unexpected error; trying again")
                pause = self.retry_seconds
            self._wake.wait(pause)

    def engine(self):
        """The sender's own connections: none while idle, so it never takes one of the
        requests' pool, and none is kept by a process that has no mail to send."""
        if self._engine is None:
            self._engine = create_engine(self.database_url, poolclass=NullPool)
            database.configure_connections(self._engine, self.settings)
        return self._engine

    def send_due(self):
        """Send every due mail; the seconds until something may be due again."""
        while not self._stopping.is_set():
            wait = self._server_back_at - time.monotonic()
            if wait > 0:
                return min(wait, IDLE_SECONDS)
            batch = self._claim()
            if not batch:
                return self._seconds_until_due()
            self._deliver(batch)
        return 0

    def _claim(self):
        """Take up to BATCH due mails: their next attempt moves past the lease, in one transaction.

        The lease's end marks the claim: every later write of the sender to a mail requires it,
        so a sender whose lease ran out never undoes what the next one did."""
        now = utcnow()
        due = (OutboxMail.failed_at.is_(None), OutboxMail.next_attempt_at <= now)
        with self.engine().begin() as connection:
            ids = connection.scalars(
                select(OutboxMail.id)
                .where(*due)
                .order_by(OutboxMail.next_attempt_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            if not ids:
                return []
            # Due again here: SQLite has no row locks, and its writers take turns, so a row another
            # sender claimed between the SELECT and this UPDATE is no longer due.
            claimed = connection.execute(
                update(OutboxMail)
                .where(OutboxMail.id.in_(ids), *due)
                .values(next_attempt_at=now + CLAIM_LEASE, attempts=OutboxMail.attempts + 1)
                .returning(*OutboxMail.__table__.columns)
            ).all()
        return sorted(claimed, key=lambda mail: mail.id)

    def _seconds_until_due(self):
        with self.engine().connect() as connection:
            due = connection.scalar(select(func.min(OutboxMail.next_attempt_at)).where(OutboxMail.failed_at.is_(None)))
        if due is None:
            return IDLE_SECONDS
        return min(max((due - utcnow()).total_seconds(), 0.05), IDLE_SECONDS)

    def _deliver(self, batch):
        """Send a claimed batch over one connection; each mail's outcome is written as it comes."""
        stands_in = [mail for mail in batch if mail.recipient is None]
        if stands_in:
            self._write(delete(OutboxMail), stands_in)
        mails = [mail for mail in batch if mail.recipient is not None]
        if not mails:
            return
        deadline = time.monotonic() + CLAIM_LEASE.total_seconds() / 2
        pending = list(mails)
        try:
            with self.transport.connection() as send:
                while pending and time.monotonic() < deadline and not self._stopping.is_set():
                    mail = pending[0]
                    try:
                        send(build_message(mail, self.mail_from, self.secret))
                    except Refused as refusal:
                        self._failed_attempt(mail, str(refusal), final=refusal.permanent)
                    except InvalidToken:  # sealed under another SECRET_KEY: it can never be read
                        self._failed_attempt(mail, "cannot be decrypted: SECRET_KEY changed", final=True)
                    else:
                        self._write(delete(OutboxMail), [mail])
                    pending.pop(0)
        except ServerUnavailable as error:
            self._server_back_at = time.monotonic() + self.retry_seconds
            log.warning("mail: %s is unavailable (%s); %d mail(s) wait", self.transport, error, len(pending))
            for mail in pending:
                self._failed_attempt(mail, str(error))
            return
        if pending:  # half the lease is gone, or the sender stops: the rest is due again at once
            self._write(update(OutboxMail).values(next_attempt_at=utcnow()), pending)

    def _failed_attempt(self, mail, error, final=False):
        now = utcnow()
        retry_at = None if final else next_attempt(mail.queued_at, now, self.retry_seconds)
        values = {"last_error": error[:ERROR_LENGTH]}
        if retry_at is None:
            values["failed_at"] = now
            log.error("mail %d (%s) failed for good: %s", mail.id, mail.kind, error)
        else:
            values["next_attempt_at"] = retry_at
        self._write(update(OutboxMail).values(values), [mail])

    def _write(self, statement, mails):
        """Run an UPDATE or DELETE on claimed `mails`, as long as the claims are still theirs."""
        claimed = [(OutboxMail.id == mail.id) & (OutboxMail.next_attempt_at == mail.next_attempt_at) for mail in mails]
        with self.engine().begin() as connection:
            connection.execute(statement.where(or_(*claimed)))


def init_app(app):
    app.extensions["mail"] = Sender(app)
    if not app.config["SMTP_URL"] and app.config["APP_ENV"] == "production":
        log.warning(
            "SMTP_URL is not set: mails are only written to the log, without their links, and nobody receives them"
        )


def start_sender(wsgi):
    """Start the sender of the WSGI app `wsgi` in this process (a server hook, in each worker)."""
    sender = getattr(wsgi, "extensions", {}).get("mail")
    if sender is not None:  # not an app of ours: one that failed to load, say
        sender.start()


def stop_sender(wsgi):
    """Stop the sender of `wsgi` in this process, leaving what it had not sent to the others."""
    sender = getattr(wsgi, "extensions", {}).get("mail")
    if sender is not None:
        sender.stop()
