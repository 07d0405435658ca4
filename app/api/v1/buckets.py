"""/v1/buckets: each user's own buckets."""

from flask.views import MethodView
from sqlalchemy import select

from app.auth import auth_required, current_user
from app.http import Blueprint
from app.models import Bucket
from app.pagination import paginate
from app.schemas.bucket import (
    BucketListArgs,
    BucketListResponse,
    BucketResponse,
    BucketSchema,
)
from app.schemas.common import DeletedSchema
from app.services.buckets import owned_bucket
from app.services.crud import (
    apply_changes,
    commit_or_conflict,
    created,
    delete_and_confirm,
    found,
    insert_or_conflict,
    require_changes,
)

blp = Blueprint("buckets", __name__, url_prefix="/v1/buckets", description="Each user's own buckets")

SORTABLE = {"id": Bucket.id, "name": Bucket.name, "created_at": Bucket.created_at, "modified_at": Bucket.modified_at}
DUPLICATE = "You already have a bucket with this name"


@blp.route("")
class Buckets(MethodView):
    @auth_required
    @blp.arguments(BucketListArgs, location="query", error_status_code=400)
    @blp.response(200, BucketListResponse)
    def get(self, args):
        """List your buckets (q searches the name)."""
        stmt = select(Bucket).where(Bucket.owner_id == current_user().id)
        return paginate(stmt, args, search=[Bucket.name], sortable=SORTABLE, tie_breaker=Bucket.id).respond("buckets")

    @auth_required
    @blp.arguments(BucketSchema)
    @blp.response(201, BucketResponse)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data):
        """Create a bucket."""
        bucket = insert_or_conflict(Bucket(owner_id=current_user().id, **data), DUPLICATE)
        return created("bucket", bucket, f"/v1/buckets/{bucket.id}")


@blp.route("/<id:bucket_id>")
class BucketDetail(MethodView):
    @auth_required
    @blp.response(200, BucketResponse)
    def get(self, bucket_id):
        """Get one of your buckets."""
        return found("bucket", owned_bucket(bucket_id))

    @auth_required
    @blp.arguments(BucketSchema)
    @blp.response(200, BucketResponse)
    @blp.alt_response(409, response="CONFLICT")
    def put(self, data, bucket_id):
        """Replace a bucket (name required)."""
        return self._update(bucket_id, data)

    @auth_required
    @blp.arguments(BucketSchema(partial=True))
    @blp.response(200, BucketResponse)
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, data, bucket_id):
        """Change the fields given."""
        require_changes(data)
        return self._update(bucket_id, data)

    @auth_required
    @blp.response(200, DeletedSchema)
    def delete(self, bucket_id):
        """Delete a bucket and all its items."""
        return delete_and_confirm(owned_bucket(bucket_id))

    @staticmethod
    def _update(bucket_id, data):
        bucket = owned_bucket(bucket_id)
        apply_changes(bucket, data)
        commit_or_conflict(DUPLICATE)
        return found("bucket", bucket)
