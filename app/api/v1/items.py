"""/v1/buckets/<id>/items: the items of one of your buckets."""

from flask.views import MethodView
from sqlalchemy import select

from app.auth import auth_required
from app.extensions import db
from app.http import Blueprint
from app.models import Item
from app.pagination import paginate
from app.schemas.bucket import (
    ItemListArgs,
    ItemListResponse,
    ItemPatchSchema,
    ItemResponse,
    ItemSchema,
)
from app.schemas.common import DeletedSchema
from app.services.buckets import owned_bucket, owned_item
from app.services.crud import (
    apply_changes,
    created,
    delete_and_confirm,
    found,
    require_changes,
)

blp = Blueprint("items", __name__, url_prefix="/v1/buckets/<id:bucket_id>/items", description="Items in a bucket")

SORTABLE = {
    "id": Item.id,
    "name": Item.name,
    "done": Item.done,
    "created_at": Item.created_at,
    "modified_at": Item.modified_at,
}


@blp.route("")
class Items(MethodView):
    @auth_required
    @blp.arguments(ItemListArgs, location="query", error_status_code=400)
    @blp.response(200, ItemListResponse)
    def get(self, args, bucket_id):
        """List a bucket's items (q searches name and description; filter by done)."""
        bucket = owned_bucket(bucket_id)
        stmt = select(Item).where(Item.bucket_id == bucket.id)
        if "done" in args:
            stmt = stmt.where(Item.done == args["done"])
        page = paginate(stmt, args, search=[Item.name, Item.description], sortable=SORTABLE, tie_breaker=Item.id)
        return page.respond("items")

    @auth_required
    @blp.arguments(ItemSchema)
    @blp.response(201, ItemResponse)
    def post(self, data, bucket_id):
        """Add an item to a bucket."""
        bucket = owned_bucket(bucket_id)
        item = Item(bucket_id=bucket.id, **data)
        db.session.add(item)
        db.session.commit()
        return created("item", item, f"/v1/buckets/{bucket.id}/items/{item.id}")


@blp.route("/<id:item_id>")
class ItemDetail(MethodView):
    @auth_required
    @blp.response(200, ItemResponse)
    def get(self, bucket_id, item_id):
        """Get an item."""
        return found("item", owned_item(bucket_id, item_id))

    @auth_required
    @blp.arguments(ItemSchema)
    @blp.response(200, ItemResponse)
    def put(self, data, bucket_id, item_id):
        """Replace an item: fields left out return to their defaults."""
        return self._update(bucket_id, item_id, data)

    @auth_required
    @blp.arguments(ItemPatchSchema)
    @blp.response(200, ItemResponse)
    def patch(self, data, bucket_id, item_id):
        """Change the fields given."""
        require_changes(data)
        return self._update(bucket_id, item_id, data)

    @auth_required
    @blp.response(200, DeletedSchema)
    def delete(self, bucket_id, item_id):
        """Delete an item."""
        return delete_and_confirm(owned_item(bucket_id, item_id))

    @staticmethod
    def _update(bucket_id, item_id, data):
        item = owned_item(bucket_id, item_id)
        apply_changes(item, data)
        db.session.commit()
        return found("item", item)
