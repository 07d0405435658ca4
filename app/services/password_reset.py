"""Password reset: `forgot` mails a link, `reset` spends it."""

from datetime import timedelta

from email_validator import EmailNotValidError
from flask import current_app
from sqlalchemy import select

from app import mail
from app.errors import invalid
from app.extensions import db
from app.models import User
from app.services import mail_tokens
from app.services.accounts import normalize_email, set_password
from app.services.mail_tokens import MAILS_PER_HOUR, RESET
from app.services.verification import mark_verified

SUBJECT = "Reset your password"
BODY = """Hello,

someone (we hope you) asked to reset the password of the account of this address.
Choose a new one by opening this link:

{link}

The link works once, for {minutes} minutes. If you did not ask for it, ignore this mail:
your password stays as it is.
"""


def request_reset(email):
    """Mail a reset link to `email` if it is a local account's address.

    Reveals nothing: the same statements run whether or not the address has an account
    (a token made and hashed, the address's recent mails counted, a token row and an outbox
    row written), so the answer and its time are the same. For an address without an account
    the token row can never be spent and the outbox row is a stand-in the sender drops unsent.
    Past MAILS_PER_HOUR an hour per address, nothing is written, for any address alike.
    """
    try:
        address = normalize_email(email)
    except EmailNotValidError as error:  # not a mailbox: the same 422 as at register
        raise invalid({"email": [str(error)]}) from None
    key = mail_tokens.address_key(address)
    token, token_hash = mail_tokens.new_token()
    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    body = BODY.format(link=mail_tokens.link("PASSWORD_RESET_URL", token), minutes=minutes)
    # External accounts have no address of their own here (users.email is null): never found.
    user_id = db.session.scalar(select(User.id).where(User.email == address))
    if mail_tokens.sent_lately(key, RESET) >= MAILS_PER_HOUR:
        return
    mail_tokens.store(RESET, token_hash, user_id, key, timedelta(minutes=minutes))
    mail.enqueue("password_reset", address if user_id is not None else None, SUBJECT, body)


def reset_password(token, new_password):
    """Spend a reset token and set the password: every token issued before stops working,
    every other reset link too, and the address counts as verified (the mailbox was proven).

    The new password was validated before: a refused one leaves the token unspent. It is hashed
    only once the token proved good, so a flood of made-up tokens costs no bcrypt. Every session
    ends (accounts.set_password, as for a password change).
    """
    user = mail_tokens.spend(RESET, token)
    set_password(user, new_password)
    mark_verified(user)
    return user
