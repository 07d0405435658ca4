"""The command line: `python manage.py --help`."""

from flask.cli import FlaskGroup

from app import create_app
from app.commands import register_commands

# Commands (migrations, seeding a million rows) run as long as they need: the statement
# timeout guards the web workers, not the operator.
cli = FlaskGroup(create_app=lambda: create_app(DB_STATEMENT_TIMEOUT_MS=0))
register_commands(cli)

if __name__ == "__main__":
    cli()
