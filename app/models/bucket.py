from sqlalchemy import Boolean, ForeignKey, Index, String, Text, func, select
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from app.extensions import db
from app.models.base import TimestampMixin


class Item(TimestampMixin, db.Model):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_bucket_id_created_at", "bucket_id", "created_at"),
        Index("ix_items_bucket_id_done", "bucket_id", "done"),
    )

    bucket_id: Mapped[int] = mapped_column(ForeignKey("buckets.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    done: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Bucket(TimestampMixin, db.Model):
    __tablename__ = "buckets"
    __table_args__ = (Index("ix_buckets_owner_id_created_at", "owner_id", "created_at"),)

    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    items = relationship(Item, cascade="all, delete-orphan", passive_deletes=True, lazy="raise")


# Names are unique per owner whatever their case, even under concurrent writes.
Index("uq_buckets_owner_id_lower_name", Bucket.owner_id, func.lower(Bucket.name), unique=True)

# A correlated subquery, so a page of buckets costs one query, not one per bucket.
Bucket.item_count = column_property(
    select(func.count(Item.id)).where(Item.bucket_id == Bucket.id).correlate_except(Item).scalar_subquery()
)
