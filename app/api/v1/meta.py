"""Service endpoints: the index pages and the health check."""

from flask import current_app, url_for

from app.api.blueprint import Blueprint
from app.database import database_is_reachable
from app.errors import APIError
from app.fields import HealthSchema, IndexSchema

root = Blueprint("root", __name__, description="Index")
blp = Blueprint("service", __name__, description="Index and health")

# The index pages link to what the routes name in `index_link` (app.http.Blueprint.route), then to these.
SERVICE_LINKS = {"health": "service.health", "openapi": "api-docs.openapi_json", "docs": "docs.page"}


def index_links(blueprints):
    """Link name -> endpoint: what `blueprints` name (in their order), then the service's own."""
    named = {name: f"{blp.name}.{endpoint}" for blp in blueprints for name, endpoint in blp.index_links.items()}
    return {**named, **SERVICE_LINKS}


def _index():
    config = current_app.config
    return {
        "success": True,
        "name": config["API_TITLE"],
        "version": config["API_VERSION"],
        "links": {name: url_for(endpoint) for name, endpoint in current_app.extensions["index_links"].items()},
    }


@root.route("/", methods=["GET"], operation_ids={"get": "getIndex"})
@root.response(200, IndexSchema)
def index():
    """Index of the API with links."""
    return _index()


@blp.route("", methods=["GET"], operation_ids={"get": "getV1Index"})
@blp.response(200, IndexSchema)
def v1_index():
    """Index of version 1 with links."""
    return _index()


@blp.route("/health", methods=["GET"], operation_ids={"get": "getHealth"})
@blp.response(200, HealthSchema)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def health():
    """Liveness and database reachability."""
    if not database_is_reachable():
        raise APIError(503, "Database unreachable")
    return {"success": True, "status": "ok", "database": "ok"}
