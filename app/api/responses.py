"""Every success answer is shaped here: envelopes, 201 with Location, deletions, pages, tokens."""

from flask import url_for

from app.auth import ACCESS, token_lifetime


def found(key, obj):
    return {"success": True, key: obj}


def created(key, obj, endpoint, **values):
    """201 with the new resource and a Location built from its endpoint."""
    return found(key, obj), 201, {"Location": url_for(endpoint, **values)}


def deleted(obj_id):
    return {"success": True, "deleted": obj_id}


def listed(page):
    body = {"success": True, page.listing.key: page.items, "pagination": page.metadata()}
    return body, 200, {"Link": page.link_header()}


def tokens(pair, message):
    """The answer of a login, a registration, a refresh: `pair` is (access token, refresh token)."""
    access, refresh = pair
    return {
        "success": True,
        "message": message,
        "auth_token": access,
        "refresh_token": refresh,
        "expires_in": int(token_lifetime(ACCESS).total_seconds()),
        "token_type": "Bearer",
    }


def oauth_tokens(pair):
    """The OAuth2 token answer (RFC 6749 section 5.1) in our success envelope."""
    access, refresh = pair
    return {
        "success": True,
        "access_token": access,
        "token_type": "bearer",
        "expires_in": int(token_lifetime(ACCESS).total_seconds()),
        "refresh_token": refresh,
    }


def registered(user, pair):
    """201: the new account, logged in; Location names the account."""
    body = {**tokens(pair, "Successfully registered"), "user": user}
    return body, 201, {"Location": url_for("auth.me")}
