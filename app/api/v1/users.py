"""/v1/users: account administration (manage:users)."""

from flask.views import MethodView
from sqlalchemy import select

from app.api.conditional import check_if_match, conditional
from app.api.responses import deleted, found, listed
from app.auth import requires_permission
from app.extensions import db
from app.http import Blueprint
from app.models import User
from app.schemas.auth import USERS, RoleChangeSchema, UserListResponse, UserResponse
from app.schemas.common import DeletedSchema
from app.services import accounts

blp = Blueprint("users", __name__, url_prefix="/users", description="Account administration")


@blp.route("")
class Users(MethodView):
    @requires_permission("manage:users")
    @blp.arguments(USERS.args, location="query", error_status_code=400)
    @blp.response(200, UserListResponse)
    def get(self, args):
        """List accounts (q searches the e-mail, an external account's too; filter by role)."""
        stmt = select(User)
        if "role" in args:
            stmt = stmt.where(User.role == args["role"])
        return listed(USERS.page(stmt, args))


@blp.route("/<id:user_id>")
class UserDetail(MethodView):
    @requires_permission("manage:users")
    @blp.response(200, UserResponse)
    @conditional
    def get(self, user_id):
        """Get an account."""
        return found("user", db.get_or_404(User, user_id))

    @requires_permission("manage:users")
    @blp.arguments(RoleChangeSchema)
    @blp.response(200, UserResponse)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def patch(self, data, user_id):
        """Change an account's role (takes effect on its next request)."""
        user = check_if_match(db.get_or_404(User, user_id))
        accounts.change_role(user, data["role"])
        return found("user", user)

    @requires_permission("manage:users")
    @blp.response(200, DeletedSchema)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def delete(self, user_id):
        """Delete an account with its buckets; its tokens stop working."""
        accounts.delete_user(check_if_match(db.get_or_404(User, user_id)))
        return deleted(user_id)
