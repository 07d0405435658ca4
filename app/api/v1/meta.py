"""Service endpoints: the index pages and the health check."""

from flask import current_app
from sqlalchemy import text

from app.errors import APIError
from app.extensions import db
from app.http import Blueprint

blp = Blueprint("service", __name__, description="Index and health")

COLLECTIONS = {
    "register": "/v1/auth/register",
    "login": "/v1/auth/login",
    "me": "/v1/auth/me",
    "users": "/v1/users",
    "buckets": "/v1/buckets",
    "actors": "/v1/actors",
    "movies": "/v1/movies",
    "images": "/v1/images",
}


def _index():
    return {
        "success": True,
        "name": current_app.config["API_TITLE"],
        "version": current_app.config["API_VERSION"],
        "links": {
            **COLLECTIONS,
            "health": "/v1/health",
            "openapi": "/v1/openapi.json",
            "docs": "/docs",
        },
    }


@blp.route("/", methods=["GET"])
@blp.response(200)
def root():
    """Index of the API with links."""
    return _index()


@blp.route("/v1", methods=["GET"])
@blp.response(200)
def v1_index():
    """Index of version 1 with links."""
    return _index()


@blp.route("/v1/health", methods=["GET"])
@blp.response(200)
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def health():
    """Liveness and database reachability."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        raise APIError(503, "Database unreachable") from None
    return {"success": True, "status": "ok", "database": "ok"}
