"""Who is asking a request: the read API's ways to an `access.Identity`.

Two ways, one shape: HTTP Basic against a local user file for the embedded
default (`<data dir>/users.json`, scrypt password hashes), and OIDC bearer
tokens for deployments (signature checked against the issuer's JWKS, issuer and
audience checked, roles read from a claim). The roles and what they may do are
`casehistory.services.access`'s, shared with the CLI.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casehistory.services.access import Identity, Role

USERS_FILE = "users.json"


# --- The local user file -----------------------------------------------------------


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _password_matches(password: str, stored: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(_hash_password(password, bytes.fromhex(salt)), stored)


class LocalUsers:
    """Users, roles and scrypt password hashes in a JSON file (created 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._users: dict[str, dict[str, Any]] = {}
        self._checked: dict[tuple[str, str], bool] = {}
        """(user, SHA-256 of a password that matched)"""
        if path.exists():
            self._users = json.loads(path.read_text("utf-8")).get("users", {})

    def __bool__(self) -> bool:
        return bool(self._users)

    def add(self, name: str, roles: list[Role], password: str) -> None:
        self._users[name] = {
            "roles": [r.value for r in roles], "password": _hash_password(password)
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"users": self._users}, handle, indent=2)

    def authenticate(self, name: str, password: str) -> Identity | None:
        user = self._users.get(name)
        if user is None:
            return None
        # scrypt is slow on purpose; remember a match (only a match: wrong guesses must not
        # grow the memory) for this process's lifetime.
        key = (name, hashlib.sha256(password.encode()).hexdigest())
        if key not in self._checked:
            if not _password_matches(password, user["password"]):
                return None
            self._checked[key] = True
        return Identity(name, frozenset(Role(r) for r in user["roles"]), "local")


def create_initial_users(users: LocalUsers, passwords_file: Path) -> None:
    """One user per role, named after it, with a random password written 0600 beside."""
    lines = []
    for role in Role:
        password = secrets.token_urlsafe(12)
        users.add(role.value, [role], password)
        lines.append(f"{role.value}:{password}\n")
    descriptor = os.open(passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.writelines(lines)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header value."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
        name, colon, password = text.partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (name, password) if colon and name else None


# --- OIDC bearer tokens ------------------------------------------------------------


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_url: str
    roles_claim: str = "roles"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> OidcSettings | None:
        """From `CASEHISTORY_OIDC_ISSUER` (and `_AUDIENCE`, `_JWKS_URL`, `_ROLES_CLAIM`)."""
        env = os.environ if environ is None else environ
        issuer = env.get("CASEHISTORY_OIDC_ISSUER")
        if not issuer:
            return None
        return cls(
            issuer=issuer,
            audience=env.get("CASEHISTORY_OIDC_AUDIENCE", "casehistory"),
            jwks_url=env.get(
                "CASEHISTORY_OIDC_JWKS_URL", issuer.rstrip("/") + "/.well-known/jwks.json"
            ),
            roles_claim=env.get("CASEHISTORY_OIDC_ROLES_CLAIM", "roles"),
        )


class OidcVerifier:
    """Checks bearer tokens: signature by the issuer's JWKS, issuer, audience, expiry."""

    def __init__(self, settings: OidcSettings) -> None:
        import jwt

        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)

    def identity(self, token: str) -> Identity | None:
        import jwt

        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=["RS256", "ES256", "PS256"],
                audience=self.settings.audience, issuer=self.settings.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        granted = claims.get(self.settings.roles_claim) or []
        roles = frozenset(Role(r) for r in granted if r in {known.value for known in Role})
        name = str(claims.get("preferred_username") or claims["sub"])
        return Identity(name, roles, "oidc")
