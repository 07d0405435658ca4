"""Request plumbing shared by every endpoint: request ids, logs, JSON bodies."""

import json
import logging
import re
import tempfile
import uuid
from functools import wraps

import orjson
from flask import Request, current_app, g, request
from flask.json.provider import JSONProvider
from flask.sessions import SecureCookieSessionInterface
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter, ValidationError

import logs
from app.errors import APIError
from app.extensions import compress
from app.fields import MAX_ID

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_KEY_SHOWN = 100  # a duplicate key is named in the 400, cut to this many characters


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson: same output, a fraction of the time."""

    def dumps(self, obj, **kwargs):
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)


class RequestIdFilter(logging.Filter):
    """Gives each line the id of the request it belongs to (`outside` when none)."""

    def __init__(self, outside):
        super().__init__()
        self.outside = outside

    def filter(self, record):
        try:
            record.request_id = g.get("request_id", self.outside)
        except RuntimeError:  # outside a request
            record.request_id = self.outside
        return True


class OneLineErrors(logging.Filter):
    """A rate-limit store outage is an expected event: one line per error, no traceback."""

    def filter(self, record):
        if record.exc_info:
            record.msg, record.args = f"{record.getMessage()}: {record.exc_info[1]}", ()
            record.exc_info = record.exc_text = None
        return True


class BodyCutShort(Exception):
    """Raised out of a streamed answer's body to have the server break the connection off: the status
    and headers are long sent, and only an incomplete transfer tells the client that the body is not whole."""


class CutShortInOneLine(logging.Filter):
    """The WSGI server logs the body it could not finish with a traceback; for a BodyCutShort (an
    expected event, already logged by the app with its cause) one line is enough."""

    def filter(self, record):
        if record.exc_info and isinstance(record.exc_info[1], BodyCutShort):
            record.msg, record.args = f"{record.getMessage()}: the body was cut short", ()
            record.exc_info = record.exc_text = None
        return True


def configure_logging(level, log_format):
    """The app's lines in LOG_FORMAT (logs.py), each with the request id of the request it
    belongs to. Libraries' warnings (the root logger: OpenTelemetry, botocore...) too."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter(None if log_format == "json" else "-"))
    handler.setFormatter(logs.formatter(log_format))
    # Flask-Limiter logs its store going away and coming back: that belongs in our log too.
    for name in ("app", "flask-limiter"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("flask-limiter").filters[:] = [OneLineErrors()]
    gunicorn = logging.getLogger("gunicorn.error")
    gunicorn.filters[:] = [f for f in gunicorn.filters if not isinstance(f, CutShortInOneLine)] + [CutShortInOneLine()]
    logging.getLogger().handlers[:] = [handler]
    logging.captureWarnings(True)  # Python's warnings as log lines too, not bare text among JSON lines


def assign_request_id():
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
    request.environ[logs.REQUEST_ID] = g.request_id


def note_for_access_log(response):
    """after_request: the route (the URL rule, never the raw path) for gunicorn's access line
    (logs.GunicornLogger); app.auth.authenticate notes the user's id."""
    if request.url_rule is not None:
        request.environ[logs.ROUTE] = request.url_rule.rule
    return response


def add_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id", "-")
    return response


def add_standard_headers(response):
    """Headers every answer carries (the contract's "Headers every client can rely on")."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Authenticated JSON: no shared cache keeps it, a client cache revalidates it (ETags make that cheap).
    # A 304 has no body but must say what the 200 would have said.
    if "Authorization" in request.headers and (response.mimetype == "application/json" or response.status_code == 304):
        response.headers.setdefault("Cache-Control", "private, no-cache")
    return response


def gzip_if_taken(response):
    """after_request: Flask-Compress's gzip, for a client that takes it (app.extensions.compress).

    Flask-Compress's hook costs about 0.1 M CPU instructions per answer even when it compresses
    nothing (bench/instructions.py), so it runs only for a request that names gzip in
    Accept-Encoding; every other answer gets only what it would have added: Vary. Flask-Compress
    compresses 2xx answers only: an error is JSON like any other, so it is compressed as a 200 would be."""
    if takes_gzip(request.environ.get("HTTP_ACCEPT_ENCODING", "")):
        status = response.status_code
        if status < 400:
            return compress.after_request(response)
        response.status_code = 200
        response = compress.after_request(response)
        response.status_code = status
        return response
    # getlist: Werkzeug's get raises (and catches) an exception for an absent header, at a cost.
    response.headers["Vary"] = ", ".join([*response.headers.getlist("Vary"), "Accept-Encoding"])
    return response


def takes_gzip(accept_encoding):
    """Whether an Accept-Encoding value takes gzip (RFC 9110, 12.5.3): named with a weight above 0, or
    not named while `*` is; codings are case-insensitive. Flask-Compress would gzip for `gzip;q=0`."""
    star = False
    for coding in accept_encoding.lower().split(","):
        name, _, parameters = coding.partition(";")
        name = name.strip()
        if name == "gzip":
            return _weight(parameters) > 0
        if name == "*":
            star = _weight(parameters) > 0
    return star


def _weight(parameters):
    """The `q` of a coding's parameters (1 when absent or unreadable, as Flask-Compress reads it)."""
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 1.0
    return 1.0


def no_store(response):
    """For answers that carry tokens or the account itself: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"
    return response


def is_json_content_type(mimetype):
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


class NoCookieSessions(SecureCookieSessionInterface):
    """Bearer tokens only: no request reads or sets a cookie session, so none is
    built (Flask would make a signing serializer for every request)."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response):
        pass


class ApiRequest(Request):
    """Bodies are capped before anything reads them: uploads (multipart) at
    MAX_UPLOAD_BYTES, everything else at MAX_JSON_BYTES (see read_json_object), unless a
    limit was set on the request (`request.max_content_length = n`, Flask's public setter)."""

    _body_limit = None  # the limit set on this request, if any

    @property
    def max_content_length(self):
        if self._body_limit is not None:
            return self._body_limit
        config = current_app.config
        return config["MAX_CONTENT_LENGTH"] if self.mimetype == "multipart/form-data" else config["MAX_JSON_BYTES"]

    @max_content_length.setter
    def max_content_length(self, value):
        self._body_limit = value

    def close(self):
        super().close()
        received = self.environ.pop(RECEIVED_BODY, None)
        if received is not None:
            received.close()


RECEIVED_BODY = "app.received_body"  # the WSGI environ key of the local copy (closed with the request)
# A received body up to this size waits in memory, a larger one (an upload) in a temporary file.
BODY_IN_MEMORY_BYTES = 1024 * 1024
_RECEIVE_CHUNK = 64 * 1024


def receive_body():
    """Read the request's whole body from the client now, and serve it from a local copy.

    Called before the request takes a fair-admission slot (app.fairness.admit): a client that
    sends its body slowly then waits on its own connection, not in the slot of everyone behind
    it. The size limits hold as before: a Content-Length over the request's limit is left
    unread (the reader answers 413 from it), and a chunked body is read one byte past the
    limit at most (the reader sees the excess and answers 413).
    """
    environ = request.environ
    if "CONTENT_LENGTH" not in environ and "HTTP_TRANSFER_ENCODING" not in environ:
        return  # no body (most GETs): skip the parsing below
    length, limit = request.content_length, request.max_content_length
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if (not length and not chunked) or (length is not None and limit is not None and length > limit):
        return
    wanted = length if length is not None else (limit + 1 if limit is not None else None)
    source, copy = environ["wsgi.input"], tempfile.SpooledTemporaryFile(max_size=BODY_IN_MEMORY_BYTES)
    received = 0
    while wanted is None or received < wanted:
        chunk = source.read(_RECEIVE_CHUNK if wanted is None else min(_RECEIVE_CHUNK, wanted - received))
        if not chunk:
            break  # the body ended (chunked) or the client left: the reader judges what it got
        copy.write(chunk)
        received += len(chunk)
    copy.seek(0)
    environ["wsgi.input"] = environ[RECEIVED_BODY] = copy


def read_json_bytes(max_bytes):
    """The raw body of a JSON request (kept for later reads), or 413 if it is over `max_bytes`."""
    # Werkzeug refuses a larger Content-Length unread, and stops a chunked body at the
    # cap without an error: one byte past the limit is how an over-long stream shows.
    request.max_content_length = max_bytes + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raw = None
    if raw is None or len(raw) > max_bytes:
        raise APIError(413, f"JSON body is larger than {max_bytes} bytes")
    return raw


def read_json_object(max_bytes):
    """The request body as a dict, or an APIError saying exactly what is wrong.

    An empty body reads as `{}` so that missing fields are reported per field.
    """
    raw = read_json_bytes(max_bytes)
    if not raw.strip():
        return {}
    if not is_json_content_type(request.mimetype):
        raise APIError(415, "Content-Type must be application/json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise APIError(400, "Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise APIError(400, "Request body must be a JSON object")
    # The API's bodies are one flat object: a single "{" in the text means no nested object to count.
    keys = len(data) if raw.count(b"{") == 1 else _key_count(data)
    if keys != raw.count(b":"):
        _refuse_duplicate_keys(raw)
    return data


def _key_count(value):
    """How many keys the objects in `value` hold, nested ones included."""
    if isinstance(value, dict):
        return len(value) + sum(_key_count(v) for v in value.values() if isinstance(v, (dict, list)))
    return sum(_key_count(v) for v in value if isinstance(v, (dict, list)))


def _refuse_duplicate_keys(raw):
    """A 400 naming the first key an object of `raw` holds twice, if there is one.

    orjson keeps the last of two equal keys without a word. Every key in the text is
    followed by one colon, so a body whose parsed objects hold as many keys as the text
    has colons has no duplicate (the cheap check before this call). Otherwise (a colon
    inside a string, or a duplicate) the stdlib's parser, which shows every pair, decides.
    """

    def pairs(items):
        seen = set()
        for key, _ in items:
            if key in seen:
                shown = key if len(key) <= MAX_KEY_SHOWN else key[:MAX_KEY_SHOWN] + "..."
                raise APIError(400, f"Duplicate key in JSON: {shown}")
            seen.add(key)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except RecursionError:  # orjson reads 1024 levels, the stdlib's stack fewer
        raise APIError(400, "Request body is nested too deeply") from None


FORM_MIMETYPE = "application/x-www-form-urlencoded"


def require_mimetype(mimetype):
    """A view decorator: a request body of another type is 415 before anything is parsed."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if request.mimetype != mimetype:
                raise APIError(415, f"Content-Type must be {mimetype}")
            return view(*args, **kwargs)

        return wrapper

    return decorator


class StrictJsonParser(FlaskParser):
    """webargs parser whose JSON location follows the contract's 400/413/415 rules."""

    DEFAULT_VALIDATION_STATUS = 422

    def load_json(self, req, schema):
        return read_json_object(current_app.config["MAX_JSON_BYTES"])


class IdConverter(BaseConverter):
    """Positive ids that fit the database's integer: anything else is simply 404."""

    regex = r"[0-9]{1,10}"  # not \d, which matches every script's digits

    def to_python(self, value):
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value):
        return str(value)
