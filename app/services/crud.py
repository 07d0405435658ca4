"""Small pieces every resource's create/read/update/delete is made of."""

from sqlalchemy.exc import IntegrityError

from app.errors import conflict, invalid, not_found
from app.extensions import db


def first_or_404(stmt):
    found = db.session.scalars(stmt).first()
    if found is None:
        raise not_found()
    return found


def require_changes(data):
    """An empty PATCH is refused: it would silently do nothing."""
    if not data:
        raise invalid({"_schema": ["Provide at least one field to change."]})


def apply_changes(obj, data):
    for field, value in data.items():
        setattr(obj, field, value)


def commit_or_conflict(message):
    """Commit; a unique index refusing the write becomes a 409 with `message`.

    The index, not a prior SELECT, decides, so the rule holds under concurrency.
    """
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise conflict(message) from None


def insert_or_conflict(obj, message):
    db.session.add(obj)
    commit_or_conflict(message)
    return obj


def created(key, obj, location):
    return {"success": True, key: obj}, 201, {"Location": location}


def found(key, obj):
    return {"success": True, key: obj}


def deleted(obj_id):
    return {"success": True, "deleted": obj_id}


def delete_and_confirm(obj):
    obj_id = obj.id
    db.session.delete(obj)
    db.session.commit()
    return deleted(obj_id)
