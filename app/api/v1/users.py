"""/v1/users: account administration (manage:users)."""

from flask.views import MethodView
from sqlalchemy import select

from app.api.blueprint import Blueprint
from app.api.conditional import for_write
from app.api.lists import USERS
from app.api.responses import deleted, found, listed
from app.auth import current_user, requires_permission
from app.models import User
from app.schemas.auth import USER, RoleChangeSchema
from app.services import accounts

blp = Blueprint("users", __name__, url_prefix="/users", description="Account administration")


@blp.route("", operation_ids={"get": "listUsers"}, index_link="users")
class Users(MethodView):
    @requires_permission("manage:users")
    @blp.lists(USERS)
    def get(self, args):
        """List accounts (q searches the e-mail, an external account's too; filter by role)."""
        return listed(USERS.page(select(User), args))


@blp.route("/<int:user_id>", operation_ids={"get": "getUser", "patch": "updateUser", "delete": "deleteUser"})
class UserDetail(MethodView):
    get = blp.shows(USER, guard=requires_permission("manage:users"), summary="Get an account.")

    @requires_permission("manage:users")
    @blp.one(USER, body=RoleChangeSchema, conflict=True)
    def patch(self, data, user_id):
        """Change an account's role (takes effect on its next request)."""
        accounts.lock_admins(current_user())  # first: the admins' rows, then the account's (every admin write)
        return found("user", accounts.change_role(for_write(USER, user_id), data["role"]))

    @requires_permission("manage:users")
    @blp.deletes(USER, conflict=True)
    def delete(self, user_id):
        """Delete an account with its buckets; its tokens stop working."""
        accounts.lock_admins(current_user())  # first: the admins' rows, then the account's (every admin write)
        accounts.delete_user(for_write(USER, user_id))
        return deleted(user_id)
