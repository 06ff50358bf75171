"""OIDC bearer tokens: a real server checks them against an issuer's JWKS on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fixtures_serve import AS_OF, Served, populate, start_server, stop_server

ISSUER = "https://login.kommune.example/realms/casehistory"
AUDIENCE = "casehistory"


def _key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Any]]:
    """A server trusting one signing key, published as a JWKS by a local issuer stand-in."""
    key = _key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    issuer = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=issuer.serve_forever, daemon=True).start()
    data_dir = Path(tmp_path_factory.mktemp("oidc"))
    env = {
        "CASEHISTORY_DATA_DIR": str(data_dir), "CASEHISTORY_PSEUDONYM_KEY": "ef" * 32,
        "CASEHISTORY_OIDC_ISSUER": ISSUER, "CASEHISTORY_OIDC_AUDIENCE": AUDIENCE,
        "CASEHISTORY_OIDC_JWKS_URL": f"http://127.0.0.1:{issuer.server_port}/jwks",
    }
    population, report = populate(env, citizens=40)
    url, process = start_server(env, data_dir)
    try:
        yield Served(url, data_dir, env, population, report, process), key
    finally:
        stop_server(process)
        issuer.shutdown()


def token(key: Any, roles: list[str], **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "u-4711", "preferred_username": "kim",
               "iat": now, "exp": now + 300, "roles": roles, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def get(served: Served, path: str, bearer: str) -> int:
    return served.request(path, role=None, headers={"Authorization": f"Bearer {bearer}"})[0]


def test_a_valid_token_is_an_identity_with_its_roles(oidc: tuple[Served, Any]) -> None:
    served, key = oidc
    path = f"/api/v1/headline?as_of={AS_OF}"
    assert get(served, path, token(key, ["analyst"])) == 200
    assert get(served, path, token(key, ["operator"])) == 403
    refused = served.access_log()[-1]
    assert (refused["kind"], refused["who"], refused["roles"]) == ("refused", "kim", ["operator"])
    assert get(served, "/metrics", token(key, ["operator"])) == 200


def test_a_token_that_does_not_hold_is_no_identity(oidc: tuple[Served, Any]) -> None:
    served, key = oidc
    path = f"/api/v1/headline?as_of={AS_OF}"
    assert get(served, path, token(_key(), ["analyst"])) == 401  # signed by another key
    assert get(served, path, token(key, ["analyst"], aud="someone-else")) == 401
    assert get(served, path, token(key, ["analyst"], iss="https://elsewhere.example")) == 401
    assert get(served, path, token(key, ["analyst"], exp=int(time.time()) - 60)) == 401
    assert get(served, path, "not-a-token") == 401
