"""Turning uploaded bytes into safe stored images, and forgetting them again."""

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass

from flask import current_app
from PIL import Image as PILImage
from PIL import ImageOps, ImageSequence
from sqlalchemy import func, select

from app.errors import APIError
from app.extensions import db
from app.models import Image
from app.storage import storage

log = logging.getLogger("app.images")

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
SAVE_FORMAT = {"MPO": "JPEG"}
METADATA_INFO_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "iptc")
# What may survive a re-encode: rendering hints, never camera or author data.
SAFE_INFO_KEYS = ("transparency", "duration", "loop", "background", "icc_profile", "dpi", "disposal")
MAX_FRAMES = 500


@dataclass
class ProcessedImage:
    filename: str
    data: bytes
    sha256: str
    content_type: str
    width: int
    height: int
    thumbnail: bytes


def thumbnail_key(sha256):
    return f"{sha256}-thumb"


def thumbnail_content_type(content_type):
    return "image/jpeg" if content_type == "image/jpeg" else "image/png"


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
            if getattr(image, "n_frames", 1) > MAX_FRAMES:
                raise _refuse(413, filename, f"it has more than {MAX_FRAMES} frames")
            image.load()
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise _refuse(413, filename, "it decompresses to too many pixels") from None
    except APIError:
        raise
    except Exception:  # Pillow raises many types for undecodable bytes
        raise _refuse(415, filename, "it is not a supported image, or it is truncated or corrupt") from None
    return image


def _carries_metadata(image):
    if any(key in image.info for key in METADATA_INFO_KEYS):
        return True
    if image.format == "PNG" and image.text:
        return True
    if image.format in ("JPEG", "MPO"):
        return any(marker in ("APP1", "APP13", "COM") for marker, _ in image.applist)
    return False


def _encode(image, fmt, frames=None):
    out = io.BytesIO()
    params = {"format": fmt}
    if fmt == "JPEG":
        params["quality"] = 95
    if frames:
        params.update(save_all=True, append_images=frames)
    image.save(out, **params)
    return out.getvalue()


def _strip_metadata(image):
    """Re-encode without metadata, upright (EXIF orientation applied)."""
    fmt = SAVE_FORMAT.get(image.format, image.format)
    if getattr(image, "is_animated", False) and fmt in ("GIF", "WEBP"):
        frames = [frame.copy() for frame in ImageSequence.Iterator(image)]
        safe = {key: image.info[key] for key in SAFE_INFO_KEYS if key in image.info}
        for frame in frames:
            frame.info = dict(safe)
        return _encode(frames[0], fmt, frames[1:]), frames[0]
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
        if _carries_metadata(image):
            data, image = _strip_metadata(image)
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


def _stored_hashes(hashes):
    if not hashes:
        return set()
    return set(db.session.scalars(select(Image.sha256).where(Image.sha256.in_(hashes)).distinct()))


def _write_new_files(processed):
    """Store bytes no record points at yet; returns the keys written."""
    present = _stored_hashes({item.sha256 for item in processed})
    written = []
    for item in processed:
        if item.sha256 in present or item.sha256 in written:
            continue
        storage().put(item.sha256, item.data, item.content_type)
        written.append(item.sha256)
        storage().put(thumbnail_key(item.sha256), item.thumbnail, thumbnail_content_type(item.content_type))
    return written


def _discard(hashes):
    for sha in hashes:
        for key in (sha, thumbnail_key(sha)):
            try:
                storage().delete(key)
            except Exception:
                log.exception("could not delete stored file %s", key)


def save_uploads(processed, metadata, owner_id):
    """Store files and records together: if anything fails, neither remains."""
    written = []
    try:
        written = _write_new_files(processed)
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
        db.session.commit()
    except BaseException:
        db.session.rollback()
        _discard(written)
        raise
    return records


def delete_image(image):
    """Delete the record; the bytes go only when no other record shares them."""
    sha = image.sha256
    db.session.delete(image)
    db.session.commit()
    remaining = db.session.scalar(select(func.count(Image.id)).where(Image.sha256 == sha))
    if not remaining:
        _discard([sha])
