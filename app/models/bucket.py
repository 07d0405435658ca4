from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import ResourceMixin, folded_key, keeps_folded


class Item(ResourceMixin, db.Model):
    __tablename__ = "items"
    # Each sort key has an index with the bucket in front and the id behind: a page, deep or not,
    # is an index range scan (the same holds for buckets and their owner).
    sort_keys = ("id", "name", "done", "created_at", "modified_at")
    list_scope = "bucket_id"

    bucket_id: Mapped[int] = mapped_column(ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    done: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Bucket(ResourceMixin, db.Model):
    __tablename__ = "buckets"
    sort_keys = ("id", "name", "created_at", "modified_at")
    list_scope = "owner_id"

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    name_key: Mapped[str] = folded_key("name", 300)
    # Kept by services.buckets in the transaction that adds or removes an item.
    item_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    items = relationship(Item, cascade="all, delete-orphan", passive_deletes=True, lazy="raise")


keeps_folded(Bucket, "name", "name_key")
# Names are unique per owner as people read them (NFC, case-folded), even under concurrent writes.
Index("uq_buckets_owner_id_name_key", Bucket.owner_id, Bucket.name_key, unique=True)
