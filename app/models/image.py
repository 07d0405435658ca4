from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import ResourceMixin, utcnow


class StoredFile(db.Model):
    """One row per content address in the store: the lock that orders writers and deleters of those bytes.

    A request that writes or deletes the bytes of a sha256 first locks this row (an upsert, which also
    takes SQLite's write lock), so a deleter's "no image refers to it any more" cannot race an upload.
    """

    __tablename__ = "stored_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class ImageTag(db.Model):
    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Image(ResourceMixin, db.Model):
    __tablename__ = "images"
    sort_keys = ("id", "title", "size_bytes", "created_at")

    title: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(50), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    # Content address: identical bytes share one stored file.
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True)
    tag_rows = relationship(
        ImageTag, order_by=ImageTag.position, cascade="all, delete-orphan", passive_deletes=True, lazy="joined"
    )

    @property
    def tags(self):
        return [row.tag for row in self.tag_rows]

    @tags.setter
    def tags(self, tags):
        self.tag_rows = [ImageTag(tag=tag, position=index) for index, tag in enumerate(tags)]
