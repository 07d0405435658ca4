"""Owner scoping: a bucket or item of another user is indistinguishable from none."""

from sqlalchemy import select

from app.auth import current_user
from app.models import Bucket, Item
from app.services.crud import first_or_404


def owned_bucket(bucket_id):
    return first_or_404(select(Bucket).where(Bucket.id == bucket_id, Bucket.owner_id == current_user().id))


def owned_item(bucket_id, item_id):
    """An item, reached only through its own bucket, of the current user."""
    stmt = (
        select(Item)
        .join(Bucket, Bucket.id == Item.bucket_id)
        .where(Item.id == item_id, Item.bucket_id == bucket_id, Bucket.owner_id == current_user().id)
    )
    return first_or_404(stmt)
