"""`Idempotency-Key` on creating POSTs: a retried request gets the first answer again.

The first request with a key takes it (committed at once as running), runs, and keeps
its answer in the transaction the request commits with its work: so there is never work
without a kept answer, nor a kept answer without work.
Answers of 500 and above are not kept: the key is let go and a retry runs afresh.
4xx answers are kept like any other (the same request would fail the same way).
"""

import hashlib
import re
from functools import wraps

import orjson
from flask import Response, current_app, request

from app.api.apidoc import note
from app.auth import current_user
from app.errors import APIError, handle_exception
from app.http import read_json_bytes
from app.services import idempotency
from app.services.idempotency import IN_PROGRESS, Fingerprint

HEADER = "Idempotency-Key"
VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
INVALID_KEY = "Idempotency-Key must be 1 to 255 printable ASCII characters"
# What a replay needs besides status and body; the rest is set afresh per answer.
KEPT_HEADERS = ("Content-Type", "Location", "ETag")

KEY_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "A unique value (1..255 printable ASCII) per creation. A retry with the same key and the "
    "same body (byte for byte) gets the first answer again, with `Idempotent-Replayed: true`, and creates "
    "nothing; kept 24 hours per user. Answers of 500 and above are not kept.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
}
REPLAYED_HEADER = {
    "description": "`true` when this is the kept answer of an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}


def _fingerprint():
    # The whole raw body, multipart included, read under the same caps as the view's.
    multipart = request.mimetype == "multipart/form-data"
    body = request.get_data(cache=True) if multipart else read_json_bytes(current_app.config["MAX_JSON_BYTES"])
    return Fingerprint(request.method, request.path, hashlib.sha256(body).hexdigest())


def _replay(kept):
    response = Response(kept.body, status=kept.status_code, headers=orjson.loads(kept.headers))
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _answer_of(view, args, kwargs):
    """The view's answer; if it failed, the error's answer (its work rolled back), so that a 4xx is kept too."""
    try:
        return current_app.make_response(view(*args, **kwargs))
    except Exception as exc:
        return handle_exception(exc)


def idempotent(view):
    """Make a creating POST honour `Idempotency-Key` (put it under the auth decorator)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not VALID_KEY.fullmatch(key):
            raise APIError(400, INVALID_KEY)
        holder, kept = idempotency.take(current_user().id, key, _fingerprint())
        if kept:
            return _replay(kept)
        response = _answer_of(view, args, kwargs)
        if response.status_code >= 500:
            idempotency.release(holder)
            return response
        headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
        if not idempotency.keep_answer(
            holder, response.status_code, orjson.dumps(headers).decode(), response.get_data()
        ):
            raise APIError(409, IN_PROGRESS)  # taken over while we ran: the new holder's work counts
        return response

    return note(
        wrapper,
        parameters=[KEY_PARAMETER],
        responses={400: "BAD_REQUEST", 409: "CONFLICT", 422: "UNPROCESSABLE_ENTITY"},
        success_headers={"Idempotent-Replayed": REPLAYED_HEADER},
    )
