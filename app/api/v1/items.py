"""/v1/buckets/<id>/items: the items of one of your buckets."""

from functools import partial

from flask.views import MethodView

from app.api.conditional import conditional, for_write
from app.api.idempotency import idempotent
from app.api.lists import ITEMS
from app.api.responses import created, deleted, found, listed
from app.auth import auth_required, current_user
from app.fields import DeletedSchema
from app.http import Blueprint
from app.models import Item
from app.schemas.bucket import ItemListResponse, ItemPatchSchema, ItemResponse, ItemSchema
from app.services import buckets
from app.services.crud import require_changes, update

blp = Blueprint("items", __name__, url_prefix="/buckets/<id:bucket_id>/items", description="Items in a bucket")


@blp.route("")
class Items(MethodView):
    @auth_required
    @blp.arguments(ITEMS.args, location="query", error_status_code=400)
    @blp.response(200, ItemListResponse)
    def get(self, args, bucket_id):
        """List a bucket's items (q searches name and description; filter by done)."""
        owner = current_user()
        bucket = partial(buckets.owned_bucket, bucket_id, owner)
        return listed(ITEMS.page(buckets.owned_items(bucket_id, owner), args, of=bucket))

    @auth_required
    @idempotent
    @blp.arguments(ItemSchema)
    @blp.response(201, ItemResponse)
    @conditional
    def post(self, data, bucket_id):
        """Add an item to a bucket."""
        item = buckets.add_item(buckets.owned_bucket(bucket_id, current_user()), data)
        return created("item", item, "items.ItemDetail", bucket_id=bucket_id, item_id=item.id)


@blp.route("/<id:item_id>")
class ItemDetail(MethodView):
    @auth_required
    @blp.response(200, ItemResponse)
    @conditional
    def get(self, bucket_id, item_id):
        """Get an item."""
        return found("item", buckets.owned_item(bucket_id, item_id, current_user()))

    @auth_required
    @blp.arguments(ItemSchema)
    @blp.response(200, ItemResponse)
    @conditional
    def put(self, data, bucket_id, item_id):
        """Replace an item: fields left out return to their defaults."""
        return found("item", update(self._for_write(bucket_id, item_id), data))

    @auth_required
    @blp.arguments(ItemPatchSchema)
    @blp.response(200, ItemResponse)
    @conditional
    def patch(self, data, bucket_id, item_id):
        """Change the fields given."""
        require_changes(data)
        return found("item", update(self._for_write(bucket_id, item_id), data))

    @auth_required
    @blp.response(200, DeletedSchema)
    @conditional
    def delete(self, bucket_id, item_id):
        """Delete an item."""
        buckets.delete_item(self._for_write(bucket_id, item_id))
        return deleted(item_id)

    @staticmethod
    def _for_write(bucket_id, item_id):
        return for_write(Item, item_id, bucket_id=buckets.owned_bucket_id(bucket_id, current_user()))
