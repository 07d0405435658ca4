"""The request pipeline in one place: every step a request passes through, registered here in order.

Flask runs before_request hooks in the order they are registered, after_request hooks and
teardowns in the reverse order; an extension registers its hooks when its init_app is called.
So `install` registers (and inits) them in one sequence, and the steps below are numbered in the
order a request meets them. A blueprint's own after_request hooks (auth's no_store, the docs
page's Content-Security-Policy) run before the app's.

Around the app (WSGI), from the outside in:
  1. Traces (only with OTEL_EXPORTER_OTLP_ENDPOINT): OpenTelemetry's middleware opens the span.
  2. ProxyFix (TRUSTED_PROXIES): the client's address and scheme as the trusted proxies saw them.
  3. The fair-admission slot is given back (fairness.releasing), once Flask is done with the
     request, its teardown included, whatever the outcome.
  4. ApiFlask.request_class, session_interface: a body is capped by its type before anything
     reads it (app.http.ApiRequest); no cookie session is built.
Before the view, in this order:
  5. Traces: OpenTelemetry's hook.
  6. When the request arrived (PostgreSQL): a request that waited while the database was found
     silent answers 503 at once (app.database.Silence).
  7. Metrics: the clock starts; the request counts as in progress.
  8. Flask-Limiter's check (its app-wide limits; a route's own limits run in its decorators).
  9. The request id, which every log line, error and trace of the request carries; on the span.
 10. The bearer token, checked once (app.auth.verify_bearer).
 11. Fair admission (FAIR_SLOTS): the body received whole, then a slot, keyed on the token's
     identity (app.fairness.admit).
 12. Read replicas (DATABASE_REPLICA_URLS): where an admitted GET's reads go, by its verified
     identity (app.replicas.route_reads).
The view (ApiFlask.dispatch_request):
 13. The view; a read a replica failed runs again on the primary (app.replicas.or_primary), a
     view whose connection had died runs once more on a new one where that is safe
     (app.database.retry_read_once); then a write's one commit (app.transactions).
After the view, in this order:
 14. Headers every answer carries (X-Content-Type-Options, Cache-Control on authenticated JSON).
 15. What gunicorn's access line needs (route, user id).
 16. X-Request-ID.
 17. Read replicas: a committed write's position kept for its caller (app.replicas.note_writes).
 18. Flask-CORS's headers.
 19. Flask-Limiter's X-RateLimit-* headers.
 20. Retry-After only on 429 and 503 (Flask-Limiter's would be on every answer of a limited route).
 21. gzip, once the body and headers are final, for a client that takes it (Flask-Compress).
 22. Metrics: the duration, by method, route and status.
A failure anywhere: the one error handler (app.errors), which rolls the request back once and
answers in the envelope; the after_request steps still run on its answer.
Teardown, in this order:
 23. Read replicas: the request's route forgotten; Flask-Limiter's context released; metrics: the
     request no longer in progress.
 24. The request's session closed, a dead connection dropped (app.database.end_session); then
     Flask-SQLAlchemy's removal of the scoped session.

What the database layer does on its own events (not request hooks) is in app/database.py (reads in
autocommit, per-connection settings, bounded waits) and app/mail.py (its sender woken after a commit).
"""

from functools import partial

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import auth, database, errors, fairness, http, metrics, replicas, tracing, transactions
from app.extensions import compress, cors, limiter

EXPOSED_HEADERS = [
    *("Link", "Location", "X-Request-ID", "Retry-After", "ETag", "Idempotent-Replayed"),
    *("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"),
]
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", "If-None-Match", "If-Match", "Idempotency-Key"]


class ApiFlask(Flask):
    request_class = http.ApiRequest  # 4
    session_interface = http.NoCookieSessions()  # 4

    def ensure_sync(self, func):
        """Every view and hook here is synchronous: Flask's check for a coroutine on each call of
        each hook is skipped (its documented override point; 2 % of a single GET's instructions)."""
        return func

    def make_default_options_response(self):
        """OPTIONS on any route: 204 with `Allow` (Flask-CORS adds its headers), no HTML body."""
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response

    def dispatch_request(self):
        """Step 13: the view (run again on the primary if its replica failed, once more if its
        connection had died and that is safe), then the request's one commit, before the answer
        leaves: a failed commit is answered by the error handler like any failure (Flask's
        after_request hooks run too late for that)."""
        answer = database.retry_read_once(partial(replicas.or_primary, super().dispatch_request))
        transactions.commit_request()
        return answer


def install(app, *, unqueued=()):
    """Register every step of the pipeline on `app`, in order; `unqueued` endpoints never wait for
    a fair-admission slot (they must answer when the server is saturated)."""
    # Steps 1 and 2 wrap step 3, so it is applied first: the innermost wrapper.
    app.wsgi_app = fairness.releasing(app.wsgi_app)  # 3
    if app.config["TRUSTED_PROXIES"]:
        count = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # 2
    if tracing.enabled():
        tracing.init_app(app)  # 1 and 5
    if database.is_postgresql(app):
        app.before_request(database.note_arrival)  # 6
    # Metrics come first of the app's hooks: their clock starts before, and stops after, the rest.
    app.before_request(metrics.start_request)  # 7
    app.after_request(metrics.observe_request)  # 22
    app.teardown_request(metrics.end_request)  # 23
    compress.init_app(app)
    app.after_request(http.gzip_if_taken)  # 21
    app.after_request(errors.retry_after_only_on_429_and_503)  # 20: registered before the limiter's headers
    limiter.init_app(app)  # 8, 19 and 23
    origins = [o.strip() for o in app.config["CORS_ORIGINS"].split(",") if o.strip()]
    cors.init_app(app, origins=origins or [], expose_headers=EXPOSED_HEADERS, allow_headers=ALLOWED_HEADERS)  # 18
    app.before_request(http.assign_request_id)  # 9
    if tracing.enabled():
        app.before_request(tracing.tag_span)  # 9
    app.before_request(auth.verify_bearer)  # 10
    if fairness.init_app(app, unqueued=unqueued):
        app.before_request(fairness.admit)  # 11: after verify_bearer, whose identity it keys on
    if replicas.init_app(app):
        app.before_request(replicas.route_reads)  # 12: after both, by the admitted request's identity
        app.after_request(replicas.note_writes)  # 17
        app.teardown_request(replicas.forget_route)  # 23
    app.after_request(http.add_request_id)  # 16
    app.after_request(http.note_for_access_log)  # 15
    app.after_request(http.add_standard_headers)  # 14
    errors.init_app(app)  # after flask-smorest's own HTTPException handler, which it replaces
    app.teardown_appcontext(database.end_session)  # 24: after Flask-SQLAlchemy's, so it runs first
