"""Who is calling: the client address used for rate limits and logs."""

from flask import request


def client_address():
    # ProxyFix (enabled by TRUSTED_PROXIES) has already rewritten remote_addr.
    return request.remote_addr or "unknown"
