"""The role -> permissions table of the contract, in one place."""

ASSISTANT = frozenset({"get:actors", "get:movies", "get:images"})
DIRECTOR = ASSISTANT | {"post:actors", "patch:actors", "delete:actors", "patch:movies"}
PRODUCER = DIRECTOR | {"post:movies", "delete:movies"}
ADMIN = PRODUCER | {"post:images", "patch:images", "delete:images", "manage:users"}

ROLE_PERMISSIONS = {
    "user": frozenset({"get:images"}),
    "casting_assistant": ASSISTANT,
    "casting_director": DIRECTOR,
    "executive_producer": PRODUCER,
    "admin": ADMIN,
}
ROLES = tuple(ROLE_PERMISSIONS)
PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())
DEFAULT_ROLE = "user"
ADMIN_ROLE = "admin"


def permissions_for(role):
    return sorted(ROLE_PERMISSIONS.get(role, ()))
