"""What a log line looks like, for the app's loggers and gunicorn's error and access logs alike.

LOG_FORMAT=text (the default) keeps readable lines; LOG_FORMAT=json writes one JSON object per
line, each with `time` (ISO 8601 UTC), `level`, `message`, `logger` and `request_id` (null outside
a request). Gunicorn's access line, one per request, adds `method`, `route` (the URL rule), `path`
(no query string), `status`, `duration_ms`, `user_id`, `remote_addr`, `bytes` and `user_agent`.

The app leaves what only it knows (request id, route, user) in the WSGI environ under ENVIRON
keys (app.http); GunicornLogger reads it there. A module of its own, beside gunicorn.conf.py,
because gunicorn's master process loads it and must not import the app (gunicorn loads the
app in each worker, so a HUP picks up new code).

Secrets travel in headers, query strings and bodies: no line ever carries one of those.
"""

import logging
import os
from datetime import datetime, timezone

from gunicorn import glogging
from pythonjsonlogger.orjson import OrjsonFormatter

FORMATS = ("text", "json")
REQUEST_ID, ROUTE, USER_ID = "api.request_id", "api.route", "api.user_id"
ENVIRON = (REQUEST_ID, ROUTE, USER_ID)

TEXT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
# Gunicorn's access line in text: its usual atoms, less the query string, the Basic-auth user
# and the Referer (a reset link's token could be in any of them), plus request id and user id.
ACCESS_TEXT = (
    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms '
    'request_id=%({api.request_id}e)s user_id=%({api.user_id}e)s "%(a)s"'
)


def log_format(value=None):
    """LOG_FORMAT, checked: 'text' or 'json'."""
    value = (value if value is not None else os.environ.get("LOG_FORMAT", "")).strip().lower() or "text"
    if value not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be text or json, got {value!r}")
    return value


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: time, level, message, logger, request_id, then any extra fields."""

    def __init__(self):
        super().__init__(
            ["asctime", "levelname", "message", "name", "request_id"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record, datefmt=None):
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def formatter(name, text=TEXT):
    """The formatter of LOG_FORMAT `name`; `text` is the line's layout in text."""
    return JsonFormatter() if name == "json" else logging.Formatter(text)


class GunicornLogger(glogging.Logger):
    """Gunicorn's logs in LOG_FORMAT; in JSON, the access line's fields come from the environ
    (and gunicorn's own atoms, every header and environ entry, are never built)."""

    def setup(self, cfg):
        super().setup(cfg)
        self.json = log_format() == "json"
        if self.json:
            for handler in self.error_log.handlers + self.access_log.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp, req, environ, request_time):
        if not self.json:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        status = int(str(resp.status).split(None, 1)[0])
        path = environ.get("PATH_INFO", "")
        fields = {
            "request_id": environ.get(REQUEST_ID),
            "method": environ.get("REQUEST_METHOD"),
            "route": environ.get(ROUTE),
            "path": path,
            "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "user_id": environ.get(USER_ID),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "bytes": getattr(resp, "sent", None),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        self.access_log.info("%s %s %s", fields["method"], path, status, extra=fields)
