"""Service endpoints: the index pages and the health check."""

from flask import current_app, url_for

from app.database import database_is_reachable
from app.errors import APIError
from app.fields import HealthSchema, IndexSchema
from app.http import Blueprint

root = Blueprint("root", __name__, description="Index")
blp = Blueprint("service", __name__, description="Index and health")

# Link name -> endpoint.
LINKS = {
    "register": "auth.register",
    "login": "auth.login",
    "me": "auth.me",
    "users": "users.Users",
    "buckets": "buckets.Buckets",
    "actors": "actors.Actors",
    "movies": "movies.Movies",
    "images": "images.Images",
    "health": "service.health",
    "openapi": "api-docs.openapi_json",
    "docs": "docs.page",
}


def _index():
    return {
        "success": True,
        "name": current_app.config["API_TITLE"],
        "version": current_app.config["API_VERSION"],
        "links": {name: url_for(endpoint) for name, endpoint in LINKS.items()},
    }


@root.route("/", methods=["GET"])
@root.response(200, IndexSchema)
def index():
    """Index of the API with links."""
    return _index()


@blp.route("", methods=["GET"])
@blp.response(200, IndexSchema)
def v1_index():
    """Index of version 1 with links."""
    return _index()


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def health():
    """Liveness and database reachability."""
    if not database_is_reachable():
        raise APIError(503, "Database unreachable")
    return {"success": True, "status": "ok", "database": "ok"}
