"""GET /docs: Swagger UI from the swagger-ui-bundle package, served by the app itself (works offline).

The page runs only its own files (Swagger UI's, and init.js and docs.css from docs_static/): its
Content-Security-Policy allows nothing else, no inline script or style, and no other host. A token
got with Authorize lives in the page's memory only (no persistAuthorization: nothing in the
browser's storage), so it is gone with the tab.
"""

from flask import Blueprint, current_app, render_template, send_from_directory
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("docs", __name__, url_prefix="/docs", static_folder="docs_static", static_url_path="/static")

# data: images are the icons inlined in Swagger UI's own stylesheet.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@blp.after_request
def content_security_policy(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@blp.route("", methods=["GET"])
def page():
    return render_template("docs.html", title=current_app.config["API_TITLE"])


@blp.route("/assets/<path:filename>", methods=["GET"])
def asset(filename):
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)
