"""The blueprint every resource module under app/api/v1/ builds its routes with.

flask-smorest's, with the API's body parser (app.http.StrictJsonParser), routes that declare their
OpenAPI operation ids (and their link on the index pages), and one decorator per kind of answer, so
that what always goes together is written once: `one` for a view that answers one resource (its
ETag with it), `deletes` for a deletion, `lists` for a page of a list; and `shows`, the whole GET
of a resource by its id.
"""

import flask_smorest

from app.api.conditional import conditional
from app.api.responses import found
from app.extensions import db
from app.fields import DeletedSchema
from app.http import StrictJsonParser


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictJsonParser()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.operation_ids = {}  # endpoint (within this blueprint) -> {method: operationId}
        self.index_links = {}  # link name -> endpoint (within this blueprint)

    def route(self, rule, *, operation_ids, index_link=None, **options):
        """flask-smorest's route, with `operation_ids`: {method: operationId} for each method it serves
        (`{"get": "listBuckets", "post": "createBucket"}`). Clients generated from the OpenAPI document
        are built on these names: they are declared here, never derived, and never change.
        `index_link` names the link to this route on the index pages (/ and /v1)."""
        register = super().route(rule, **options)

        def decorator(view):
            endpoint = options.get("endpoint", view.__name__)
            self.operation_ids[endpoint] = operation_ids
            if index_link:
                self.index_links[index_link] = endpoint
            return register(view)

        return decorator

    def arguments(self, schema, *args, **kwargs):
        """A schema class becomes one instance here: given a class, webargs builds one per request."""
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def one(self, resource, *, status=200, body=None, conflict=False, method=None):
        """A view that answers one `resource` (an app.fields.Resource) under its key, with its ETag
        (app.api.conditional): it reads `body` (a schema), answers `status`, and documents a 409 when
        `conflict` (a unique name). `method`: a function view's (a MethodView's is its name)."""
        return self._answers(resource, status, resource.response, body, conflict, method)

    def deletes(self, resource, *, conflict=False):
        """A view that deletes one `resource`: `{"success": true, "deleted": <id>}`, held to If-Match."""
        return self._answers(resource, 200, DeletedSchema, None, conflict)

    def lists(self, listing):
        """A view that answers a page of `listing` (an app.pagination.Listing), parsed from the query."""
        parse = self.arguments(listing.args, location="query", error_status_code=400)
        answer = self.response(200, listing.resource.list_response)
        return lambda view: parse(answer(view))

    def shows(self, resource, *, guard, summary):
        """The GET of one `resource` by the id its path names, for whoever passes `guard`
        (`requires_permission(...)`): the resource with its ETag, or 404. `summary` is its doc."""

        def get(_view, **path):
            (ident,) = path.values()
            return found(resource.key, db.get_or_404(resource.model, ident))

        get.__doc__ = summary
        return guard(self.one(resource)(get))

    def _answers(self, resource, status, schema, body, conflict, method=None):
        """What `@blp.arguments(body)`, `@blp.response(status, schema)`, `@blp.alt_response(409)`
        and `@conditional(resource, method)` written in that order would do."""

        def decorator(view):
            view = conditional(resource, method)(view)
            if conflict:
                view = self.alt_response(409, response="CONFLICT")(view)
            view = self.response(status, schema)(view)
            return self.arguments(body)(view) if body is not None else view

        return decorator
