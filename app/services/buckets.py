"""Buckets and items of one owner: another user's are indistinguishable from none.

Each bucket's `item_count` and each user's `bucket_count` change in the transaction
that adds or removes the rows they count.
"""

from sqlalchemy import bindparam, select

from app.errors import not_found
from app.extensions import db
from app.models import Bucket, Item, User
from app.services.crud import bump, commit_or_conflict, delete_counted

DUPLICATE_BUCKET = "You already have a bucket with this name"


# The hot lookups are built once, with parameters: composing a statement costs more
# Python than running it (bench/results/profile-one.txt).
OWNED_BUCKET = select(Bucket).where(Bucket.id == bindparam("bucket_id"), Bucket.owner_id == bindparam("owner_id"))
OWNED_ITEM = (
    select(Item)
    .join(Bucket, Bucket.id == Item.bucket_id)
    .where(Item.id == bindparam("item_id"), Item.bucket_id == bindparam("bucket_id"))
    .where(Bucket.owner_id == bindparam("owner_id"))
)


def _one_or_404(stmt, **params):
    found = db.session.scalars(stmt, params).first()
    if found is None:
        raise not_found()
    return found


def owned_bucket(bucket_id, owner):
    return _one_or_404(OWNED_BUCKET, bucket_id=bucket_id, owner_id=owner.id)


def owned_items(bucket_id, owner):
    """The items of a bucket of `owner` (none if it is another's): one statement, no bucket lookup."""
    return (
        select(Item)
        .join(Bucket, Bucket.id == Item.bucket_id)
        .where(Item.bucket_id == bucket_id, Bucket.owner_id == owner.id)
    )


def owned_item(bucket_id, item_id, owner):
    """An item, reached only through its own bucket, of `owner`."""
    return _one_or_404(OWNED_ITEM, item_id=item_id, bucket_id=bucket_id, owner_id=owner.id)


def create_bucket(owner, data):
    bump(User.bucket_count, owner.id, 1)
    bucket = Bucket(owner_id=owner.id, **data)
    db.session.add(bucket)
    commit_or_conflict(DUPLICATE_BUCKET)
    return bucket


def delete_bucket(bucket):
    """Delete a bucket; its items go with it (ON DELETE CASCADE)."""
    bump(User.bucket_count, bucket.owner_id, -delete_counted(bucket))
    db.session.commit()


def add_item(bucket, data):
    # The count's UPDATE also locks the bucket row until commit: a DELETE of the bucket
    # waits for it (and then takes the item along), or went first and the bucket is gone.
    if not bump(Bucket.item_count, bucket.id, 1):
        db.session.rollback()
        raise not_found()
    item = Item(bucket_id=bucket.id, **data)
    db.session.add(item)
    db.session.commit()
    return item


def delete_item(item):
    bump(Bucket.item_count, item.bucket_id, -delete_counted(item))
    db.session.commit()
