"""E-mail verification: the mail sent at registration (and on request), and its link."""

from datetime import timedelta

from flask import current_app

from app import mail
from app.errors import conflict
from app.models.base import utcnow
from app.services import mail_tokens
from app.services.mail_tokens import MAILS_PER_HOUR, VERIFY

ALREADY_VERIFIED = "E-mail already verified"
EXTERNAL_ADDRESS = "This account's address belongs to the external identity provider: verify it there"
SUBJECT = "Verify your e-mail address"
BODY = """Hello,

please confirm that this is your address by opening this link:

{link}

The link works once, for {hours} hours. If you did not create an account, ignore this mail.
"""


def request_verification(user):
    """Mail `user` a verification link (flushed with the request's other work).

    409 if there is nothing to verify. Past MAILS_PER_HOUR mails an hour, nothing is sent
    and nothing is said: the answer stays the same.
    """
    if user.is_external:
        raise conflict(EXTERNAL_ADDRESS)
    if user.email_verified:
        raise conflict(ALREADY_VERIFIED)
    send_verification(user)


def send_verification(user):
    key = mail_tokens.address_key(user.email)
    if mail_tokens.sent_lately(key, VERIFY) >= MAILS_PER_HOUR:
        return
    hours = current_app.config["EMAIL_VERIFY_HOURS"]
    token, token_hash = mail_tokens.new_token()
    mail_tokens.store(VERIFY, token_hash, user.id, key, timedelta(hours=hours))
    body = BODY.format(link=mail_tokens.link("EMAIL_VERIFY_URL", token), hours=hours)
    mail.enqueue("verify_email", user.email, SUBJECT, body)


def verify_email(token):
    """The user whose verification `token` this is, now verified; 400 for a bad token."""
    user = mail_tokens.spend(VERIFY, token)
    mark_verified(user)
    return user


def mark_verified(user):
    """The address is proven: verified, and its other verification links are spent."""
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    mail_tokens.void(user.id, VERIFY)
