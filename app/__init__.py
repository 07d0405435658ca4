"""The application factory."""

from pathlib import Path

from apispec.ext.marshmallow import MarshmallowPlugin
from dotenv import load_dotenv

from app import database, http, mail, metrics, oidc, pagination, pipeline
from app.api import openapi, register_routes
from app.extensions import api, db, migrate, schema_name
from app.storage import init_storage
from config import build_config

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def create_app(config=None, **overrides):
    """Build an app for `config` (an environment name; default $APP_ENV)."""
    load_dotenv()
    app = pipeline.ApiFlask(__name__, instance_relative_config=True)
    app.config.update(build_config(config, **overrides))
    # Werkzeug answers "//v1//health" (merge_slashes) and "/v1/health/" (strict_slashes) with a 308
    # whose Location it builds from the request's Host header, with an HTML body. No redirects: a
    # trailing slash is served as the rule without it, a doubled slash is an unknown path (404).
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    # Ids in paths are `<int:...>`, the rule the metrics, logs and traces name (the contract's
    # `/v1/buckets/<int:bucket_id>`), read by IdConverter; `<id:...>` is the same converter.
    app.url_map.converters["int"] = app.url_map.converters["id"] = http.IdConverter
    app.json = http.OrjsonProvider(app)
    http.configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])

    metrics.meter_pool_options(app.config)
    db.init_app(app)
    database.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, compare_type=True, render_as_batch=True)
    marshmallow_plugin = MarshmallowPlugin(schema_name_resolver=schema_name)
    api.init_app(app, spec_kwargs={"marshmallow_plugin": marshmallow_plugin, **openapi.spec_kwargs(app)})
    # Every hook a request passes through, in order (app.pipeline). The OpenAPI document (served
    # from memory) and a metrics scrape (which must see a saturated server) never queue for a slot.
    pipeline.install(app, unqueued=(openapi.OPENAPI_ENDPOINT, metrics.METRICS_ENDPOINT))
    register_routes(app, api)
    metrics.init_app(app)
    pagination.init_app(app)
    init_storage(app)
    oidc.init_app(app)
    mail.init_app(app)
    return app
