"""Image uploads against a live server, and what its store holds (local directory or S3)."""

import io
import os
import uuid

from PIL import Image as PILImage

from app.services.images import THUMBNAIL_SUFFIX
from app.storage import TEMP_PREFIX


def png(seed, size=(16, 16)):
    """Distinct small PNG bytes for each seed."""
    out = io.BytesIO()
    PILImage.new("RGB", size, (seed % 256, seed // 256 % 256, seed // 65536 % 256)).save(out, format="PNG")
    return out.getvalue()


def noise_png(size):
    """A PNG that does not compress: about 3 bytes per pixel."""
    out = io.BytesIO()
    PILImage.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, format="PNG")
    return out.getvalue()


def multipart(files, **fields):
    """A multipart/form-data body: files is a list of (filename, bytes) sent in the `images` field."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for filename, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(files, headers, **fields):
    """(method, path, kwargs) of an upload, for LiveServer.request or at_once."""
    body, content_type = multipart(files, **fields)
    return "POST", "/v1/images", {"data": body, "headers": {**headers, "Content-Type": content_type}}


def send_upload(server, files, headers, **fields):
    method, path, kwargs = upload(files, headers, **fields)
    return server.request(method, path, **kwargs)


class LocalStore:
    def __init__(self, root):
        self.root = root

    def keys(self):
        if not os.path.isdir(self.root):
            return set()
        return {name for folder in os.listdir(self.root) for name in os.listdir(os.path.join(self.root, folder))}


class S3Store:
    def __init__(self, endpoint, bucket):
        import boto3

        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def keys(self):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {entry["Key"] for page in pages for entry in page.get("Contents", [])}


class StoreInvariants:
    """Mixed into a LiveServerTestCase that sets `store`."""

    store = None

    def assertStoreMatchesRows(self):
        """Every committed image has its file and thumbnail; nothing else is stored, not even a temp file."""
        hashes = {row[0] for row in self.server.rows("SELECT DISTINCT sha256 FROM images")}
        expected = hashes | {sha + THUMBNAIL_SUFFIX for sha in hashes}
        keys = self.store.keys()
        self.assertEqual(sorted(expected - keys), [], "committed images without their bytes")
        self.assertEqual(sorted(keys - expected), [], "stored bytes no image refers to (or temp files)")
        self.assertFalse([key for key in keys if key.startswith(TEMP_PREFIX)])
