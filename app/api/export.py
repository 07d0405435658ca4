"""GET /v1/auth/me/export's answer: the account as one JSON document, written while it is read.

Each row is dumped by the schema the API answers it with elsewhere (UserSchema, BucketSchema, ItemSchema,
ImageSchema), and the document is sent in pieces of about CHUNK_BYTES. `"success": true` comes last, so a
body cut short never carries it. When the database fails mid-way, the answer (its 200 and headers long
sent) is broken off: the connection closes without the chunked encoding's last chunk, which clients
report as an incomplete transfer (curl: exit 18), and what they did receive is not valid JSON either.
"""

import logging

import orjson
from flask import Response, stream_with_context
from sqlalchemy.exc import SQLAlchemyError

from app.http import BodyCutShort
from app.schemas.auth import UserSchema
from app.schemas.bucket import BucketSchema, ItemSchema
from app.schemas.image import ImageSchema

log = logging.getLogger("app.export")

CHUNK_BYTES = 64 * 1024
USER, BUCKET, ITEM, IMAGE = UserSchema(), BucketSchema(), ItemSchema(), ImageSchema()


def export_response(export):
    """The streamed answer of `export` (an open services.exports.AccountExport); closed once sent."""
    response = Response(
        stream_with_context(_guarded(export)),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="account-{export.user.id}.json"'},
    )
    response.call_on_close(export.close)  # also when the body was never read (the client went away first)
    return response


def _guarded(export):
    try:
        yield from _document(export)
    except SQLAlchemyError as exc:
        log.warning("export of account %s cut short by the database: %s", export.user.id, exc.__class__.__name__)
        raise BodyCutShort from None
    finally:
        export.close()  # as soon as the last row is read, not when the server is done sending


def _document(export):
    # The opening goes out alone and at once: the status line and headers leave before any row is read.
    yield b'{"user":' + orjson.dumps(USER.dump(export.user)) + b',"buckets":['
    pieces = _Pieces()
    for n, (bucket, items) in enumerate(export.buckets()):
        opening = orjson.dumps(BUCKET.dump(bucket))[:-1] + b',"items":['  # the bucket's own fields, then items
        yield from pieces.add(b"," + opening if n else opening)
        for m, item in enumerate(items):
            dumped = orjson.dumps(ITEM.dump(item))
            yield from pieces.add(b"," + dumped if m else dumped)
        yield from pieces.add(b"]}")
    yield from pieces.add(b'],"images":[')
    for n, image in enumerate(export.images()):
        dumped = orjson.dumps(IMAGE.dump(image))
        yield from pieces.add(b"," + dumped if n else dumped)
    yield from pieces.add(b'],"success":true}')
    yield pieces.rest()


class _Pieces:
    """Bytes gathered into pieces of about CHUNK_BYTES: one socket write per piece, not per row."""

    def __init__(self):
        self._parts, self._size = [], 0

    def add(self, data):
        self._parts.append(data)
        self._size += len(data)
        if self._size >= CHUNK_BYTES:
            yield self.rest()

    def rest(self):
        piece, self._parts, self._size = b"".join(self._parts), [], 0
        return piece
