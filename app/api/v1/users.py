"""/v1/users: account administration (manage:users)."""

from flask.views import MethodView
from sqlalchemy import select

from app.api.conditional import conditional, for_write
from app.api.lists import USERS
from app.api.responses import deleted, found, listed
from app.auth import current_user, requires_permission
from app.extensions import db
from app.fields import DeletedSchema
from app.http import Blueprint
from app.models import User
from app.schemas.auth import RoleChangeSchema, UserListResponse, UserResponse
from app.services import accounts

blp = Blueprint("users", __name__, url_prefix="/users", description="Account administration")


@blp.route("")
class Users(MethodView):
    @requires_permission("manage:users")
    @blp.arguments(USERS.args, location="query", error_status_code=400)
    @blp.response(200, UserListResponse)
    def get(self, args):
        """List accounts (q searches the e-mail, an external account's too; filter by role)."""
        return listed(USERS.page(select(User), args))


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
        accounts.lock_admins(current_user())  # first: the admins' rows, then the account's (every admin write)
        return found("user", accounts.change_role(for_write(User, user_id), data["role"]))

    @requires_permission("manage:users")
    @blp.response(200, DeletedSchema)
    @blp.alt_response(409, response="CONFLICT")
    @conditional
    def delete(self, user_id):
        """Delete an account with its buckets; its tokens stop working."""
        accounts.lock_admins(current_user())  # first: the admins' rows, then the account's (every admin write)
        accounts.delete_user(for_write(User, user_id))
        return deleted(user_id)
