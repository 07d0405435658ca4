"""The application factory."""

from functools import partial
from pathlib import Path

from apispec.ext.marshmallow import MarshmallowPlugin
from dotenv import load_dotenv
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import auth, database, errors, fairness, http, mail, metrics, oidc, pagination, replicas, tracing, transactions
from app.api import openapi, register_routes
from app.extensions import api, compress, cors, db, limiter, migrate, schema_name
from app.storage import init_storage
from config import build_config

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


class ApiFlask(Flask):
    request_class = http.ApiRequest
    session_interface = http.NoCookieSessions()

    def make_default_options_response(self):
        """OPTIONS on any route: 204 with `Allow` (Flask-CORS adds its headers), no HTML body."""
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response

    def dispatch_request(self):
        """The view, then the request's one commit (app.transactions), before the answer leaves. A read
        a replica failed runs again on the primary, and a read whose connection died runs once more
        (app.replicas, app.database)."""
        answer = database.retry_read_once(partial(replicas.or_primary, super().dispatch_request))
        transactions.commit_request()
        return answer

    def wsgi_app(self, environ, start_response):
        """The request's fair-admission slot is given back last: after the teardown closed its
        session (so the next request finds the connection back in the pool), and on any outcome."""
        try:
            return super().wsgi_app(environ, start_response)
        finally:
            fairness.leave(environ)


def create_app(config=None, **overrides):
    """Build an app for `config` (an environment name; default $APP_ENV)."""
    load_dotenv()
    app = ApiFlask(__name__, instance_relative_config=True)
    app.config.update(build_config(config, **overrides))
    # Werkzeug answers "//v1//health" (merge_slashes) and "/v1/health/" (strict_slashes) with a 308
    # whose Location it builds from the request's Host header, with an HTML body. No redirects: a
    # trailing slash is served as the rule without it, a doubled slash is an unknown path (404).
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.url_map.converters["id"] = http.IdConverter
    app.json = http.OrjsonProvider(app)
    http.configure_logging(app.config["LOG_LEVEL"], app.config["LOG_FORMAT"])
    if app.config["TRUSTED_PROXIES"]:
        count = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    metrics.meter_pool_options(app.config)
    db.init_app(app)
    database.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS, compare_type=True, render_as_batch=True)

    # The request pipeline: before_request hooks run in the order they are registered, after_request
    # hooks in the reverse order (so those registered here, before the extensions', run last).
    # 0. Traces, only with OTEL_EXPORTER_OTLP_ENDPOINT: the request's span opens before anything runs.
    if tracing.enabled():
        tracing.init_app(app)
    # 1. Metrics: the clock starts before anything else (Flask-Limiter's hook included) and stops
    #    after everything else; the request counts as in progress until its teardown.
    app.before_request(metrics.start_request)
    app.after_request(metrics.observe_request)
    app.teardown_request(metrics.end_request)
    # 2. gzip, once every other hook has set the body and the headers (Flask-Compress).
    compress.init_app(app)
    app.after_request(http.gzip_if_taken)
    # 3. Retry-After only on 429 and 503, after Flask-Limiter's X-RateLimit-* headers (registered
    #    by limiter.init_app), which would put it on every answer of a rate-limited endpoint.
    app.after_request(errors.retry_after_only_on_429_and_503)
    limiter.init_app(app)
    origins = [o.strip() for o in app.config["CORS_ORIGINS"].split(",") if o.strip()]
    cors.init_app(
        app,
        origins=origins or [],
        expose_headers=[
            *("Link", "Location", "X-Request-ID", "Retry-After", "ETag", "Idempotent-Replayed"),
            *("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"),
        ],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID", "If-None-Match", "If-Match", "Idempotency-Key"],
    )
    marshmallow_plugin = MarshmallowPlugin(schema_name_resolver=schema_name)
    api.init_app(app, spec_kwargs={"marshmallow_plugin": marshmallow_plugin, **openapi.spec_kwargs(app)})

    # 4. The request id, which every log line, error and trace of the request carries.
    app.before_request(http.assign_request_id)
    if tracing.enabled():
        app.before_request(tracing.tag_span)
    # 5. The bearer token, checked once; then the fair-admission gate, which keys on its identity.
    app.before_request(auth.verify_bearer)
    fairness.init_app(app, unqueued=(openapi.OPENAPI_ENDPOINT, metrics.METRICS_ENDPOINT))
    replicas.init_app(app)  # after both: an admitted request's reads are routed by its verified identity
    # 6. Headers every answer carries, and what gunicorn's access line needs (route, user id).
    app.after_request(http.add_request_id)
    app.after_request(http.note_for_access_log)
    app.after_request(http.add_standard_headers)
    errors.init_app(app)
    register_routes(app, api)
    metrics.init_app(app)
    pagination.init_app(app)
    init_storage(app)
    oidc.init_app(app)
    mail.init_app(app)
    return app
