"""Buckets and items of one owner: another user's are indistinguishable from none.

Each bucket's `item_count` and each user's `bucket_count` change in the transaction
that adds or removes the rows they count; each user's `buckets_revision` in every
transaction that writes their buckets.

Lock order (PostgreSQL): a write of an existing bucket or item locks its row first (the view's
`for_write`), then the owner's row (`_buckets_changed`) or the bucket's (`bump`); a create locks
the owner's row, or the bucket's. An item's delete locks its bucket before the item
(`locked_bucket_id`), as the bucket's delete does (it takes its items along): no cycle, so no
deadlock between them.
"""

from sqlalchemy import bindparam, select, update

from app.auth import MSG_INVALID
from app.errors import not_found, unauthorized
from app.extensions import db
from app.models import Bucket, Item, User
from app.services.crud import bump, delete_counted, flush_or_conflict, update_or_conflict

DUPLICATE_BUCKET = "You already have a bucket with this name"


# The hot lookups are built once, with parameters: composing a statement costs more
# Python than running it (bench/results/profile-one.txt).
OWNED_BUCKET = select(Bucket).where(Bucket.id == bindparam("bucket_id"), Bucket.owner_id == bindparam("owner_id"))
LOCKED_BUCKET_ID = OWNED_BUCKET.with_only_columns(Bucket.id).with_for_update(key_share=True)
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


def owned_bucket_id(bucket_id, owner):
    """The id of `owner`'s bucket `bucket_id` as a scalar subquery (NULL if it is another's): the
    scope of an item written through its bucket (`for_write(ITEM, item_id, bucket_id=...)`)."""
    return select(Bucket.id).where(Bucket.id == bucket_id, Bucket.owner_id == owner.id).scalar_subquery()


def locked_bucket_id(bucket_id, owner):
    """The id of `owner`'s bucket `bucket_id`, its row locked as an item's delete will change it
    (FOR NO KEY UPDATE, what `bump` takes): the scope of that delete. 404 if it is not theirs."""
    return _one_or_404(LOCKED_BUCKET_ID, bucket_id=bucket_id, owner_id=owner.id)


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


def _buckets_changed(owner_id, count_by=0):
    """The owner's buckets change in this transaction: a new revision (their list's cached totals
    are no longer used), and `count_by` more or fewer of them. One UPDATE of the owner's row.

    Every writer of a user's buckets runs it before writing a bucket: they take turns on the
    owner's row, and none of them waits there while holding a bucket's name.
    How many rows it changed: 0 if the owner has been deleted."""
    changes = {User.buckets_revision: User.buckets_revision + 1}
    if count_by:
        changes[User.bucket_count] = User.bucket_count + count_by
    return db.session.execute(update(User).where(User.id == owner_id).values(changes)).rowcount


def create_bucket(owner, data):
    # The owner's row is locked from here to the commit: an account deletion waits for this bucket
    # (and takes it along), or went first and the owner is gone: its token is invalid, not a 409.
    if not _buckets_changed(owner.id, 1):
        raise unauthorized(MSG_INVALID)
    bucket = Bucket(owner_id=owner.id, **data)
    db.session.add(bucket)
    flush_or_conflict(DUPLICATE_BUCKET)
    return bucket


def update_bucket(bucket, data):
    _buckets_changed(bucket.owner_id)
    return update_or_conflict(bucket, data, DUPLICATE_BUCKET)


def delete_bucket(bucket):
    """Delete a bucket (locked by the caller); its items go with it (ON DELETE CASCADE)."""
    _buckets_changed(bucket.owner_id, -1)
    delete_counted(bucket)


def add_item(bucket, data):
    # The count's UPDATE also locks the bucket row until commit: a DELETE of the bucket
    # waits for it (and then takes the item along), or went first and the bucket is gone.
    if not bump(Bucket.item_count, bucket.id, 1):
        raise not_found()
    item = Item(bucket_id=bucket.id, **data)
    db.session.add(item)
    db.session.flush()
    return item


def delete_item(item):
    """Delete an item (locked by the caller) and count it out of its bucket."""
    bump(Bucket.item_count, item.bucket_id, -delete_counted(item))
