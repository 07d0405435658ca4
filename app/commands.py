"""manage.py commands: create-user, purge-tokens, purge-idempotency-keys, seed, sweep-images, mail.

(Flask adds db and routes.) Each command is one unit of work (app.transactions): it commits once
when it returns, and rolls back if it fails.
"""

import click
from flask import current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError
from sqlalchemy import delete, select

from app import mail
from app.errors import APIError
from app.extensions import db
from app.models import RevokedToken, User
from app.models.base import utcnow
from app.permissions import ROLES
from app.schemas.auth import RegisterSchema
from app.services import accounts, idempotency, images, mail_tokens, sessions
from app.transactions import command_transaction


@click.command("create-user")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", default="user", show_default=True, help=f"One of: {', '.join(ROLES)}")
@with_appcontext
@command_transaction
def create_user(email, password, role):
    """Create an account, or update the password and role of an existing one."""
    if role not in ROLES:
        raise click.BadParameter(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", param_hint="--role")
    _check_credentials(email, password)
    user = db.session.scalars(select(User).where(User.email == accounts.normalize_email(email))).first()
    if user is None:
        user = accounts.register(email, password, role, verified=True)  # the operator vouches for it
        click.echo(f"Created {user.email} (id {user.id}) with role {user.role}")
        return
    try:
        accounts.lock_admins()
        accounts.change_role(user, role)  # first: a refused demotion must leave the password alone too
    except APIError as error:
        raise click.ClickException(error.message) from None
    accounts.set_password(user, password)
    click.echo(f"Updated {user.email} (id {user.id}) with role {user.role}")


def _check_credentials(email, password):
    """The same rules as POST /v1/auth/register, with the CLI's words for them."""
    try:
        RegisterSchema().load({"email": email, "password": password})
        accounts.normalize_email(email)
    except ValidationError as error:
        if "password" in error.messages:
            message = " ".join(error.messages["password"])
            raise click.BadParameter(f"weak password: {message}", param_hint="--password") from None
        raise click.BadParameter("not a valid e-mail address", param_hint="EMAIL") from None
    except ValueError as error:
        raise click.BadParameter(f"not a valid e-mail address: {error}", param_hint="EMAIL") from None


@click.command("purge-tokens")
@with_appcontext
@command_transaction
def purge_tokens():
    """Delete blacklist rows whose tokens have expired anyway, and expired sessions."""
    result = db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    expired_sessions = sessions.purge_expired()
    mailed = mail_tokens.purge_expired()
    click.echo(
        f"Purged {result.rowcount} expired revoked tokens, {expired_sessions} expired sessions "
        f"and {mailed} expired mailed tokens"
    )


@click.command("purge-idempotency-keys")
@with_appcontext
@command_transaction
def purge_idempotency_keys():
    """Delete Idempotency-Key rows whose answers have expired (they count as absent anyway)."""
    click.echo(f"Purged {idempotency.purge_expired()} expired idempotency keys")


@click.command("sweep-images")
@with_appcontext
@command_transaction
def sweep_images():
    """Delete stored image bytes that no image refers to (left by a crash mid-upload)."""
    orphans, temp_files = images.sweep_orphans()
    click.echo(f"Removed the bytes of {orphans} unreferenced hashes and {temp_files} stale temp files")


@click.group("mail")
def mail_group():
    """The mail outbox: what waits, what failed, and sending failed mails again."""


def _when(moment):
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@mail_group.command("status")
@click.option("--limit", default=20, show_default=True, help="Mails listed of each kind")
@with_appcontext
def mail_status(limit):
    """Show the mails waiting to be sent and those that failed."""
    rows, totals = mail.waiting_and_failed(limit)
    click.echo(f"Sending through {current_app.extensions['mail'].transport!r}")
    click.echo(f"{totals['waiting']} waiting, {totals['failed']} failed")
    for title, mails, moment in (("Waiting", rows["waiting"], "next attempt"), ("Failed", rows["failed"], "failed")):
        if mails:
            click.echo(f"\n{title} (id, kind, to, queued, {moment}, attempts, last error):")
        for row in mails:
            when = row.next_attempt_at if row.failed_at is None else row.failed_at
            to = row.recipient or "(none: dropped unsent)"
            click.echo(
                f"  {row.id}  {row.kind}  {to}  {_when(row.queued_at)}  {_when(when)}  {row.attempts}  "
                f"{row.last_error or '-'}"
            )


@mail_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every failed mail")
@with_appcontext
@command_transaction
def mail_retry(ids, every):
    """Send failed mails again (by id, or --all): they wait again, for another 24 hours."""
    count = mail.retry_failed(_chosen(ids, every))
    click.echo(f"{count} failed mail(s) wait again; the web processes send them within {mail.IDLE_SECONDS} s")


@mail_group.command("discard")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True, help="Every failed mail")
@with_appcontext
@command_transaction
def mail_discard(ids, every):
    """Delete failed mails (by id, or --all)."""
    count = mail.discard_failed(_chosen(ids, every))
    click.echo(f"Deleted {count} failed mail(s)")


def _chosen(ids, every):
    if bool(ids) == every:
        raise click.UsageError("name the mails by id, or give --all")
    return None if every else list(ids)


def register_commands(group):
    from app.seed import seed

    for command in (create_user, purge_tokens, purge_idempotency_keys, seed, sweep_images, mail_group):
        group.add_command(command)
