"""Traces (OpenTelemetry): one span tree per request, with its SQL statements and its outgoing HTTP
calls under it, exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (docs: "Operating").

Unset, the default, nothing of OpenTelemetry is imported or hooked in: tracing costs nothing.
Set, each app (under gunicorn, each worker: the app is built after the fork) instruments Flask
(the server span, named after the URL rule, joining a caller's `traceparent`), SQLAlchemy (a span
per statement, its SQL with placeholders, never the values), urllib (the OIDC issuer's JWKS
fetches, app/oidc.py) and botocore (the S3 calls of app/storage.py), and sends the spans in
batches. The rest is OpenTelemetry's own settings: OTEL_SERVICE_NAME (default SERVICE_NAME),
OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_BSP_SCHEDULE_DELAY...

The server span carries the request id (`request_id`): X-Request-ID leads to the trace.
"""

import os

from flask import g

from app.extensions import db

SERVICE_NAME = "buckets-api"
REQUEST_ID = "request_id"  # the server span's attribute, named as the log lines' field


def enabled():
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def init_app(app):
    """Instrument `app` and its engine (call before registering any other request hook: the server
    span opens in the before_request hook this registers, and must be open when the others run)."""
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor

    provider = _tracer_provider()
    FlaskInstrumentor.instrument_app(app, tracer_provider=provider, enable_commenter=False)
    with app.app_context():
        # Its declared range stops before SQLAlchemy 2.1, whose engine events it uses are unchanged;
        # tests/test_tracing.py checks the statements' spans.
        SQLAlchemyInstrumentor().instrument(engine=db.engine, tracer_provider=provider, skip_dep_check=True)
    # Process-wide (a second call is a no-op): urllib.request, and every boto3 client.
    URLLibInstrumentor().instrument(tracer_provider=provider)
    BotocoreInstrumentor().instrument(tracer_provider=provider)


def _tracer_provider():
    """The process's provider, made once: spans batched to the OTLP/HTTP endpoint."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return provider


def tag_span():
    """before_request, after the request id is known: it goes on the server span."""
    from opentelemetry import trace

    trace.get_current_span().set_attribute(REQUEST_ID, g.request_id)
