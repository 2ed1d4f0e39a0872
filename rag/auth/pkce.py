"""Web sign-in through the identity provider: OIDC authorization-code flow with PKCE (RFC 7636).

It needs no setting beyond those of token login: the provider's endpoints come from its discovery
document (`RAG_OIDC_ISSUER` + /.well-known/openid-configuration, fetched in-network only, like
the JWKS), the app is a public client whose client id is `RAG_OIDC_AUDIENCE` (an ID token's
audience), and the ID token it gets back is checked by the same verifier as bearer tokens, so a
browser signs in as the same name, role and groups. Between the redirect out and the way back,
the state, the PKCE verifier and the nonce travel in a short-lived cookie sealed with an HMAC:
nobody can forge a login the browser did not start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from rag.errors import ConfigError, InvalidTokenError

LOGIN_TTL_S = 600  # from the redirect out to the way back
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


@dataclass(frozen=True)
class PendingLogin:
    state: str
    verifier: str
    nonce: str
    expires: float

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_login(now: float | None = None) -> PendingLogin:
    return PendingLogin(
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(48),
        secrets.token_urlsafe(24),
        (now or time.time()) + LOGIN_TTL_S,
    )


def seal(login: PendingLogin, key: bytes) -> str:
    body = base64.urlsafe_b64encode(json.dumps(vars(login), sort_keys=True).encode()).decode()
    return body + "." + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def unseal(value: str, key: bytes, state: str, now: float | None = None) -> PendingLogin:
    """The login this browser started, if the cookie is ours, unexpired and names this state."""
    body, _, mac = value.partition(".")
    if not body or not hmac.compare_digest(
        mac.encode(), hmac.new(key, body.encode(), hashlib.sha256).hexdigest().encode()
    ):
        raise InvalidTokenError("no sign-in was started in this browser: start again")
    try:
        login = PendingLogin(**json.loads(base64.urlsafe_b64decode(body)))
    except (ValueError, TypeError) as exc:
        raise InvalidTokenError("no sign-in was started in this browser: start again") from exc
    if login.expires < (now or time.time()):
        raise InvalidTokenError("the sign-in took too long: start again")
    if not hmac.compare_digest(login.state.encode(), state.encode()):
        raise InvalidTokenError("the sign-in does not match the one this browser started")
    return login


class Provider:
    """The identity provider's endpoints (discovered once) and the code exchange."""

    def __init__(self, issuer: str, client_id: str) -> None:
        self.issuer, self.client_id = issuer.rstrip("/"), client_id
        self._endpoints: Endpoints | None = None

    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            try:
                found = (
                    httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=_TIMEOUT_S, trust_env=False)
                    .raise_for_status()
                    .json()
                )
                self._endpoints = Endpoints(found["authorization_endpoint"], found["token_endpoint"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError("the identity provider's discovery document is unavailable") from exc
        return self._endpoints

    def authorize_url(self, login: PendingLogin, redirect_uri: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": login.challenge,
            "code_challenge_method": "S256",
        }
        return self.endpoints().authorization + "?" + urlencode(query)

    def exchange(self, code: str, login: PendingLogin, redirect_uri: str) -> str:
        """The ID token for an authorization code; the verifier proves this app asked for the code."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": login.verifier,
        }
        try:
            response = httpx.post(self.endpoints().token, data=form, timeout=_TIMEOUT_S, trust_env=False)
        except httpx.HTTPError as exc:
            raise ConfigError("the identity provider did not answer") from exc
        if response.status_code != 200:
            raise InvalidTokenError("the identity provider refused the sign-in")
        try:
            token = response.json()["id_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidTokenError("the identity provider sent no ID token") from exc
        if not isinstance(token, str):
            raise InvalidTokenError("the identity provider sent no ID token")
        return token
