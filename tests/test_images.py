"""/v1/images: validated uploads, metadata stripping, dedup, downloads; on local disk and on S3."""

import hashlib
import io
import os
import struct
import uuid
import zlib
from unittest import mock

from PIL import Image as PILImage
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Image
from app.services.images import thumbnail_key
from app.storage import storage
from tests.helpers import APITestCase, image_bytes
from tests.s3server import SeaweedS3

LIMITS = {
    "MAX_IMAGE_BYTES": 300_000,
    "MAX_FILES_PER_UPLOAD": 4,
    "MAX_UPLOAD_BYTES": 2_000_000,
    "THUMBNAIL_SIZE": 32,
    "MAX_IMAGE_PIXELS": 100_000,
    "MAX_ANIMATION_PIXELS": 1_000_000,
}


def noise_png(width=400, height=300):
    picture = PILImage.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def bomb_png(width=30000, height=30000):
    """A tiny PNG whose header claims a huge canvas."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def jpeg_with_exif():
    exif = PILImage.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 30.0)
    return image_bytes("JPEG", size=(64, 48), exif=exif.tobytes(), comment=b"secret note")


def tiny_frames_gif(frames, width, height, comment=b""):
    """A GIF of `frames` 1x1 frames on a width x height canvas: a few bytes that decode to frames x canvas."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    if comment:
        screen += b"\x21\xfe" + bytes([len(comment)]) + comment + b"\x00"
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    )
    return screen + frame * frames + b"\x3b"


def animation(fmt, frames=3, size=(40, 30), **metadata):
    pictures = [PILImage.new("RGB", size, (80 * n % 256, 40, 200)) for n in range(frames)]
    out = io.BytesIO()
    pictures[0].save(out, format=fmt, save_all=True, append_images=pictures[1:], duration=100, loop=0, **metadata)
    return out.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def riff_chunk(kind, data):
    return kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def with_hidden_parts(fmt, clean):
    """`clean` with parts its decoder skips: private segments or chunks, metadata, bytes after its end."""
    trailing = b"TRAILING-SECRET" * 10
    if fmt == "jpeg":  # an application's own APP5 and APP15, a comment, after the JFIF segment
        app5 = b"\xff\xe5" + struct.pack(">H", 2 + 17) + b"SECRET-APP5-BYTES"
        app15 = b"\xff\xef" + struct.pack(">H", 2 + 7) + b"SECRET!"
        comment = b"\xff\xfe" + struct.pack(">H", 2 + 14) + b"SECRET COMMENT"
        jfif_end = 4 + struct.unpack(">H", clean[4:6])[0]
        return clean[:jfif_end] + app5 + app15 + comment + clean[jfif_end:] + trailing
    if fmt == "png":
        end = clean.rindex(b"IEND") - 4
        return clean[:end] + png_chunk(b"prVt", b"SECRET private chunk") + clean[end:] + trailing
    if fmt == "gif":
        comment = b"\x21\xfe" + bytes([6]) + b"SECRET" + b"\x00"
        xmp = b"\x21\xff\x0bXMP DataXMP" + bytes([10]) + b"SECRET-XMP" + b"\x00"
        return clean[:-1] + comment + xmp + clean[-1:] + trailing
    # webp: EXIF and XMP chunks, announced in VP8X, and a private chunk; bytes after the RIFF
    body = bytearray(clean[12:])
    assert body[:4] == b"VP8X"
    body[8] |= 0x08 | 0x04
    body += riff_chunk(b"EXIF", b"SECRET exif") + riff_chunk(b"XMP ", b"SECRET xmp") + riff_chunk(b"prVt", b"SECRET")
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + bytes(body) + trailing


class ImageSuite:
    """The same suite runs on every storage backend."""

    def setUp(self):
        super().setUp()
        _, self.admin = self.account("admin")

    def upload(self, *files, headers=None, **fields):
        data = {"images": [(io.BytesIO(content), name, kind) for name, content, kind in files], **fields}
        return self.client.post(
            "/v1/images", headers=headers or self.admin, data=data, content_type="multipart/form-data"
        )

    def png(self, name="a.png", **kwargs):
        return (name, image_bytes("PNG", **kwargs), "image/png")

    def assertNothingStored(self, *contents):
        self.assertEqual(db.session.scalars(select(Image)).all(), [])
        for content in contents:
            import hashlib

            self.assertFalse(storage().exists(hashlib.sha256(content).hexdigest()))

    def test_upload_several_in_order(self):
        first, second = self.png("one.png"), ("two.gif", image_bytes("GIF", color=(0, 0, 255)), "image/gif")
        response = self.upload(first, second, title="Holiday", description="At sea", tags=" Sea, sun ,SEA,, ")
        self.assertEqual(response.status_code, 201, response.json)
        images = response.json["images"]
        self.assertEqual([i["filename"] for i in images], ["one.png", "two.gif"])
        self.assertEqual(response.headers["Location"], f"/v1/images/{images[0]['id']}")
        one = images[0]
        expected = {
            "id",
            "title",
            "description",
            "tags",
            "filename",
            "content_type",
            "size_bytes",
            "width",
            "height",
            "sha256",
            "owner_id",
            "created_at",
            "modified_at",
            "links",
        }
        self.assertEqual(set(one), expected)
        self.assertEqual((one["title"], one["description"], one["tags"]), ("Holiday", "At sea", ["sea", "sun"]))
        self.assertEqual((one["content_type"], one["width"], one["height"]), ("image/png", 64, 48))
        self.assertEqual(images[1]["content_type"], "image/gif")
        self.assertEqual(
            one["links"], {"file": f"/v1/images/{one['id']}/file", "thumbnail": f"/v1/images/{one['id']}/thumbnail"}
        )
        import hashlib

        self.assertEqual(one["sha256"], hashlib.sha256(first[1]).hexdigest())
        self.assertEqual(one["size_bytes"], len(first[1]))
        download = self.client.get(one["links"]["file"], headers=self.admin)
        self.assertEqual((download.status_code, download.mimetype), (200, "image/png"))
        self.assertEqual(download.data, first[1])

    def test_type_comes_from_the_bytes(self):
        response = self.upload(("photo.jpg", image_bytes("PNG"), "image/jpeg"))
        self.assertEqual(response.json["images"][0]["content_type"], "image/png")
        response = self.upload(("pic.bin", image_bytes("WEBP"), "application/octet-stream"))
        self.assertEqual(response.json["images"][0]["content_type"], "image/webp")

    def test_unusual_pixel_modes(self):
        for mode, fmt in (
            ("I;16", "PNG"),
            ("1", "PNG"),
            ("LA", "PNG"),
            ("P", "GIF"),
            ("CMYK", "JPEG"),
            ("RGBA", "WEBP"),
        ):
            with self.subTest(mode=mode):
                out = io.BytesIO()
                PILImage.new(mode, (50, 40)).save(out, format=fmt)
                response = self.upload((f"{mode}.{fmt.lower()}", out.getvalue(), "application/octet-stream"))
                self.assertEqual(response.status_code, 201, response.json)
                thumb = self.client.get(response.json["images"][0]["links"]["thumbnail"], headers=self.admin)
                self.assertEqual(PILImage.open(io.BytesIO(thumb.data)).size, (32, 26))

    def test_refused_files(self):
        cases = {
            "text named png": (("notes.png", b"hello, I am text", "image/png"), 415),
            "zero bytes": (("empty.png", b"", "image/png"), 415),
            "truncated jpeg": (("cut.jpg", image_bytes("JPEG", size=(300, 300))[:600], "image/jpeg"), 415),
            "bmp": (("old.bmp", image_bytes("BMP"), "image/bmp"), 415),
            "decompression bomb": (("bomb.png", bomb_png(), "image/png"), 413),
            "over the per-file limit": (("big.png", noise_png(), "image/png"), 413),
            "over the pixel limit": (("wide.png", image_bytes("PNG", size=(400, 300)), "image/png"), 413),
            "over the frame limit": (("long.gif", tiny_frames_gif(501, 1, 1), "image/gif"), 413),
            "over the animation budget": (("bomb.gif", tiny_frames_gif(100, 200, 200, b"note"), "image/gif"), 413),
        }
        for name, (upload, status) in cases.items():
            with self.subTest(name):
                body = self.assertError(self.upload(upload), status)
                self.assertIn(upload[0], body["message"])
                self.assertNothingStored(upload[1])

    def test_one_bad_file_stores_nothing(self):
        good = self.png("good.png")
        response = self.upload(good, ("bad.png", b"GIF89a-nope", "image/png"), self.png("good2.png", color=(1, 2, 3)))
        body = self.assertError(response, 415)
        self.assertIn("bad.png", body["message"])
        self.assertNothingStored(good[1])

    def test_request_shape_errors(self):
        self.assertError(self.client.post("/v1/images", headers=self.admin, json={"images": []}), 415)
        self.assertFieldError(
            self.client.post("/v1/images", headers=self.admin, data={"title": "x"}, content_type="multipart/form-data"),
            "images",
        )
        self.assertFieldError(self.upload(self.png(), colour="red"), "colour")
        self.assertFieldError(self.upload(self.png(), title="x" * 201), "title")
        self.assertFieldError(self.upload(self.png(), tags=",".join(f"t{n}" for n in range(30))), "tags")
        wrong_field = {"picture": (io.BytesIO(image_bytes()), "a.png", "image/png")}
        self.assertFieldError(
            self.client.post("/v1/images", headers=self.admin, data=wrong_field, content_type="multipart/form-data"),
            "picture",
        )
        self.assertError(self.upload(*[self.png(f"{n}.png", color=(n, 0, 0)) for n in range(5)]), 413)
        self.assertError(self.upload(("huge.png", b"x" * 2_100_000, "image/png")), 413)
        self.assertNothingStored()

    def test_metadata_is_stripped_and_orientation_applied(self):
        image = self.upload(("gps.jpg", jpeg_with_exif(), "image/jpeg")).json["images"][0]
        self.assertEqual((image["width"], image["height"]), (48, 64))
        stored = self.client.get(image["links"]["file"], headers=self.admin).data
        picture = PILImage.open(io.BytesIO(stored))
        self.assertEqual(picture.size, (48, 64))
        self.assertEqual(len(picture.getexif()), 0)
        self.assertNotIn("comment", picture.info)
        self.assertNotIn(b"SpyCam", stored)
        self.assertNotIn(b"secret note", stored)

    def test_limit_messages(self):
        cases = {
            "pixels": (image_bytes("PNG", size=(400, 300)), "it has more than 100000 pixels"),
            "frames": (tiny_frames_gif(501, 1, 1), "it has more than 500 frames"),
            "budget": (tiny_frames_gif(100, 200, 200), "its frames hold more than 1000000 pixels in all"),
            "budget at the contract's scale": (tiny_frames_gif(500, 2000, 2000, b"c"), "was refused"),
        }
        for name, (content, reason) in cases.items():
            with self.subTest(name):
                self.assertIn(reason, self.assertError(self.upload(("x.gif", content, "image/gif")), 413)["message"])
        self.assertEqual(self.upload(("ok.gif", tiny_frames_gif(25, 200, 200, b"c"), "image/gif")).status_code, 201)

    def test_metadata_of_animations_is_stripped(self):
        exif = PILImage.Exif()
        exif[0x010F] = "SpyCam"
        cases = {
            "gif": animation("GIF", comment=b"secret gif note"),
            "webp": animation("WEBP", exif=exif.tobytes(), xmp=b"<x:xmpmeta>secret xmp</x:xmpmeta>"),
        }
        for fmt, content in cases.items():
            with self.subTest(fmt):
                self.assertTrue(b"secret" in content or b"SpyCam" in content)
                image = self.upload((f"anim.{fmt}", content, "application/octet-stream")).json["images"][0]
                stored = self.client.get(image["links"]["file"], headers=self.admin).data
                picture = PILImage.open(io.BytesIO(stored))
                self.assertEqual((picture.format.lower(), picture.n_frames, picture.size), (fmt, 3, (40, 30)))
                for secret in (b"secret", b"SpyCam"):
                    self.assertNotIn(secret, stored)
                self.assertEqual(len(picture.getexif()), 0)

    def test_only_what_the_decoder_reads_is_stored_byte_for_byte(self):
        """Trailing bytes, private segments and chunks, comments and metadata go; the picture's own
        bytes stay as uploaded (no re-encoding), so a clean file and its padded copy are stored once."""
        progressive = {"progressive": True, "restart_marker_blocks": 1}  # many scans, restart markers
        cleans = (
            ("jpeg", image_bytes("JPEG", color=(10, 120, 200), icc_profile=b"an ICC profile, kept")),
            ("jpeg", image_bytes("JPEG", size=(60, 40), color=(10, 120, 202), **progressive)),
            ("png", image_bytes("PNG", color=(10, 120, 201))),
            ("gif", animation("GIF")),
            ("webp", animation("WEBP", size=(41, 30))),
        )
        for fmt, clean in cleans:
            with self.subTest(fmt):
                padded = with_hidden_parts(fmt, clean)
                self.assertIn(b"SECRET", padded)
                self.assertEqual(PILImage.open(io.BytesIO(padded)).format.lower(), fmt, "the padded file decodes")
                response = self.upload((f"padded.{fmt}", padded, "application/octet-stream"))
                image = response.json["images"][0]
                stored = self.client.get(image["links"]["file"], headers=self.admin).data
                self.assertNotIn(b"SECRET", stored)
                self.assertEqual(stored, clean, "the clean file, byte for byte")
                self.assertEqual(
                    (image["sha256"], image["size_bytes"]), (hashlib.sha256(clean).hexdigest(), len(clean))
                )
                again = self.upload((f"clean.{fmt}", clean, "application/octet-stream")).json["images"][0]
                self.assertEqual(again["sha256"], image["sha256"], "stored once")
                picture = PILImage.open(io.BytesIO(stored))
                if fmt in ("gif", "webp"):
                    self.assertEqual((picture.n_frames, picture.info.get("loop")), (3, 0), "still animated")
                if fmt == "jpeg" and "icc_profile" in PILImage.open(io.BytesIO(clean)).info:
                    self.assertEqual(picture.info["icc_profile"], b"an ICC profile, kept")

    def test_long_and_odd_filenames_are_normalised(self):
        cases = {
            "a" * 300 + ".png": "a" * 251 + ".png",
            "b" * 300: "b" * 255,
            "../../etc/Ünïcødé phöto.png": "etc_Unicde_photo.png",
            "x." + "y" * 300: ("x." + "y" * 300)[:255],
            "": "image",
        }
        for uploaded, kept in cases.items():
            with self.subTest(uploaded[:20]):
                response = self.upload((uploaded, image_bytes("PNG", color=(len(uploaded) % 256, 1, 2)), "image/png"))
                self.assertEqual(response.status_code, 201, response.json)
                self.assertEqual(response.json["images"][0]["filename"], kept)

    def test_download_headers(self):
        polyglot = image_bytes("GIF") + b"<html><script>alert(document.domain)</script></html>"
        image = self.upload(("poly.html", polyglot, "text/html")).json["images"][0]
        for link, mimetype, extension in (("file", "image/gif", "gif"), ("thumbnail", "image/png", "png")):
            with self.subTest(link):
                response = self.client.get(image["links"][link], headers=self.admin)
                self.assertEqual(response.mimetype, mimetype)
                self.assertEqual(response.headers["X-Content-Type-Options"], "nosniff")
                self.assertEqual(
                    response.headers["Content-Disposition"], f'inline; filename="{image["id"]}.{extension}"'
                )
                self.assertEqual(response.headers["Cache-Control"], "private")
                self.assertTrue(response.headers["ETag"])
        jpeg = self.upload(("photo.jpeg", image_bytes("JPEG"), "image/jpeg")).json["images"][0]
        response = self.client.get(jpeg["links"]["file"], headers=self.admin)
        self.assertEqual(response.headers["Content-Disposition"], f'inline; filename="{jpeg["id"]}.jpg"')

    def test_thumbnail(self):
        image = self.upload(self.png(size=(200, 100))).json["images"][0]
        response = self.client.get(image["links"]["thumbnail"], headers=self.admin)
        self.assertEqual((response.status_code, response.mimetype), (200, "image/png"))
        self.assertEqual(PILImage.open(io.BytesIO(response.data)).size, (32, 16))
        jpeg = self.upload(("p.jpg", image_bytes("JPEG", size=(50, 120)), "image/jpeg")).json["images"][0]
        thumb = self.client.get(jpeg["links"]["thumbnail"], headers=self.admin)
        self.assertEqual(thumb.mimetype, "image/jpeg")
        self.assertEqual(PILImage.open(io.BytesIO(thumb.data)).size, (13, 32))

    def test_etag_and_304(self):
        image = self.upload(self.png()).json["images"][0]
        response = self.client.get(image["links"]["file"], headers=self.admin)
        self.assertEqual(response.headers["ETag"], f'"{image["sha256"]}"')
        self.assertEqual(response.headers["Cache-Control"], "private")
        again = self.client.get(
            image["links"]["file"], headers={**self.admin, "If-None-Match": response.headers["ETag"]}
        )
        self.assertEqual((again.status_code, again.data), (304, b""))
        stale = self.client.get(image["links"]["file"], headers={**self.admin, "If-None-Match": '"other"'})
        self.assertEqual(stale.status_code, 200)
        thumb = self.client.get(image["links"]["thumbnail"], headers=self.admin)
        self.assertEqual(
            self.client.get(
                image["links"]["thumbnail"], headers={**self.admin, "If-None-Match": thumb.headers["ETag"]}
            ).status_code,
            304,
        )
        # If-None-Match compares weakly (RFC 9110): a cache that keeps the tag as W/"..." is current too.
        for link, etag in (
            (image["links"]["file"], response.headers["ETag"]),
            (image["links"]["thumbnail"], thumb.headers["ETag"]),
        ):
            weak = self.client.get(link, headers={**self.admin, "If-None-Match": f"W/{etag}"})
            self.assertEqual((weak.status_code, weak.data), (304, b""))

    def test_identical_bytes_stored_once_and_deleted_last(self):
        content = self.png()
        first = self.upload(content, title="first").json["images"][0]
        second = self.upload(content, title="second").json["images"][0]
        self.assertNotEqual(first["id"], second["id"])
        self.assertEqual(first["sha256"], second["sha256"])
        self.assertEqual((first["title"], second["title"]), ("first", "second"))
        sha = first["sha256"]
        self.assertEqual(
            self.client.delete(f"/v1/images/{first['id']}", headers=self.admin).json,
            {"success": True, "deleted": first["id"]},
        )
        self.assertTrue(storage().exists(sha))
        self.assertEqual(self.client.get(second["links"]["file"], headers=self.admin).status_code, 200)
        self.client.delete(f"/v1/images/{second['id']}", headers=self.admin)
        self.assertFalse(storage().exists(sha))
        self.assertFalse(storage().exists(thumbnail_key(sha)))
        self.assertError(self.client.get(second["links"]["file"], headers=self.admin), 404)

    def test_failure_after_writing_files_leaves_no_orphan(self):
        content = self.png(color=(9, 9, 9))

        def fail(session, _context, _instances):
            raise RuntimeError("simulated failure of the records, after the bytes were written")

        event.listen(Session, "before_flush", fail, once=True)
        try:
            self.assertError(self.upload(content), 500)
        finally:
            event.remove(Session, "before_flush", fail)
        self.assertNothingStored(content[1])

    def test_sweep_removes_only_unreferenced_bytes(self):
        from app.commands import sweep_images

        self.app.test_cli_runner().invoke(sweep_images, [])  # what earlier tests left (they empty tables only)
        kept = self.upload(self.png()).json["images"][0]["sha256"]
        orphan = "ab" * 32
        storage().put(orphan, b"left by a crash", "image/png")
        storage().put(thumbnail_key(orphan), b"thumb", "image/png")
        result = self.app.test_cli_runner().invoke(sweep_images, [])
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("Removed the bytes of 1 unreferenced hashes", result.output)
        self.assertEqual(sorted(storage().keys()), sorted([kept, thumbnail_key(kept)]))

    def test_list_search_tags_sort(self):
        self.upload(self.png(color=(1, 1, 1)), title="Red barn", tags="farm,red")
        self.upload(
            self.png(color=(2, 2, 2), size=(300, 300)), title="Blue sea", description="a calm 100% sea", tags="sea"
        )
        titles = lambda q: [i["title"] for i in self.client.get(f"/v1/images{q}", headers=self.admin).json["images"]]  # noqa: E731
        self.assertEqual(titles("?tag=FARM"), ["Red barn"])
        self.assertEqual(titles("?q=calm"), ["Blue sea"])
        self.assertEqual(titles("?q=100%25"), ["Blue sea"])
        self.assertEqual(titles("?sort=-size_bytes"), ["Blue sea", "Red barn"])
        self.assertEqual(titles("?sort=title"), ["Blue sea", "Red barn"])
        self.assertEqual(titles("?tag=none"), [])
        self.assertError(self.client.get("/v1/images?sort=sha256", headers=self.admin), 400)

    def test_patch_metadata(self):
        image = self.upload(self.png(), tags="a").json["images"][0]
        url = f"/v1/images/{image['id']}"
        patched = self.client.patch(url, headers=self.admin, json={"title": "New", "tags": ["X", "y", "x"]}).json[
            "image"
        ]
        self.assertEqual((patched["title"], patched["tags"]), ("New", ["x", "y"]))
        patched = self.client.patch(url, headers=self.admin, json={"tags": "b, c"}).json["image"]
        self.assertEqual(patched["tags"], ["b", "c"])
        for body, field in (
            ({"sha256": "x"}, "sha256"),
            ({"tags": 5}, "tags"),
            ({"tags": [1]}, "tags"),
            ({"title": "x" * 201}, "title"),
            ({"width": 3}, "width"),
        ):
            with self.subTest(body=body):
                self.assertFieldError(self.client.patch(url, headers=self.admin, json=body), field)
        self.assertError(self.client.patch(url, headers=self.admin, json={}), 422)
        self.assertEqual(self.client.get(url, headers=self.admin).json["image"]["tags"], ["b", "c"])
        self.assertError(self.client.get("/v1/images/99999", headers=self.admin), 404)
        self.assertError(self.client.get("/v1/images/99999/file", headers=self.admin), 404)

    def test_permissions_per_role(self):
        image = self.upload(self.png()).json["images"][0]
        url = f"/v1/images/{image['id']}"
        for role in ("user", "casting_assistant", "casting_director", "executive_producer"):
            headers = self.headers_for(role)
            with self.subTest(role=role):
                self.assertEqual(self.client.get("/v1/images", headers=headers).status_code, 200)
                self.assertEqual(self.client.get(url, headers=headers).status_code, 200)
                self.assertEqual(self.client.get(f"{url}/file", headers=headers).status_code, 200)
                self.assertEqual(self.client.get(f"{url}/thumbnail", headers=headers).status_code, 200)
                self.assertError(self.upload(self.png(), headers=headers), 403)
                self.assertError(self.client.patch(url, headers=headers, json={"title": "x"}), 403)
                self.assertError(self.client.delete(url, headers=headers), 403)
        for path in ("/v1/images", url, f"{url}/file", f"{url}/thumbnail"):
            self.assertError(self.client.get(path), 401)


class LocalImageTests(ImageSuite, APITestCase):
    app_overrides = LIMITS

    def test_sweep_removes_stale_temp_files(self):
        from app.commands import sweep_images

        folder = os.path.join(self.app.config["UPLOAD_DIR"], "ab")
        os.makedirs(folder, exist_ok=True)
        stale, fresh = os.path.join(folder, ".upload-stale"), os.path.join(folder, ".upload-fresh")
        for path in (stale, fresh):
            with open(path, "wb") as handle:
                handle.write(b"half")
        os.utime(stale, (0, 0))
        result = self.app.test_cli_runner().invoke(sweep_images, [])
        self.assertIn("and 1 stale temp files", result.output)
        self.assertEqual((os.path.exists(stale), os.path.exists(fresh)), (False, True))
        os.remove(fresh)


class S3ImageTests(ImageSuite, APITestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        credentials = {"AWS_ACCESS_KEY_ID": "test-access-key", "AWS_SECRET_ACCESS_KEY": "test-secret-key"}
        cls.environment = mock.patch.dict(os.environ, {**credentials, **os.environ})
        cls.environment.start()
        cls.server = SeaweedS3().start()
        cls.app_overrides = {
            **LIMITS,
            "IMAGE_STORAGE": "s3",
            "S3_ENDPOINT_URL": cls.server.endpoint,
            "S3_BUCKET": f"img-{uuid.uuid4().hex[:12]}",
        }

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.environment.stop()

    def test_really_on_s3(self):
        import boto3

        image = self.upload(self.png()).json["images"][0]
        client = boto3.client("s3", endpoint_url=self.server.endpoint, region_name="us-east-1")
        body = client.get_object(Bucket=self.app.config["S3_BUCKET"], Key=image["sha256"])["Body"].read()
        self.assertEqual(body, self.client.get(image["links"]["file"], headers=self.admin).data)
