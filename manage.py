"""The command line: `python manage.py --help`."""

from flask.cli import FlaskGroup

from app import create_app
from app.commands import register_commands

cli = FlaskGroup(create_app=lambda: create_app())
register_commands(cli)

if __name__ == "__main__":
    cli()
