"""/v1/buckets/<id>/items: the items of one of your buckets."""

from functools import partial

from flask.views import MethodView

from app.api.blueprint import Blueprint
from app.api.conditional import for_write
from app.api.idempotency import idempotent
from app.api.lists import ITEMS
from app.api.responses import created, deleted, found, listed
from app.auth import auth_required, current_user
from app.schemas.bucket import ITEM, ItemPatchSchema, ItemSchema
from app.services import buckets
from app.services.crud import update

blp = Blueprint("items", __name__, url_prefix="/buckets/<int:bucket_id>/items", description="Items in a bucket")


@blp.route("", operation_ids={"get": "listItems", "post": "createItem"})
class Items(MethodView):
    @auth_required
    @blp.lists(ITEMS)
    def get(self, args, bucket_id):
        """List a bucket's items (q searches name and description; filter by done)."""
        owner = current_user()
        bucket = partial(buckets.owned_bucket, bucket_id, owner)
        return listed(ITEMS.page(buckets.owned_items(bucket_id, owner), args, of=bucket))

    @auth_required
    @idempotent
    @blp.one(ITEM, status=201, body=ItemSchema)
    def post(self, data, bucket_id):
        """Add an item to a bucket."""
        item = buckets.add_item(buckets.owned_bucket(bucket_id, current_user()), data)
        return created("item", item, "items.ItemDetail", bucket_id=bucket_id, item_id=item.id)


@blp.route(
    "/<int:item_id>",
    operation_ids={"get": "getItem", "put": "replaceItem", "patch": "updateItem", "delete": "deleteItem"},
)
class ItemDetail(MethodView):
    @auth_required
    @blp.one(ITEM)
    def get(self, bucket_id, item_id):
        """Get an item."""
        return found("item", buckets.owned_item(bucket_id, item_id, current_user()))

    @auth_required
    @blp.one(ITEM, body=ItemSchema)
    def put(self, data, bucket_id, item_id):
        """Replace an item: fields left out return to their defaults."""
        return found("item", update(self._for_write(bucket_id, item_id), data))

    @auth_required
    @blp.one(ITEM, body=ItemPatchSchema)
    def patch(self, data, bucket_id, item_id):
        """Change the fields given."""
        return found("item", update(self._for_write(bucket_id, item_id), data))

    @auth_required
    @blp.deletes(ITEM)
    def delete(self, bucket_id, item_id):
        """Delete an item."""
        bucket = buckets.locked_bucket_id(bucket_id, current_user())  # first: see app.services.buckets
        buckets.delete_item(for_write(ITEM, item_id, bucket_id=bucket))
        return deleted(item_id)

    @staticmethod
    def _for_write(bucket_id, item_id):
        return for_write(ITEM, item_id, bucket_id=buckets.owned_bucket_id(bucket_id, current_user()))
