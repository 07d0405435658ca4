"""Conditional requests on single JSON resources: ETag, If-None-Match, If-Match.

A resource's ETag is a hash of its representation (what GET answers under its key:
the schema of its `Resource` declaration, app.fields), so it changes whenever anything
shown changes: a bucket's item_count, a movie's cast, an image's tags. Every PUT, PATCH
and DELETE loads its resource with `for_write`: locked until the request commits, then
held to `If-Match`, so of two writers holding the same ETag only one gets through (the
other waits, then gets 412).

A gzip-compressed answer (over 1 KiB, to a client that takes gzip) carries the
same ETag with Flask-Compress's `:gzip` suffix: other bytes, another tag. Both
name the same representation, so If-None-Match and If-Match take either.
"""

import hashlib
from functools import partial, wraps

import orjson
from flask import Response, request

from app.api.apidoc import note
from app.errors import APIError
from app.services.crud import locked_or_404

PRECONDITION_FAILED = "Precondition failed: the resource has changed"
COMPRESSED = ":gzip"  # what Flask-Compress appends to the ETag of an answer it compressed
WRITES = ("PUT", "PATCH", "DELETE")

ETAG_HEADER = {"description": "Strong validator of the resource's representation", "schema": {"type": "string"}}
IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETag(s) you hold: if one still matches, the answer is 304 with no body.",
    "schema": {"type": "string"},
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "ETag you last saw (or `*`): if the resource has changed since, nothing is changed and "
    "the answer is 412.",
    "schema": {"type": "string"},
}
NOT_MODIFIED = {"description": "Not modified: your copy is current (no body)", "headers": {"ETag": ETAG_HEADER}}


def etag_of(declared, resource):
    """The ETag of `resource`, a `declared` kind of resource (a `Resource` of app.schemas)."""
    representation = declared.representation.dump(resource)
    digest = hashlib.sha256(orjson.dumps(representation, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f'"{digest[:40]}"'


def matching_tag(condition, etag, weak):
    """The tag of `etag`'s plain or compressed answer that `condition` (If-None-Match, weak
    comparison, or If-Match, strong) names, quoted; or None."""
    tag = etag.strip('"')
    for candidate in (tag, tag + COMPRESSED):
        if condition.contains_weak(candidate) if weak else condition.contains(candidate):
            return f'"{candidate}"'
    return None


def for_write(declared, ident, **scope):
    """The resource a PUT, PATCH or DELETE changes, of the `declared` kind (`for_write(BUCKET, id)`):
    locked and loaded as last committed (services.crud.locked_or_404; `scope` narrows it to an
    owner's), then held to `If-Match`.

    The lock lasts until the request commits, so no other writer can move the resource between
    this check and the write: of two writers holding the same ETag, the second waits, then finds
    the ETag changed (412).
    """
    resource = locked_or_404(declared.model, ident, **scope)
    condition = request.if_match
    if "If-Match" in request.headers and not (
        condition.star_tag or matching_tag(condition, etag_of(declared, resource), weak=False)
    ):
        raise APIError(412, PRECONDITION_FAILED)
    return resource


def _parts(answer):
    """(body, status, headers) of what a view returned: a body, or (body, status[, headers])."""
    if not isinstance(answer, tuple):
        return answer, None, None
    body, status, headers = (*answer, None)[:3]
    return body, status, headers


def _resource_in(declared, body):
    """The resource an answer is about: under its key (`{"bucket": <Bucket>}`), or the first of
    its list (an upload's `{"images": [...]}`: the one `Location` names); None for a deletion."""
    if declared.key in body:
        return body[declared.key]
    listed = body.get(declared.list_key)
    return listed[0] if listed else None


def conditional(declared, method=None):
    """For a single resource's GET, POST, PUT, PATCH and DELETE, of the `declared` kind (put
    `@conditional(BUCKET)` under `@blp.response`; `blp.one` and `blp.deletes` do): the answer
    carries the resource's ETag; a GET whose `If-None-Match` matches is 304 with no body. A write
    loads the resource it changes with `for_write`, which holds it to `If-Match`. The method is
    the view's name (a MethodView's `get`, `patch`...), or `method` for a function view."""
    return partial(_conditional, declared, method)


def _conditional(declared, method, view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        result = view(*args, **kwargs)
        body, status, headers = _parts(result)
        resource = _resource_in(declared, body)
        if resource is None:
            return result
        etag = etag_of(declared, resource)
        if request.method in ("GET", "HEAD") and (matched := matching_tag(request.if_none_match, etag, weak=True)):
            return Response(status=304, headers={"ETag": matched})  # the tag the client holds
        return body, status, {**(headers or {}), "ETag": etag}

    method = method or view.__name__.upper()
    parameters, responses = [], {}
    if method == "GET":
        parameters, responses = [IF_NONE_MATCH], {304: NOT_MODIFIED}
    if method in WRITES:
        parameters, responses = [IF_MATCH], {412: "PRECONDITION_FAILED"}
    success_headers = {} if method == "DELETE" else {"ETag": ETAG_HEADER}
    return note(wrapper, parameters=parameters, responses=responses, success_headers=success_headers)
