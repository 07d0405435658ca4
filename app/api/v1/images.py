"""/v1/images: the shared image repository."""

from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import ValidationError
from sqlalchemy import select

from app.api import openapi
from app.api.blueprint import Blueprint
from app.api.conditional import conditional, for_write
from app.api.idempotency import idempotent
from app.api.lists import IMAGES
from app.api.responses import created, deleted, found, listed
from app.auth import current_user, requires_permission
from app.errors import APIError, invalid
from app.extensions import db
from app.models import Image
from app.schemas.image import (
    IMAGE,
    UPLOAD_BODY,
    ImageSchema,
    ImageUploadResponse,
    UploadFormSchema,
)
from app.services import images as image_service
from app.services.crud import update
from app.storage import StoredFileMissing, storage
from app.transactions import commit_early

blp = Blueprint("images", __name__, url_prefix="/images", description="The shared image repository")

CACHE_CONTROL = "private"
IMAGE_TYPES = sorted(set(image_service.CONTENT_TYPES.values()))  # what an upload can be
REDIRECT_CACHE_CONTROL = "private, no-store"
REDIRECT_DOC = {
    "description": "IMAGE_DELIVERY=redirect (S3 storage): the bytes are at a presigned URL that lives "
    "IMAGE_URL_SECONDS; the store answers them with the same Content-Type, Content-Disposition and Cache-Control",
    "headers": {
        "Location": {"description": "Presigned URL of the bytes", "schema": {"type": "string", "format": "uri"}},
        "Cache-Control": {"description": "private, no-store", "schema": {"type": "string"}},
    },
    "success": True,
}


def _upload_form():
    if request.mimetype != "multipart/form-data":
        raise APIError(415, "Content-Type must be multipart/form-data")
    unknown_files = set(request.files) - {"images"}
    if unknown_files:
        raise invalid({name: ["Unknown field."] for name in unknown_files})
    try:
        metadata = UploadFormSchema().load(request.form.to_dict())
    except ValidationError as error:
        raise invalid(error.messages) from None
    files = request.files.getlist("images")
    if not files:
        raise invalid({"images": ["Provide at least one file in the 'images' field."]})
    limit = current_app.config["MAX_FILES_PER_UPLOAD"]
    if len(files) > limit:
        raise APIError(413, f"At most {limit} files per upload")
    return metadata, files


def _read_upload(upload):
    limit = current_app.config["MAX_IMAGE_BYTES"]
    return image_service.clean_filename(upload.filename), upload.stream.read(limit + 1)


@blp.route("", operation_ids={"get": "listImages", "post": "uploadImages"}, index_link="images")
class Images(MethodView):
    @requires_permission("get:images")
    @blp.lists(IMAGES)
    def get(self, args):
        """List images (q searches title and description; filter by tag)."""
        return listed(IMAGES.page(select(Image), args))

    @requires_permission("post:images")
    @idempotent
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, ImageUploadResponse)
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.alt_response(507, response="INSUFFICIENT_STORAGE")
    @conditional(IMAGE)
    def post(self):
        """Upload one or more images (all or nothing)."""
        commit_early()  # the authentication's read ends here: no lock is held while the images are decoded
        metadata, files = _upload_form()
        processed = [image_service.process_upload(*_read_upload(upload)) for upload in files]
        records = image_service.save_uploads(processed, metadata, current_user().id)
        return created("images", records, "images.ImageDetail", image_id=records[0].id)


@blp.route("/<int:image_id>", operation_ids={"get": "getImage", "patch": "updateImage", "delete": "deleteImage"})
class ImageDetail(MethodView):
    get = blp.shows(IMAGE, guard=requires_permission("get:images"), summary="Get an image's metadata.")

    @requires_permission("patch:images")
    @blp.one(IMAGE, body=ImageSchema(partial=True))
    def patch(self, data, image_id):
        """Change title, description or tags."""
        return found("image", update(for_write(IMAGE, image_id), data))

    @requires_permission("delete:images")
    @blp.deletes(IMAGE)
    def delete(self, image_id):
        """Delete an image; its bytes go when no other image shares them."""
        image_service.delete_image(for_write(IMAGE, image_id))
        return deleted(image_id)


def _send_stored(image_id, key, content_type, etag):
    headers = {
        "Content-Type": content_type,
        "Cache-Control": CACHE_CONTROL,
        # Never the uploaded name: its extension could make a browser treat the bytes as something else.
        "Content-Disposition": f'inline; filename="{image_service.download_name(image_id, content_type)}"',
    }
    if request.if_none_match.contains_weak(etag):  # If-None-Match compares weakly (RFC 9110)
        response = Response(status=304, headers={"Cache-Control": CACHE_CONTROL})
    elif current_app.config["IMAGE_DELIVERY"] == "redirect":
        return _redirect_to_store(key, headers)
    else:
        try:
            chunks = storage().stream(key)
        except StoredFileMissing:
            raise APIError(404, "The stored file is missing") from None
        response = Response(chunks, headers=headers, direct_passthrough=True)
    response.set_etag(etag)
    return response


def _redirect_to_store(key, headers):
    """302 to a short-lived presigned URL: the store sends the bytes, with the headers we would have sent."""
    url = storage().url_for_key(key, current_app.config["IMAGE_URL_SECONDS"], headers)
    # The URL is a bearer credential for a while: no cache may keep the redirect.
    response = Response(status=302, headers={"Location": url, "Cache-Control": REDIRECT_CACHE_CONTROL})
    del response.headers["Content-Type"]  # no body
    return response


@blp.route("/<int:image_id>/file", operation_ids={"get": "getImageFile"})
@blp.doc(responses={200: openapi.binary("The image bytes (IMAGE_DELIVERY=proxy, the default)", IMAGE_TYPES)})
@blp.alt_response(302, **REDIRECT_DOC)
@blp.alt_response(304, description="Not modified (If-None-Match)")
@requires_permission("get:images")
def image_file(image_id):
    """Download the image (ETag is its sha256; honours If-None-Match)."""
    image = db.get_or_404(Image, image_id)
    return _send_stored(image_id, image.sha256, image.content_type, image.sha256)


@blp.route("/<int:image_id>/thumbnail", operation_ids={"get": "getImageThumbnail"})
@blp.doc(
    responses={
        200: openapi.binary(
            "The thumbnail bytes: JPEG for JPEG images, PNG otherwise (IMAGE_DELIVERY=proxy)", IMAGE_TYPES
        )
    }
)
@blp.alt_response(302, **REDIRECT_DOC)
@blp.alt_response(304, description="Not modified (If-None-Match)")
@requires_permission("get:images")
def image_thumbnail(image_id):
    """Download the thumbnail (longest side THUMBNAIL_SIZE)."""
    image = db.get_or_404(Image, image_id)
    key = image_service.thumbnail_key(image.sha256)
    return _send_stored(image_id, key, image_service.thumbnail_content_type(image.content_type), key)
