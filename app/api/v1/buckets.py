"""/v1/buckets: each user's own buckets."""

from flask.views import MethodView
from sqlalchemy import select

from app.api.blueprint import Blueprint
from app.api.conditional import for_write
from app.api.idempotency import idempotent
from app.api.lists import BUCKETS
from app.api.responses import created, deleted, found, listed
from app.auth import auth_required, current_user
from app.models import Bucket
from app.schemas.bucket import BUCKET, BucketSchema
from app.services import buckets

blp = Blueprint("buckets", __name__, url_prefix="/buckets", description="Each user's own buckets")


@blp.route("", operation_ids={"get": "listBuckets", "post": "createBucket"}, index_link="buckets")
class Buckets(MethodView):
    @auth_required
    @blp.lists(BUCKETS)
    def get(self, args):
        """List your buckets (q searches the name)."""
        owner = current_user()
        return listed(BUCKETS.page(select(Bucket).where(Bucket.owner_id == owner.id), args, of=lambda: owner))

    @auth_required
    @idempotent
    @blp.one(BUCKET, status=201, body=BucketSchema, conflict=True)
    def post(self, data):
        """Create a bucket."""
        bucket = buckets.create_bucket(current_user(), data)
        return created("bucket", bucket, "buckets.BucketDetail", bucket_id=bucket.id)


@blp.route(
    "/<int:bucket_id>",
    operation_ids={"get": "getBucket", "put": "replaceBucket", "patch": "updateBucket", "delete": "deleteBucket"},
)
class BucketDetail(MethodView):
    @auth_required
    @blp.one(BUCKET)
    def get(self, bucket_id):
        """Get one of your buckets."""
        return found("bucket", buckets.owned_bucket(bucket_id, current_user()))

    @auth_required
    @blp.one(BUCKET, body=BucketSchema, conflict=True)
    def put(self, data, bucket_id):
        """Replace a bucket (name required)."""
        return found("bucket", self._update(bucket_id, data))

    @auth_required
    @blp.one(BUCKET, body=BucketSchema(partial=True), conflict=True)
    def patch(self, data, bucket_id):
        """Change the fields given."""
        return found("bucket", self._update(bucket_id, data))

    @auth_required
    @blp.deletes(BUCKET)
    def delete(self, bucket_id):
        """Delete a bucket and all its items."""
        buckets.delete_bucket(for_write(BUCKET, bucket_id, owner_id=current_user().id))
        return deleted(bucket_id)

    @staticmethod
    def _update(bucket_id, data):
        return buckets.update_bucket(for_write(BUCKET, bucket_id, owner_id=current_user().id), data)
