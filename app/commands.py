"""manage.py commands: create-user, purge-tokens, purge-idempotency-keys, seed, sweep-images.

(Flask adds db and routes.) Each command is one unit of work (app.transactions): it commits once
when it returns, and rolls back if it fails.
"""

import click
from flask.cli import with_appcontext
from marshmallow import ValidationError
from sqlalchemy import delete, select

from app.errors import APIError
from app.extensions import db
from app.models import RevokedToken, User
from app.models.base import utcnow
from app.permissions import ROLES
from app.schemas.auth import RegisterSchema
from app.services import accounts, idempotency, images, sessions
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
        user = accounts.register(email, password, role)
        click.echo(f"Created {user.email} (id {user.id}) with role {user.role}")
        return
    try:
        accounts.change_role(user, role)  # first: a refused demotion must leave the password alone too
    except APIError as error:
        raise click.ClickException(error.message) from None
    accounts.set_password(user, password)
    click.echo(f"Updated {user.email} (id {user.id}) with role {user.role}")


def _check_credentials(email, password):
    """The same rules as POST /v1/auth/register, with the CLI's words for them."""
    try:
        RegisterSchema().load({"email": email, "password": password})
    except ValidationError as error:
        if "password" in error.messages:
            message = " ".join(error.messages["password"])
            raise click.BadParameter(f"weak password: {message}", param_hint="--password") from None
        raise click.BadParameter("not a valid e-mail address", param_hint="EMAIL") from None


@click.command("purge-tokens")
@with_appcontext
@command_transaction
def purge_tokens():
    """Delete blacklist rows whose tokens have expired anyway, and expired sessions."""
    result = db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    expired_sessions = sessions.purge_expired()
    click.echo(f"Purged {result.rowcount} expired revoked tokens and {expired_sessions} expired sessions")


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


def register_commands(group):
    from app.seed import seed

    for command in (create_user, purge_tokens, purge_idempotency_keys, seed, sweep_images):
        group.add_command(command)
