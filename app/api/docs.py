"""GET /docs: Swagger UI from the swagger-ui-bundle package, served by the app itself (works offline)."""

from flask import Blueprint, current_app, render_template, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

blp = Blueprint("docs", __name__, url_prefix="/docs")

INIT_SCRIPT = """window.ui = SwaggerUIBundle({
  url: "%s",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: true
});
"""


@blp.route("", methods=["GET"])
def page():
    return render_template("docs.html", title=current_app.config["API_TITLE"])


@blp.route("/init.js", methods=["GET"])
def init():
    script = INIT_SCRIPT % url_for("api-docs.openapi_json")
    return current_app.response_class(script, mimetype="text/javascript")


@blp.route("/assets/<path:filename>", methods=["GET"])
def asset(filename):
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)
