"""Where image bytes live: a local directory or any S3-compatible store.

Keys are content addresses (sha256), so writing the same bytes twice is harmless.
"""

import os
import tempfile
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from flask import current_app

CHUNK = 64 * 1024


class StoredFileMissing(Exception):
    """A record points at bytes the store no longer has."""


class LocalStorage:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key):
        return self.root / key[:2] / key

    def put(self, key, data, content_type):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)

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


class S3Storage:
    def __init__(self, bucket, endpoint_url=None, region=None):
        self.bucket = bucket
        self._bucket_ready = False
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def _ensure_bucket(self):
        if self._bucket_ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
        self._bucket_ready = True

    def put(self, key, data, content_type):
        self._ensure_bucket()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

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


def init_storage(app):
    config = app.config
    if config["IMAGE_STORAGE"] == "s3":
        storage = S3Storage(config["S3_BUCKET"], config["S3_ENDPOINT_URL"], config["S3_REGION"])
    elif config["IMAGE_STORAGE"] == "local":
        storage = LocalStorage(config["UPLOAD_DIR"])
    else:
        raise RuntimeError(f"IMAGE_STORAGE must be 'local' or 's3', got {config['IMAGE_STORAGE']!r}")
    app.extensions["image_storage"] = storage


def storage():
    return current_app.extensions["image_storage"]
