"""Where image bytes live: a local directory or any S3-compatible store.

Keys are content addresses (sha256), so writing the same bytes twice is harmless.
Who may write or delete a key, and when, is decided in `app/services/images.py`.
"""

import errno
import os
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from flask import current_app

CHUNK = 64 * 1024
# Response headers a presigned GET can make S3 send, by their get_object parameter.
PRESIGN_OVERRIDES = {
    "Content-Type": "ResponseContentType",
    "Content-Disposition": "ResponseContentDisposition",
    "Cache-Control": "ResponseCacheControl",
}


class StoredFileMissing(Exception):
    """A record points at bytes the store no longer has."""


class StorageFull(Exception):
    """The store has no room left (a full disk or quota, or an S3 store that says so)."""


# What S3-compatible stores answer when they are out of space (MinIO says XMinioStorageFull, HTTP 507).
S3_FULL_CODES = {"XMinioStorageFull", "StorageFull", "InsufficientStorage", "QuotaExceeded"}
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
TEMP_PREFIX = ".upload-"


class LocalStorage:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key):
        return self.root / key[:2] / key

    def put(self, key, data, content_type):
        path = self._path(key)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees a half-written file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except OSError as error:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            if error.errno in DISK_FULL_ERRNOS:
                raise StorageFull(key) from error
            raise

    def exists(self, key):
        return self._path(key).is_file()

    def stream(self, key):
        """An iterator over the stored bytes, read in chunks."""
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError as error:
            raise StoredFileMissing(key) from error

        def chunks():
            with handle:
                while block := handle.read(CHUNK):
                    yield block

        return chunks()

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)

    def keys(self):
        for path in self.root.glob("*/*"):
            if not path.name.startswith(TEMP_PREFIX):
                yield path.name

    def remove_stale_temp_files(self, older_than_seconds):
        """Temp files a killed worker left behind (a failing write removes its own); returns how many."""
        cutoff = time.time() - older_than_seconds
        stale = [path for path in self.root.glob(f"*/{TEMP_PREFIX}*") if path.stat().st_mtime < cutoff]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


def _s3_client(endpoint_url, region):
    # SigV4 everywhere: presigned URLs otherwise default to SigV2, which current stores refuse.
    config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 3})
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Storage:
    def __init__(self, bucket, endpoint_url=None, region=None, public_endpoint_url=None):
        self.bucket = bucket
        self._bucket_ready = False
        self.client = _s3_client(endpoint_url, region)
        # Presigning is local (no request); its host must be the one clients can reach.
        self.presigner = _s3_client(public_endpoint_url, region) if public_endpoint_url else self.client

    def _ensure_bucket(self):
        if self._bucket_ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except self.client.exceptions.BucketAlreadyOwnedByYou:
                pass  # another thread or worker created it at the same moment
        self._bucket_ready = True

    def put(self, key, data, content_type):
        self._ensure_bucket()
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as error:
            response = error.response
            if response.get("Error", {}).get("Code") in S3_FULL_CODES or (
                response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 507
            ):
                raise StorageFull(key) from error
            raise

    def exists(self, key):
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        return True

    def stream(self, key):
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as error:
            raise StoredFileMissing(key) from error
        return body.iter_chunks(CHUNK)

    def delete(self, key):
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def keys(self):
        self._ensure_bucket()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for entry in page.get("Contents", []):
                yield entry["Key"]

    def remove_stale_temp_files(self, older_than_seconds):
        return 0  # a PUT is atomic: S3 keeps no partial objects

    def url_for_key(self, key, seconds, headers):
        """A GET URL valid for `seconds` that makes the store answer with these response headers.

        `headers` may name Content-Type, Content-Disposition and Cache-Control (S3's response-* overrides).
        """
        params = {"Bucket": self.bucket, "Key": key}
        params.update({PRESIGN_OVERRIDES[name]: value for name, value in headers.items()})
        return self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)


def init_storage(app):
    config = app.config
    if config["IMAGE_STORAGE"] == "s3":
        storage = S3Storage(
            config["S3_BUCKET"], config["S3_ENDPOINT_URL"], config["S3_REGION"], config["S3_PUBLIC_ENDPOINT_URL"]
        )
    elif config["IMAGE_STORAGE"] == "local":
        storage = LocalStorage(config["UPLOAD_DIR"])
    else:
        raise RuntimeError(f"IMAGE_STORAGE must be 'local' or 's3', got {config['IMAGE_STORAGE']!r}")
    if config["IMAGE_DELIVERY"] not in ("proxy", "redirect"):
        raise RuntimeError(f"IMAGE_DELIVERY must be 'proxy' or 'redirect', got {config['IMAGE_DELIVERY']!r}")
    if config["IMAGE_DELIVERY"] == "redirect" and not hasattr(storage, "url_for_key"):
        raise RuntimeError("IMAGE_DELIVERY=redirect needs IMAGE_STORAGE=s3 (a local directory has no URLs)")
    app.extensions["image_storage"] = storage


def storage():
    return current_app.extensions["image_storage"]
