"""Where every URL is served: one module per resource under app/api/v1/, all under one prefix.

A new resource's module goes into V1_BLUEPRINTS: its routes, their operation ids and index links
come with it (CONTRIBUTING.md)."""

from app.api import docs, openapi
from app.api.v1 import actors, auth, buckets, images, items, meta, movies, users
from app.fields import MAX_ID
from app.http import IdConverter

V1_BLUEPRINTS = (meta, auth, users, buckets, items, actors, movies, images)


def register_routes(app, api):
    api.register_converter(IdConverter, lambda _converter: {"type": "integer", "minimum": 1, "maximum": MAX_ID})
    prefix = app.config["API_PREFIX"]
    api.register_blueprint(meta.root)
    for module in V1_BLUEPRINTS:
        api.register_blueprint(module.blp, url_prefix=prefix + (module.blp.url_prefix or ""))
    app.extensions["index_links"] = meta.index_links(module.blp for module in V1_BLUEPRINTS)
    app.register_blueprint(docs.blp)
    api.spec.path(
        rule=next(app.url_map.iter_rules(openapi.OPENAPI_ENDPOINT)),
        operations={
            "get": {
                "summary": "This OpenAPI document",
                "tags": ["service"],
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
                },
                "operationId": "getOpenapiJson",
            }
        },
    )
    openapi.register_security_schemes(api.spec, with_oidc=bool(app.config["OIDC_ISSUER"]))
    openapi.finish(api.spec)
