"""manage.py commands: create-user, purge-tokens, seed (plus Flask's db and routes)."""
import click
from flask.cli import with_appcontext
from sqlalchemy import delete, select

from app.errors import APIError
from app.extensions import db
from app.models import RevokedToken, User
from app.models.base import utcnow
from app.permissions import ROLES
from app.schemas.auth import check_password_strength
from app.services import accounts


@click.command("create-user")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", default="user", show_default=True, help=f"One of: {', '.join(ROLES)}")
@with_appcontext
def create_user(email, password, role):
    """Create an account, or update the password and role of an existing one."""
    if role not in ROLES:
        raise click.BadParameter(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", param_hint="--role")
    problem = check_password_strength(password)
    if problem:
        raise click.BadParameter(f"weak password: {problem}", param_hint="--password")
    if "@" not in email or len(email) > 254:
        raise click.BadParameter("not a valid e-mail address", param_hint="EMAIL")
    user = db.session.scalars(select(User).where(User.email == accounts.normalize_email(email))).first()
    if user is None:
        user = accounts.register(email, password, role)
        click.echo(f"Created {user.email} (id {user.id}) with role {user.role}")
        return
    accounts.change_password(user, password)
    try:
        accounts.change_role(user, role)
    except APIError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Updated {user.email} (id {user.id}) with role {user.role}")


@click.command("purge-tokens")
@with_appcontext
def purge_tokens():
    """Delete blacklist rows whose tokens have expired anyway."""
    result = db.session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    db.session.commit()
    click.echo(f"Purged {result.rowcount} expired revoked tokens")


def register_commands(group):
    from app.seed import seed

    for command in (create_user, purge_tokens, seed):
        group.add_command(command)
