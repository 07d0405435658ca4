"""Every model, imported here so Alembic and the app see the whole schema."""

from app.models.bucket import Bucket, Item
from app.models.casting import Actor, ActorTally, CatalogueCount, Movie, movie_actors
from app.models.idempotency import IdempotencyKey
from app.models.image import Image, ImageTag, StoredFile
from app.models.mail import MailToken, OutboxMail
from app.models.session import UserSession
from app.models.user import DeletedExternalAccount, RevokedToken, User

__all__ = [
    "Actor",
    "ActorTally",
    "Bucket",
    "CatalogueCount",
    "DeletedExternalAccount",
    "IdempotencyKey",
    "Image",
    "ImageTag",
    "Item",
    "MailToken",
    "Movie",
    "OutboxMail",
    "RevokedToken",
    "StoredFile",
    "User",
    "UserSession",
    "movie_actors",
]
