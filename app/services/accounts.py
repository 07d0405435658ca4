"""Accounts: registration, credentials, roles, and the last-admin rule."""

from sqlalchemy import func, select

from app.auth import hash_password, verify_password
from app.errors import conflict, invalid, unauthorized
from app.extensions import db
from app.models import User
from app.permissions import ADMIN_ROLE, DEFAULT_ROLE
from app.services.crud import insert_or_conflict

INVALID_CREDENTIALS = "Invalid email or password"
EMAIL_TAKEN = "Email already registered"


def normalize_email(email):
    return email.strip().lower()


def register(email, password, role=DEFAULT_ROLE):
    user = User(email=normalize_email(email), password_hash=hash_password(password), role=role)
    return insert_or_conflict(user, EMAIL_TAKEN)


def check_credentials(email, password):
    """The user whose credentials these are, or a 401 that says nothing more."""
    user = db.session.scalars(select(User).where(User.email == normalize_email(email))).first()
    if not verify_password(password, user.password_hash if user else None):
        raise unauthorized(INVALID_CREDENTIALS)
    return user


def check_current_password(user, password):
    if not verify_password(password, user.password_hash):
        raise invalid({"current_password": ["Incorrect password."]}, "Current password is incorrect")


def change_password(user, new_password):
    user.password_hash = hash_password(new_password)
    user.token_version += 1
    db.session.commit()


def _is_last_admin(user):
    if user.role != ADMIN_ROLE:
        return False
    admins = db.session.scalar(select(func.count(User.id)).where(User.role == ADMIN_ROLE))
    return admins <= 1


def change_role(user, role):
    if role != ADMIN_ROLE and _is_last_admin(user):
        raise conflict("Cannot demote the last admin")
    user.role = role
    db.session.commit()


def delete_user(user):
    if _is_last_admin(user):
        raise conflict("Cannot delete the last admin")
    db.session.delete(user)
    db.session.commit()
