"""OpenAPI notes that decorators leave on a view, for app.api.openapi to add to its operation.

A decorator (`conditional`, `idempotent`) calls `note(wrapper, ...)`: the notes travel outward with
every `functools.wraps` around it (which copies the wrapper's attributes), and the OpenAPI plugin
reads them from the view the route serves. They cost nothing per request, and use nothing of
flask-smorest's internals.
"""


def note(wrapper, *, parameters=(), responses=None, success_headers=None):
    """Note header `parameters`, `responses` ({status: component name or response doc}) and headers
    of the success answer on `wrapper` (a view function); returns it."""
    notes = {"parameters": list(parameters), "responses": responses or {}, "success_headers": success_headers or {}}
    wrapper.openapi_notes = (*getattr(wrapper, "openapi_notes", ()), notes)
    return wrapper


def notes_of(view):
    """The notes left on `view`, innermost decorator first."""
    return getattr(view, "openapi_notes", ())
