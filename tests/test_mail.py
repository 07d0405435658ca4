"""The outbox and its sender (app.mail), against a real SMTP server on loopback."""

import logging
import subprocess
import sys
import unittest
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import select, update

from app import mail
from app.commands import mail_group
from app.extensions import db
from app.mail import FAST_RETRIES, GIVE_UP_AFTER, LONGEST_RETRY, next_attempt
from app.models import OutboxMail
from app.models.base import utcnow
from config import ConfigError, build_config
from tests.helpers import PASSWORD, MailTestCase, make_app
from tests.liveserver import ROOT
from tests.smtp_sink import SmtpSink, link_in


class CapturedLog(logging.Handler):
    """The records of the `app` loggers while it is attached (the app sets their levels)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    @property
    def text(self):
        return "\n".join(record.getMessage() for record in self.records)

    def __enter__(self):
        self.logger = logging.getLogger("app.mail")
        self.level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


def outbox():
    db.session.rollback()  # a fresh snapshot: the sender writes on its own connection
    return db.session.scalars(select(OutboxMail).order_by(OutboxMail.id)).all()


def write_mail(address, body="Hello\n\nhttp://app.test/x?token=abc\n", commit=True):
    mail.enqueue("test", address, "A test", body)
    if commit:
        db.session.commit()


class DeliveryTests(MailTestCase):
    def test_a_committed_mail_arrives_with_its_link_in_a_plain_text_body(self):
        address = self.new_address()
        write_mail(address)
        message = self.mails_to(address)[0]
        self.assertEqual(message.get_content_type(), "text/plain")
        self.assertEqual(link_in(message), "http://app.test/x?token=abc")
        self.assertEqual(message["From"], "no-reply@localhost")
        self.assertEqual(message["Subject"], "A test")
        self.assertTrue(message["Message-ID"].startswith("<outbox."))
        self.wait_until(lambda: outbox() == [])  # a mail the server took leaves the outbox

    def test_a_rolled_back_mail_is_never_sent(self):
        gone, kept = self.new_address(), self.new_address()
        write_mail(gone, commit=False)
        db.session.rollback()
        write_mail(kept)
        self.mails_to(kept)
        self.wait_until(lambda: outbox() == [])
        self.assertEqual(self.sink.to(gone), [])

    def test_registering_mails_a_verification_link_and_a_failed_request_mails_nothing(self):
        address = self.new_address()
        self.register(address)
        again = self.client.post("/v1/auth/register", json={"email": address.upper(), "password": PASSWORD})
        self.assertError(again, 409)
        message = self.mails_to(address)[0]
        self.assertIn("/verify-email?token=", link_in(message))
        self.assertEqual(len(self.sink.to(address)), 1, "the refused registration sent nothing")

    def test_the_outbox_keeps_bodies_encrypted(self):
        address = self.new_address()
        self.sink.stop()  # so that the mail stays in the outbox
        try:
            write_mail(address, body="the link http://app.test/?token=SECRET-TOKEN-123\n")
            (row,) = outbox()
            self.assertNotIn("SECRET-TOKEN-123", row.body)
            self.assertIn("SECRET-TOKEN-123", mail.unseal(row.body, self.app.config["SECRET_KEY"]))
        finally:
            self.sink.start()
        self.assertIn("SECRET-TOKEN-123", link_in(self.mails_to(address, timeout=30)[0]))

    def test_a_stand_in_is_dropped_unsent(self):
        address = self.new_address()
        before = len(self.sink.messages)
        mail.enqueue("password_reset", None, "A stand-in", "nothing")
        write_mail(address)
        self.mails_to(address)
        self.wait_until(lambda: outbox() == [])
        self.assertEqual(len(self.sink.messages), before + 1)

    def test_count_waiting_counts_what_waits_and_not_what_failed(self):
        self.sink.stop()
        try:
            write_mail(self.new_address())
            write_mail(self.new_address())
            db.session.execute(update(OutboxMail).where(OutboxMail.id == outbox()[0].id).values(failed_at=utcnow()))
            db.session.commit()
            self.assertEqual(mail.count_waiting(), 1)
        finally:
            self.sink.start()


class RefusalTests(MailTestCase):
    def test_a_permanent_refusal_fails_at_once_and_retry_sends_it_again(self):
        address = self.new_address()
        self.sink.refuse[address] = "550 5.1.1 No such mailbox"
        write_mail(address)
        row = self.wait_for_failure()
        self.assertIn("550", row.last_error)
        self.assertEqual(self.sink.to(address), [])

        del self.sink.refuse[address]
        self.assertEqual(mail.retry_failed([row.id]), 1)
        db.session.commit()
        self.app.extensions["mail"].wake()  # `manage.py mail retry` is picked up by the next look
        self.mails_to(address)
        self.wait_until(lambda: outbox() == [])

    def test_a_temporary_refusal_is_tried_again(self):
        address = self.new_address()
        self.sink.refuse[address] = "450 4.2.1 Mailbox busy, try later"
        write_mail(address)
        self.wait_until(lambda: outbox() and outbox()[0].attempts >= 2)
        self.assertIsNone(outbox()[0].failed_at)
        del self.sink.refuse[address]
        self.mails_to(address)

    def test_a_mail_still_refused_after_24_hours_is_marked_failed(self):
        self.sink.stop()
        try:
            address = self.new_address()
            write_mail(address)
            self.wait_until(lambda: outbox()[0].attempts >= 1)
            long_ago = utcnow() - GIVE_UP_AFTER - timedelta(minutes=1)
            db.session.execute(update(OutboxMail).values(queued_at=long_ago, next_attempt_at=utcnow()))
            db.session.commit()
            self.app.extensions["mail"].wake()
            row = self.wait_for_failure()
            self.assertIn("ConnectionRefusedError", row.last_error)
        finally:
            self.sink.start()

    def wait_for_failure(self):
        self.wait_until(lambda: outbox() and outbox()[0].failed_at is not None)
        return outbox()[0]


class LoginTests(MailTestCase):
    """SMTP_URL with credentials: the sender logs in; a wrong password never reaches a log."""

    def test_the_sender_logs_in_and_a_refused_login_keeps_the_password_out_of_the_log(self):
        login_sink = SmtpSink(login=("mailer", "s3cret-pass")).start()
        self.addCleanup(login_sink.stop)
        bad_url = f"smtp://mailer:wrong-pass-xyz@127.0.0.1:{login_sink.port}"
        bad = mail.SmtpTransport(bad_url, timeout=5)
        with CapturedLog() as captured, self.assertRaises(mail.ServerUnavailable) as refused:
            with bad.connection():
                pass
        self.assertNotIn("wrong-pass-xyz", str(refused.exception) + captured.text + repr(bad))
        self.assertIn("535", str(refused.exception))

        good = mail.SmtpTransport(login_sink.url, timeout=5)
        message = mail.EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.com", "b@example.com", "hi"
        message.set_content("hello")
        with good.connection() as send:
            send(message)
        self.assertEqual(len(login_sink.wait_for(1)), 1)


class ScheduleTests(unittest.TestCase):
    def test_every_retry_seconds_for_ten_minutes_then_backing_off_until_24_hours(self):
        queued = utcnow()
        self.assertEqual(
            next_attempt(queued, queued + timedelta(minutes=9), 30), queued + timedelta(minutes=9, seconds=30)
        )
        later = queued + FAST_RETRIES + timedelta(minutes=50)  # one hour old: every six minutes
        self.assertEqual(next_attempt(queued, later, 30), later + timedelta(minutes=6))
        old = queued + timedelta(hours=20)
        self.assertEqual(next_attempt(queued, old, 30), old + LONGEST_RETRY)
        self.assertIsNone(next_attempt(queued, queued + GIVE_UP_AFTER, 30))


class LogTransportTests(unittest.TestCase):
    def test_without_smtp_url_mails_go_to_the_log(self):
        app = make_app()
        with app.app_context(), CapturedLog() as captured:
            message = mail.build_message(
                OutboxMail(
                    id=1,
                    recipient="x@example.com",
                    subject="S",
                    body=mail.seal("link: http://l/?token=t", "k"),
                    created_at=utcnow(),
                ),
                "no-reply@localhost",
                "k",
            )
            with mail.LogTransport().connection() as send:
                send(message)
        self.assertIn("To: x@example.com", captured.text)
        self.assertIn("http://l/?token=t", captured.text)

    def test_in_production_the_log_never_holds_the_link(self):
        transport = mail.transport_for({"SMTP_URL": None, "APP_ENV": "production"})
        message = EmailMessage()
        message["To"], message["Subject"] = "x@example.com", "Reset your password"
        message.set_content("link: http://l/?token=secret-token")
        with CapturedLog() as captured, transport.connection() as send:
            send(message)
        self.assertIn("To: x@example.com", captured.text)
        self.assertNotIn("secret-token", captured.text)


class SettingsTests(unittest.TestCase):
    def test_a_malformed_smtp_url_is_refused_at_start_without_echoing_it(self):
        for url in ("http://mail.example.com", "smtp://", "smtp://user:pw-123@host:port"):
            with self.subTest(url=url), self.assertRaises(ConfigError) as refused:
                build_config("testing", SMTP_URL=url)
            self.assertNotIn("pw-123", str(refused.exception))

    def test_link_templates_need_the_token_placeholder(self):
        with self.assertRaises(ConfigError):
            build_config("testing", PASSWORD_RESET_URL="https://app.example.com/reset")

    def test_each_scheme_has_its_port(self):
        for url, port in (
            ("smtp://h", 25),
            ("smtp+starttls://u:p@h", 587),
            ("smtps://u:p@h", 465),
            ("smtp://h:2525", 2525),
        ):
            with self.subTest(url=url):
                self.assertEqual(mail.SmtpTransport(url, 1).port, port)

    def test_production_without_smtp_url_starts_and_warns_that_mails_are_only_logged(self):
        env = {"APP_ENV": "production", "SECRET_KEY": "x" * 48, "DATABASE_URL": "sqlite:///:memory:", "SMTP_URL": ""}
        code = "from app import create_app; create_app()"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env={**env, "PATH": "/usr/bin"}, capture_output=True, text=True
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("SMTP_URL is not set: mails are only written to the log", result.stderr)


class CommandTests(MailTestCase):
    def test_mail_status_shows_what_waits_and_what_failed_and_retry_and_discard_act_on_failed_mails(self):
        self.sink.stop()
        try:
            waiting, failed = self.new_address(), self.new_address()
            write_mail(waiting)
            write_mail(failed)
            failed_id = outbox()[1].id
            db.session.execute(update(OutboxMail).where(OutboxMail.id == failed_id).values(failed_at=utcnow()))
            db.session.commit()
            runner = self.app.test_cli_runner()
            status = runner.invoke(mail_group, ["status"])
            self.assertEqual(status.exit_code, 0, status.output)
            self.assertIn("1 waiting, 1 failed", status.output)
            self.assertIn(waiting, status.output)
            self.assertIn(failed, status.output)
            self.assertIn(f"smtp://127.0.0.1:{self.sink.port}", status.output)

            self.assertNotEqual(runner.invoke(mail_group, ["retry"]).exit_code, 0, "ids or --all")
            retried = runner.invoke(mail_group, ["retry", str(failed_id)])
            self.assertIn("1 failed mail(s) wait again", retried.output)
            self.assertEqual(mail.count_waiting(), 2)
            db.session.execute(update(OutboxMail).where(OutboxMail.id == failed_id).values(failed_at=utcnow()))
            db.session.commit()
            discarded = runner.invoke(mail_group, ["discard", "--all"])
            self.assertIn("Deleted 1 failed mail(s)", discarded.output)
            self.assertEqual([row.recipient for row in outbox()], [waiting])
        finally:
            self.sink.start()
        self.mails_to(waiting, timeout=30)
