"""OpenAPI notes that decorators attach to a view, for flask-smorest to render."""

from copy import deepcopy


def document(wrapper, *, parameters=(), responses=None, success_headers=None):
    """Add header `parameters`, `responses` ({status: component name or response doc})
    and headers of the success answer (201 for POST, else 200) to `wrapper`'s doc."""
    doc = deepcopy(getattr(wrapper, "_apidoc", {}))
    manual = doc.setdefault("manual_doc", {})
    if parameters:
        manual["parameters"] = [*manual.get("parameters", []), *parameters]
    if success_headers:
        status = 201 if wrapper.__name__ == "post" else 200
        manual.setdefault("responses", {}).setdefault(status, {}).setdefault("headers", {}).update(success_headers)
    documented = doc.setdefault("response", {}).setdefault("responses", {})
    for status, response in (responses or {}).items():
        if isinstance(response, dict):
            response = {"content_type": None, **response}
        documented.setdefault(status, []).append(response)
    wrapper._apidoc = doc
    return wrapper
