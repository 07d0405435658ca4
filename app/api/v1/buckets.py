"""/v1/buckets: each user's own buckets."""

from flask.views import MethodView
from sqlalchemy import select

from app.api.conditional import conditional, for_write
from app.api.idempotency import idempotent
from app.api.lists import BUCKETS
from app.api.responses import created, deleted, found, listed
from app.auth import auth_required, current_user
from app.fields import DeletedSchema
from app.http import Blueprint
from app.models import Bucket
from app.schemas.bucket import BucketListResponse, BucketResponse, BucketSchema
from app.services import buckets
from app.services.crud import require_changes

blp = Blueprint("buckets", __name__, url_prefix="/buckets", description="Each user's own buckets")


@blp.route("")
class Buckets(MethodView):
    @auth_required
    @blp.arguments(BUCKETS.args, location="query", error_status_code=400)
    @blp.response(200, BucketListResponse)
    def get(self, args):
        """List your buckets (q searches the name)."""
        return listed(BUCKETS.page(select(Bucket).where(Bucket.owner_id == current_user().id), args, of=current_user))

    @auth_required
    @idempotent
    @blp.arguments(BucketSchema)
    @blp.response(201, BucketResponse)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def post(self, data):
        """Create a bucket."""
        bucket = buckets.create_bucket(current_user(), data)
        return created("bucket", bucket, "buckets.BucketDetail", bucket_id=bucket.id)


@blp.route("/<id:bucket_id>")
class BucketDetail(MethodView):
    @auth_required
    @blp.response(200, BucketResponse)
    @conditional
    def get(self, bucket_id):
        """Get one of your buckets."""
        return found("bucket", buckets.owned_bucket(bucket_id, current_user()))

    @auth_required
    @blp.arguments(BucketSchema)
    @blp.response(200, BucketResponse)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def put(self, data, bucket_id):
        """Replace a bucket (name required)."""
        return found("bucket", self._update(bucket_id, data))

    @auth_required
    @blp.arguments(BucketSchema(partial=True))
    @blp.response(200, BucketResponse)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def patch(self, data, bucket_id):
        """Change the fields given."""
        require_changes(data)
        return found("bucket", self._update(bucket_id, data))

    @auth_required
    @blp.response(200, DeletedSchema)
    @conditional
    def delete(self, bucket_id):
        """Delete a bucket and all its items."""
        buckets.delete_bucket(for_write(Bucket, bucket_id, owner_id=current_user().id))
        return deleted(bucket_id)

    @staticmethod
    def _update(bucket_id, data):
        return buckets.update_bucket(for_write(Bucket, bucket_id, owner_id=current_user().id), data)
