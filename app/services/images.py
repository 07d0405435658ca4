"""Turning uploaded bytes into safe stored images, and forgetting them again.

Stored bytes are shared by every image with the same sha256, so who may write or delete them is decided
under a lock on the hash (a `stored_files` row, see `_lock_contents`): an upload writes missing bytes and
adds its rows while holding the lock, which the request's commit releases together with the rows; a
deleter, or an upload cleaning up after a failure, removes bytes only while holding the lock and after
seeing that no committed image refers to them.

An upload whose request fails after `save_uploads` returned (its commit included: the database went
away) leaves bytes no row refers to, as a crash does: `manage.py sweep-images` removes them.
"""

import hashlib
import io
import logging
import os
import unicodedata
import warnings
from dataclasses import dataclass

from flask import current_app
from PIL import Image as PILImage
from PIL import ImageOps
from sqlalchemy import delete, select
from werkzeug.utils import secure_filename

from app import database
from app.errors import APIError
from app.extensions import db
from app.models import Image, StoredFile
from app.models.base import utcnow
from app.services import image_parts
from app.storage import StorageFull, storage
from app.transactions import commit_early

log = logging.getLogger("app.images")

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
SAVE_FORMAT = {"MPO": "JPEG"}
ORIENTATION = 0x0112  # the EXIF tag
# What may survive a re-encode: rendering hints, never camera or author data.
SAFE_INFO_KEYS = ("transparency", "duration", "loop", "background", "icc_profile", "dpi", "disposal")
MAX_FRAMES = 500
MAX_FILENAME = 255
FILE_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}


@dataclass
class ProcessedImage:
    filename: str
    data: bytes
    sha256: str
    content_type: str
    width: int
    height: int
    thumbnail: bytes


THUMBNAIL_SUFFIX = "-thumb"
SWEEP_BATCH = 500
TEMP_FILE_GRACE_SECONDS = 3600


def thumbnail_key(sha256):
    return f"{sha256}{THUMBNAIL_SUFFIX}"


def thumbnail_content_type(content_type):
    return "image/jpeg" if content_type == "image/jpeg" else "image/png"


def download_name(image_id, content_type):
    """The name a download is offered under: never the uploaded name, whose extension could lie."""
    return f"{image_id}.{FILE_EXTENSIONS[content_type]}"


def clean_filename(name):
    """The uploaded name made safe and at most 255 characters, keeping its extension where it fits."""
    name = secure_filename(unicodedata.normalize("NFC", name or "")) or "image"
    if len(name) <= MAX_FILENAME:
        return name
    stem, extension = os.path.splitext(name)
    if len(extension) > 16:  # not an extension worth keeping
        return name[:MAX_FILENAME]
    return stem[: MAX_FILENAME - len(extension)] + extension


def _refuse(status, filename, reason):
    return APIError(status, f"File '{filename}' was refused: {reason}", errors={"images": [f"{filename}: {reason}"]})


def _open(filename, data):
    config = current_app.config
    if not data:
        raise _refuse(415, filename, "it is empty")
    if len(data) > config["MAX_IMAGE_BYTES"]:
        raise _refuse(413, filename, f"it is larger than {config['MAX_IMAGE_BYTES']} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image = PILImage.open(io.BytesIO(data))
            if image.format not in CONTENT_TYPES:
                raise _refuse(415, filename, "it is not a JPEG, PNG, GIF or WebP image")
            if image.width * image.height > config["MAX_IMAGE_PIXELS"]:
                raise _refuse(413, filename, f"it has more than {config['MAX_IMAGE_PIXELS']} pixels")
            _check_frames(image, filename)
            image.load()
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise _refuse(413, filename, "it decompresses to too many pixels") from None
    except APIError:
        raise
    except Exception:  # Pillow raises many types for undecodable bytes
        raise _refuse(415, filename, "it is not a supported image, or it is truncated or corrupt") from None
    return image


def _check_frames(image, filename):
    """Budget frames x canvas before decoding any frame: counting frames only reads their headers."""
    frames = getattr(image, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise _refuse(413, filename, f"it has more than {MAX_FRAMES} frames")
    budget = current_app.config["MAX_ANIMATION_PIXELS"]
    if frames > 1 and frames * image.width * image.height > budget:
        raise _refuse(413, filename, f"its frames hold more than {budget} pixels in all")


def _needs_turning(image):
    """A still picture whose EXIF says to display it rotated or mirrored: it is stored upright."""
    return not getattr(image, "is_animated", False) and image.getexif().get(ORIENTATION, 1) in range(2, 9)


def _decoded_parts(image, data):
    """The file cut down to what the decoder read (app.services.image_parts), if that still opens
    as the same picture; None if its structure is one the cutting does not follow."""
    try:
        kept = image_parts.keep_decoded(image.format, data)
        check = PILImage.open(io.BytesIO(kept))
    except Exception:  # the cut file does not parse: the caller re-encodes instead
        return None
    return kept if (check.format, check.size) == (SAVE_FORMAT.get(image.format, image.format), image.size) else None


def _encode(image, fmt, **params):
    out = io.BytesIO()
    if fmt == "JPEG":
        params["quality"] = 95
    image.save(out, format=fmt, **params)
    return out.getvalue()


def _reencode(image):
    """Encode the picture again, without metadata, upright (EXIF orientation applied)."""
    fmt = SAVE_FORMAT.get(image.format, image.format)
    if getattr(image, "is_animated", False) and fmt in ("GIF", "WEBP"):
        # Pillow walks the frames itself: no list of full-canvas copies of our own. Empty metadata
        # parameters win over what the frames carry; timing, loop and transparency stay.
        data = _encode(image, fmt, save_all=True, comment=b"", exif=b"", xmp=b"")
        image.seek(0)
        return data, image
    clean = ImageOps.exif_transpose(image)
    clean.info = {key: image.info[key] for key in SAFE_INFO_KEYS if key in image.info}
    if fmt == "JPEG" and clean.mode not in ("RGB", "L", "CMYK"):
        clean = clean.convert("RGB")
    return _encode(clean, fmt), clean


def _thumbnail(image, content_type):
    size = current_app.config["THUMBNAIL_SIZE"]
    thumb = image.copy()
    thumb.thumbnail((size, size))
    thumb.info = {}
    if thumbnail_content_type(content_type) == "image/jpeg":
        return _encode(thumb.convert("RGB") if thumb.mode != "RGB" else thumb, "JPEG")
    if thumb.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        thumb = thumb.convert("RGBA")
    return _encode(thumb, "PNG")


def process_upload(filename, data):
    """Validate one file and prepare what will be stored, or raise 413/415."""
    image = _open(filename, data)
    content_type = CONTENT_TYPES[image.format]
    try:
        kept = None if _needs_turning(image) else _decoded_parts(image, data)
        if kept is None:
            data, image = _reencode(image)
        else:
            data = kept
        thumbnail = _thumbnail(image, content_type)
    except Exception:  # an exotic mode or encoding Pillow decodes but cannot write back
        log.warning("could not re-encode %s", filename, exc_info=True)
        raise _refuse(415, filename, "it could not be processed (unsupported image mode or encoding)") from None
    return ProcessedImage(
        filename=filename,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
        width=image.width,
        height=image.height,
        thumbnail=thumbnail,
    )


def _lock_contents(hashes):
    """Lock each hash's `stored_files` row until commit, creating it if need be.

    An upsert locks the row on PostgreSQL whether it inserts or not (and waits for an uncommitted
    insert of the same hash); on SQLite any write takes the database's write lock. Sorted, so two
    uploads that share hashes lock them in the same order and cannot deadlock.
    """
    if not hashes:
        return
    now = utcnow()
    stmt = database.insert(StoredFile).values([{"sha256": sha, "created_at": now} for sha in sorted(hashes)])
    db.session.execute(stmt.on_conflict_do_update(index_elements=["sha256"], set_={"sha256": stmt.excluded.sha256}))


def _referenced(hashes):
    """The hashes a committed image refers to (under the lock, their bytes are in the store)."""
    if not hashes:
        return set()
    return set(db.session.scalars(select(Image.sha256).where(Image.sha256.in_(hashes)).distinct()))


def _write_missing_files(processed):
    """Under the hash locks: write the bytes and thumbnail of every hash no image refers to yet."""
    present = _referenced({item.sha256 for item in processed})
    for item in processed:
        if item.sha256 in present:
            continue
        storage().put(item.sha256, item.data, item.content_type)
        storage().put(thumbnail_key(item.sha256), item.thumbnail, thumbnail_content_type(item.content_type))
        present.add(item.sha256)


def release_contents(hashes):
    """Delete the bytes of each hash that no committed image refers to, holding the hash's lock.

    Never raises: bytes that cannot be deleted now stay as orphans for `manage.py sweep-images`.
    """
    hashes = set(hashes)
    try:
        _lock_contents(hashes)
        unused = hashes - _referenced(hashes)
        for sha in unused:
            for key in (sha, thumbnail_key(sha)):
                storage().delete(key)
        db.session.execute(delete(StoredFile).where(StoredFile.sha256.in_(unused)))
        commit_early()  # the hash locks go now (the bytes are gone): not at the end of a request or a sweep
    except Exception as error:  # typically the database going away; the caller's own error matters more
        db.session.rollback()  # what it did is undone, and the caller's transaction with it
        log.warning("could not release stored files %s (%r); manage.py sweep-images will", sorted(hashes), error)


def save_uploads(processed, metadata, owner_id):
    """Store files and add their records (flushed: the request commits them): if anything here fails,
    neither remains (a full store is 507)."""
    hashes = {item.sha256 for item in processed}
    try:
        _lock_contents(hashes)
        _write_missing_files(processed)
        records = [
            Image(
                title=metadata.get("title") or item.filename.rsplit(".", 1)[0][:200],
                description=metadata.get("description", ""),
                tags=metadata.get("tags", []),
                filename=item.filename,
                content_type=item.content_type,
                size_bytes=len(item.data),
                width=item.width,
                height=item.height,
                sha256=item.sha256,
                owner_id=owner_id,
            )
            for item in processed
        ]
        db.session.add_all(records)
        db.session.flush()
    except BaseException as error:
        db.session.rollback()  # the cleanup runs in a transaction of its own
        release_contents(hashes)
        if isinstance(error, StorageFull):
            raise APIError(507) from None
        raise
    return records


def delete_image(image):
    """Delete the record; the bytes go only when no other record shares them."""
    sha = image.sha256
    db.session.delete(image)
    commit_early()  # the record is gone for good before its bytes may go
    release_contents({sha})


def sweep_orphans():
    """Delete stored bytes no image refers to, and stale temp files; returns (hashes, temp files) removed.

    Orphans appear only when a process dies between writing bytes and committing (or when a cleanup
    could not reach the database); each is deleted under its hash's lock, like any release.
    """
    hashes = sorted({key.removesuffix(THUMBNAIL_SUFFIX) for key in storage().keys()})
    orphans = 0
    for start in range(0, len(hashes), SWEEP_BATCH):
        batch = set(hashes[start : start + SWEEP_BATCH])
        unused = batch - _referenced(batch)
        release_contents(unused)
        orphans += len(unused)
    return orphans, storage().remove_stale_temp_files(TEMP_FILE_GRACE_SECONDS)
