"""Extension objects, created once here and bound to an app in the factory."""

import sqlite3

import flask_smorest
from flask import g, has_app_context
from flask_compress import Compress
from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import MetaData, UpdateBase, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from app.fields import ErrorSchema

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Api(flask_smorest.Api):
    """flask-smorest, documenting errors in the app's envelope (app.errors answers them)."""

    ERROR_SCHEMA = ErrorSchema


def schema_name(schema):
    """OpenAPI component names; a partial (PATCH) schema gets its own."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema")
    if not isinstance(schema, type) and schema.partial:
        name += "Patch"
    return name


class Session(FlaskSession):
    """Flask-SQLAlchemy's session, whose reads may go to a read replica."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        """A read of a request routed to a replica (`g.read_replica`, app.replicas) runs there.

        SQLAlchemy's routing session (its "custom vertical partitioning" example): a flush or an
        INSERT / UPDATE / DELETE goes to the primary, and from then on the whole request does, so
        that a read inside a write sees what it wrote.
        """
        replica = g.get("read_replica") if bind is None and has_app_context() else None
        if replica is not None:
            if not self._flushing and not isinstance(clause, UpdateBase):
                return replica.engine
            g.read_replica = None
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)


db = SQLAlchemy(model_class=Base, session_options={"class_": Session})
migrate = Migrate()
# Behind a proxy, ProxyFix (TRUSTED_PROXIES) has already put the client in remote_addr.
limiter = Limiter(key_func=get_remote_address)
api = Api()
cors = CORS()
compress = Compress()


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, _record):
    """SQLite needs foreign keys switched on, and a Unicode-aware lower().

    The built-in lower() folds ASCII only, so case-insensitive search and the
    unique lower(name) indexes would treat "É" and "é" as different.
    """
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.create_function("lower", 1, lambda s: s.lower() if isinstance(s, str) else s, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
