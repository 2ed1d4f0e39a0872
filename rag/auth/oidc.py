"""Identity-provider tokens (OIDC access/ID tokens as JWTs), validated offline against a JWKS.

The JWKS comes from a file or an in-network URL (fetched at most every 5 minutes, and again when a
token names an unknown key id, so key rotation works). Only asymmetric algorithms on the
allow-list are accepted; issuer, audience, expiry and not-before are required and checked.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import jwt

from rag.auth.principal import ROLES, Principal
from rag.errors import ConfigError, InvalidTokenError


class OidcVerifier:
    def __init__(
        self,
        jwks: str,
        issuer: str | None,
        audience: str | None,
        algorithms: list[str],
        *,
        groups_claim: str = "groups",
        role_claim: str = "role",
        name_claim: str = "sub",
        leeway_s: float = 30.0,
        refresh_s: float = 300.0,
    ) -> None:
        if not issuer or not audience:
            raise ConfigError("RAG_OIDC_JWKS needs RAG_OIDC_ISSUER and RAG_OIDC_AUDIENCE")
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.groups_claim, self.role_claim, self.name_claim = groups_claim, role_claim, name_claim
        self.leeway_s = leeway_s
        self.refresh_s = refresh_s
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> OidcVerifier | None:
        if not settings.oidc_jwks:
            return None
        return cls(
            settings.oidc_jwks,
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.oidc_algorithms,
            groups_claim=settings.oidc_groups_claim,
            role_claim=settings.oidc_role_claim,
            name_claim=settings.oidc_name_claim,
            leeway_s=settings.oidc_leeway_s,
        )

    def _load(self) -> None:
        if self.jwks.startswith(("https://", "http://")):
            data = httpx.get(self.jwks, timeout=5.0, trust_env=False).raise_for_status().json()
        else:
            data = json.loads(Path(self.jwks).read_text())
        keys = {}
        for entry in data.get("keys", []):
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type this library cannot use is simply not trusted
            keys[entry.get("kid")] = key
        self._keys, self._loaded_at = keys, time.monotonic()

    def _key(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            stale = time.monotonic() - self._loaded_at > self.refresh_s
            if stale or kid not in self._keys:
                try:
                    self._load()
                except (OSError, ValueError, httpx.HTTPError) as exc:
                    if not self._keys:
                        raise InvalidTokenError("identity provider keys unavailable") from exc
            key = (
                self._keys.get(kid)
                if kid is not None
                else (next(iter(self._keys.values())) if len(self._keys) == 1 else None)
            )
        if key is None:
            raise InvalidTokenError("token signed with an unknown key")
        return key

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("malformed token") from exc
        if header.get("alg") not in self.algorithms:
            raise InvalidTokenError("token algorithm not allowed")
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud"], "verify_nbf": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidTokenError("token not valid yet") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"invalid token: {type(exc).__name__}") from exc
        name = claims.get(self.name_claim)
        role = claims.get(self.role_claim, "employee")
        groups = claims.get(self.groups_claim, [])
        if not isinstance(name, str) or not name:
            raise InvalidTokenError(f"token has no '{self.name_claim}' claim")
        if role not in ROLES:
            raise InvalidTokenError("token carries an unknown role")
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise InvalidTokenError(f"'{self.groups_claim}' claim must be a list of strings")
        return Principal(name=f"oidc:{name}", role=role, groups=tuple(sorted(set(groups))), via="oidc")
