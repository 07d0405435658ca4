"""A real OpenID Connect issuer's JWKS endpoint on loopback, for the OIDC tests.

It serves the public halves of keys generated with `cryptography` at
`<issuer>.well-known/jwks.json`, counts the fetches, can rotate or remove keys
and go down (connections refused), and signs tokens with its private keys.
"""

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/.well-known/jwks.json"
AUDIENCE = "https://api.test/v1"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        issuer = self.server.issuer
        if self.path != JWKS_PATH:
            self.send_error(404)
            return
        with issuer.lock:
            issuer.fetches += 1
            body = issuer.jwks_body()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class JwksServer:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}  # kid -> (private key, published)
        self.fetches = 0
        self.garbage = False  # serve a body that is not JSON
        self._server = None
        self.port = 0
        self.start()

    # -- the server ----------------------------------------------------------

    def start(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self._server.daemon_threads = True
        self._server.issuer = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        """Go down: connections are refused until start()."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def issuer(self):
        return f"http://127.0.0.1:{self.port}/"

    def settings(self, **overrides):
        """App settings for this issuer (the JWKS URL comes from the default)."""
        return {
            "OIDC_ISSUER": self.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_JWKS_MIN_REFETCH_SECONDS": 0,
            "OIDC_JWKS_TIMEOUT_SECONDS": 2,
            **overrides,
        }

    def jwks_body(self):
        if self.garbage:
            return b"<html>not json</html>"
        published = [self._public_jwk(kid, key) for kid, (key, shown) in self.keys.items() if shown]
        return json.dumps({"keys": published}).encode()

    @staticmethod
    def _public_jwk(kid, key):
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "RS256"}
        else:
            jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "ES256"}
        return jwk | {"kid": kid, "use": "sig"}

    # -- keys ----------------------------------------------------------------

    def add_key(self, kind="RSA", published=True):
        kid = uuid.uuid4().hex
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "RSA" else None
        key = key or ec.generate_private_key(ec.SECP256R1())
        with self.lock:
            self.keys[kid] = (key, published)
        return kid

    def publish(self, kid):
        with self.lock:
            self.keys[kid] = (self.keys[kid][0], True)

    def remove(self, kid):
        with self.lock:
            self.keys[kid] = (self.keys[kid][0], False)

    def private_key(self, kid):
        return self.keys[kid][0]

    # -- tokens --------------------------------------------------------------

    def claims(self, sub="auth0|alice", **changes):
        """Valid claims of an Auth0-like access token; a change of None drops the claim."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": [AUDIENCE, f"{self.issuer}userinfo"],
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
            "permissions": [],
        }
        claims.update(changes)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, kid, headers=None, **changes):
        key = self.private_key(kid)
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(self.claims(**changes), key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})
