"""The one error handler: every exception leaves the API in the same envelope."""

import logging
import time
from itertools import islice

from flask import g, jsonify
from limits.errors import StorageError
from marshmallow import ValidationError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, TooManyRequests

from app import database
from app.extensions import limiter
from app.fields import MAX_ERROR_FIELDS

log = logging.getLogger("app.errors")

DEFAULT_MESSAGES = {
    400: "Bad request",
    401: "Authentication required",
    403: "You do not have permission to perform this action",
    404: "Resource not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request entity too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable: the database cannot be reached",
    507: "Insufficient storage: the image store is full",
}
RATE_LIMIT_STORE_DOWN = "Service unavailable: the rate-limit store cannot be reached"
# A client may retry a 503 this soon: the app reconnects as soon as the service is back.
RETRY_503_SECONDS = 1

# webargs nests validation messages under the request location.
REQUEST_LOCATIONS = {"json", "query", "querystring", "form", "files", "view_args"}


class APIError(Exception):
    """An expected failure with a status, a message and optional field errors."""

    def __init__(self, status, message=None, errors=None, headers=None):
        super().__init__(message or DEFAULT_MESSAGES.get(status, "Error"))
        self.status = status
        self.message = message or DEFAULT_MESSAGES.get(status, "Error")
        self.errors = errors
        self.headers = headers or {}


def unauthorized(message):
    return APIError(401, message, headers={"WWW-Authenticate": "Bearer"})


def not_found():
    return APIError(404)


def conflict(message):
    return APIError(409, message)


def invalid(errors, message=None):
    return APIError(422, message, errors=errors)


def error_response(status, message=None, errors=None, headers=None):
    message = message or DEFAULT_MESSAGES.get(status, "Error")
    if errors and len(errors) > MAX_ERROR_FIELDS:  # a body of many unknown fields is not echoed back
        message = f"{message} ({len(errors) - MAX_ERROR_FIELDS} more fields not listed)"
        errors = dict(islice(errors.items(), MAX_ERROR_FIELDS))
    body = {"success": False, "error": status, "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers.setdefault("WWW-Authenticate", "Bearer")
    if status == 503:
        response.headers.setdefault("Retry-After", str(RETRY_503_SECONDS))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    g.retry_after = next(iter(response.headers.getlist("Retry-After")), None)
    return response


def retry_after_only_on_429_and_503(response):
    """after_request, once Flask-Limiter has added its headers: they put Retry-After (the seconds
    to its window's reset, possibly 0) on every answer of a rate-limited endpoint. The contract
    has it on 429 and 503 only, with the value error_response chose.

    Headers are looked up with getlist: Werkzeug's get, pop and `in` raise (and catch) an
    exception for a header that is absent, which costs more than the rest of this hook."""
    chosen = g.get("retry_after") if response.status_code in (429, 503) else None
    if chosen is not None:
        response.headers["Retry-After"] = chosen
    elif response.headers.getlist("Retry-After"):
        del response.headers["Retry-After"]
    return response


def _flatten_locations(messages):
    if isinstance(messages, dict) and messages and set(messages) <= REQUEST_LOCATIONS:
        merged = {}
        for location_messages in messages.values():
            merged.update(location_messages if isinstance(location_messages, dict) else {"_schema": location_messages})
        return merged
    return messages


def _from_http_exception(exc):
    data = getattr(exc, "data", None) or {}
    errors = _flatten_locations(data.get("messages") or data.get("errors"))
    headers = dict(data.get("headers") or {})
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(_seconds_until_reset())
    status = exc.code or 500
    message = data.get("message") or DEFAULT_MESSAGES.get(status) or exc.description
    if errors and status == 400:
        message = "Invalid query parameters"
    return error_response(status, message, errors, headers)


def _seconds_until_reset():
    limit = limiter.current_limit
    try:
        return max(1, int(limit.reset_at - time.time()) + 1)
    except Exception:  # the store went away after refusing: a window is the honest bound
        return limit.limit.get_expiry()


CONCURRENT_CONFLICT = "The request collided with a concurrent change; nothing was changed, please retry"


def handle_exception(exc):
    # Whatever failed, nothing half-done may be committed by a later request.
    database.rollback()
    if isinstance(exc, InternalServerError) and exc.original_exception is not None:
        exc = exc.original_exception  # raised outside a view (e.g. an after_request hook)
    if isinstance(exc, APIError):
        return error_response(exc.status, exc.message, exc.errors, exc.headers)
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    if isinstance(exc, ValidationError):
        return error_response(422, None, _flatten_locations(exc.messages))
    # A row this request read was deleted meanwhile: found gone when reloaded, or by its UPDATE.
    if isinstance(exc, (ObjectDeletedError, StaleDataError)):
        return error_response(404)
    if database.is_transient_conflict(exc) or database.is_constraint_conflict(exc):
        return error_response(409, CONCURRENT_CONFLICT)
    request_id = g.get("request_id", "-")
    if isinstance(exc, StorageError):
        log.error("rate-limit store unreachable (request %s): %s", request_id, exc.storage_error)
        return error_response(503, RATE_LIMIT_STORE_DOWN)
    if database.is_outage(exc):
        log.error(
            "database unreachable (request %s): %s: %s",
            request_id,
            exc.__class__.__name__,
            str(getattr(exc, "orig", exc)).strip().splitlines()[:1],
        )
        return error_response(503)
    log.exception("unhandled error (request %s)", request_id)
    return error_response(500, f"Internal server error (request id {request_id})")


def init_app(app):
    """Call after api.init_app: the HTTPException handler flask-smorest registered is replaced."""
    app.register_error_handler(Exception, handle_exception)
    app.register_error_handler(HTTPException, handle_exception)
