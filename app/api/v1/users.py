"""/v1/users: account administration (manage:users)."""

from flask.views import MethodView
from sqlalchemy import select

from app.auth import requires_permission
from app.http import Blueprint
from app.models import User
from app.pagination import paginate
from app.schemas.auth import (
    RoleChangeSchema,
    UserListArgs,
    UserListResponse,
    UserResponse,
)
from app.schemas.common import DeletedSchema
from app.services import accounts
from app.services.crud import deleted, first_or_404, found

blp = Blueprint("users", __name__, url_prefix="/v1/users", description="Account administration")

SORTABLE = {"id": User.id, "email": User.email, "role": User.role, "created_at": User.created_at}


def _user(user_id):
    return first_or_404(select(User).where(User.id == user_id))


@blp.route("")
class Users(MethodView):
    @requires_permission("manage:users")
    @blp.arguments(UserListArgs, location="query", error_status_code=400)
    @blp.response(200, UserListResponse)
    def get(self, args):
        """List accounts (q searches the e-mail; filter by role)."""
        stmt = select(User)
        if "role" in args:
            stmt = stmt.where(User.role == args["role"])
        return paginate(stmt, args, search=[User.email], sortable=SORTABLE, tie_breaker=User.id).respond("users")


@blp.route("/<id:user_id>")
class UserDetail(MethodView):
    @requires_permission("manage:users")
    @blp.response(200, UserResponse)
    def get(self, user_id):
        """Get an account."""
        return found("user", _user(user_id))

    @requires_permission("manage:users")
    @blp.arguments(RoleChangeSchema)
    @blp.response(200, UserResponse)
    @blp.alt_response(409, response="CONFLICT")
    def patch(self, data, user_id):
        """Change an account's role (takes effect on its next request)."""
        user = _user(user_id)
        accounts.change_role(user, data["role"])
        return found("user", user)

    @requires_permission("manage:users")
    @blp.response(200, DeletedSchema)
    @blp.alt_response(409, response="CONFLICT")
    def delete(self, user_id):
        """Delete an account with its buckets; its tokens stop working."""
        user = _user(user_id)
        accounts.delete_user(user)
        return deleted(user_id)
