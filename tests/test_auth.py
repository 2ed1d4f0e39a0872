"""Route x role matrix: every route with every role, anonymous, revoked keys and bad tokens."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from api.app import create_app

from .helpers import HANDBOOK, bearer, copy_tree, make_user, run_job

# (method, path, body) for every route; the matrix test checks this list covers the whole app
ROUTES = {
    ("GET", "/openapi.json"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): None,
    ("POST", "/v1/ingest/jobs"): {"path": "/nonexistent"},
    ("GET", "/v1/ingest/jobs/{job_id}"): None,
    ("POST", "/v1/search"): {"query": "vacation"},
    ("POST", "/v1/query"): {"question": "How many vacation days?"},
    ("GET", "/v1/models"): None,
    ("POST", "/v1/chat/completions"): {"model": "private-rag", "messages": [{"role": "user", "content": "vacation?"}]},
    ("POST", "/v1/users"): {"name": "new-user", "role": "employee"},
    ("GET", "/v1/users"): None,
    ("PATCH", "/v1/users/{name}"): {"groups": ["x"]},
    ("POST", "/v1/users/{name}/keys"): {},
    ("GET", "/v1/keys"): None,
    ("DELETE", "/v1/keys/{key_id}"): None,
    ("GET", "/v1/documents"): None,
    ("PATCH", "/v1/documents/{document_id}"): {"label": "internal"},
    ("POST", "/v1/route/explain"): {"question": "How many vacation days?"},
    ("GET", "/v1/audit/records"): None,
    ("GET", "/v1/audit/records/{seq}"): None,
    ("GET", "/v1/audit/export"): None,
    ("GET", "/v1/audit/verify"): None,
    # the web app's pages (api/web): the same capabilities as the API routes beside them
    ("GET", "/"): None,
    ("POST", "/signout"): None,
    ("GET", "/ask"): None,
    ("GET", "/search"): None,
    ("GET", "/documents"): None,
    ("GET", "/passages/{chunk_id}"): None,
    ("GET", "/audit"): None,
    ("GET", "/audit/{seq}"): None,
    ("GET", "/admin/documents"): None,
    ("POST", "/v1/feedback"): {"request_id": "0123abcd", "rating": "up"},
    ("GET", "/v1/feedback"): None,
    ("GET", "/admin/feedback"): None,
    ("GET", "/admin/users"): None,
    ("GET", "/admin/ingest"): None,
    ("GET", "/admin/routing"): None,
    ("GET", "/admin/status"): None,
    # conversations kept per user (api/conversation_routes.py) and their page
    ("GET", "/v1/conversations"): None,
    ("POST", "/v1/conversations"): {},
    ("GET", "/v1/conversations/{conversation_id}"): None,
    ("PATCH", "/v1/conversations/{conversation_id}"): {"title": "renamed"},
    ("DELETE", "/v1/conversations/{conversation_id}"): None,
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"question": "How many vacation days?"},
    ("GET", "/ask/{conversation_id}"): None,
    ("GET", "/v1/embedders"): None,
    ("GET", "/v1/embedders/{model_id}"): None,
    ("POST", "/v1/embedders/{model_id}/promote"): {},
    ("POST", "/v1/embedders/rollback"): None,
    ("POST", "/v1/embedders/{model_id}/retire"): None,
}
PUBLIC = {("GET", "/healthz"), ("GET", "/signin"), ("POST", "/signin")}  # the sign-in page is audited, though
PUBLIC |= {("GET", "/signin/oidc"), ("GET", "/signin/oidc/callback")}  # the way to the identity provider and back
ASK = {"/v1/search", "/v1/query", "/v1/models", "/v1/chat/completions", "/v1/documents"}
ASK |= {"/ask", "/search", "/documents", "/passages/{chunk_id}"}
CONVERSATIONS = {p for _, p in ROUTES if p.startswith(("/v1/conversations", "/ask/"))}  # every method: ask
AUDIT = {p for _, p in ROUTES if p.startswith(("/v1/audit", "/audit"))}
DOCS = {"/openapi.json", "/", "/signout"}  # every signed-in role


def allowed(role: str, method: str, path: str) -> bool:
    if path in DOCS:
        return True
    if path in AUDIT:
        return role == "auditor"
    if path in CONVERSATIONS:
        return role in ("employee", "admin")
    if (path in ASK and not (method == "PATCH")) or (method, path) == ("POST", "/v1/feedback"):
        return role in ("employee", "admin")
    return role == "admin"


def all_routes(app) -> set[tuple[str, str]]:
    found = set()

    def walk(routes):
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            elif hasattr(r, "methods") and r.methods:
                found.update((m, r.path) for m in r.methods if m not in ("HEAD", "OPTIONS"))

    walk(app.routes)
    return found


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(private, kid: str) -> dict:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {"keys": [{**public, "kid": kid, "alg": "RS256", "use": "sig"}]}


ISSUER, AUDIENCE = "https://idp.example.internal", "private-rag"


def token(private, kid="k1", **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "dana",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "groups": ["everyone"],
        "role": "employee",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def matrix_app(settings, db, fake_embedder, tmp_path):
    run_job(settings, db, fake_embedder, copy_tree(HANDBOOK, tmp_path / "hb"), groups=["everyone"])
    idp = rsa_key()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(jwks_of(idp, "k1")))
    s = settings.model_copy(
        update={
            "generator": "extractive",
            "oidc_jwks": str(jwks),
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "auth_failures_per_minute": 10_000,  # the matrix sends hundreds of refused requests on purpose
        }
    )
    app = create_app(s, embedder=fake_embedder)
    keys = {role: make_user(s, f"{role}1", role) for role in ("employee", "admin", "auditor")}
    return app, keys, idp


def _code(r) -> str | None:
    try:
        return r.json().get("error", {}).get("code")
    except (ValueError, AttributeError):
        return None


def _call(client, method, path, body, headers):
    path = path.format(
        job_id=1, name="employee1", key_id=999, document_id=1, seq=1, chunk_id=1, conversation_id=1, model_id=999
    )
    return client.request(method, path, json=body, headers=headers)


def test_every_route_answers_401_or_403_exactly_where_expected(matrix_app):
    app, keys, idp = matrix_app
    client = TestClient(app, raise_server_exceptions=False)
    assert all_routes(app) - PUBLIC == set(ROUTES), "ROUTES must list every route of the app"
    assert client.get("/healthz").status_code == 200
    other_idp = rsa_key()
    refused = {
        "anonymous": {},
        "garbage": bearer("not-a-key"),
        "unknown key": bearer("rag_" + "x" * 43),
        "expired token": bearer(token(idp, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        "not yet valid": bearer(token(idp, nbf=int(time.time()) + 3600)),
        "mis-signed token": bearer(token(other_idp)),
        "wrong audience": bearer(token(idp, aud="another-app")),
        "wrong issuer": bearer(token(idp, iss="https://evil.example")),
        "alg none": bearer(
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60, "iat": int(time.time())},
                None,
                algorithm="none",
            )
        ),
        "HS256 with the public key": bearer(
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60, "iat": int(time.time())},
                "secret",
                algorithm="HS256",
                headers={"kid": "k1"},
            )
        ),
    }
    for (method, path), body in ROUTES.items():
        for who, headers in refused.items():
            r = _call(client, method, path, body, headers)
            assert r.status_code == 401, (who, method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
        for role, key in keys.items():
            r = _call(client, method, path, body, bearer(key))
            if allowed(role, method, path):
                assert r.status_code != 401 and _code(r) != "forbidden", (role, method, path, r.text)
            else:
                assert r.status_code == 403 and _code(r) == "forbidden", (role, method, path, r.status_code)
        for role in ("employee", "admin", "auditor"):
            r = _call(client, method, path, body, bearer(token(idp, role=role, sub=f"sso-{role}")))
            if allowed(role, method, path):
                assert r.status_code != 401 and _code(r) != "forbidden", ("oidc", role, method, path, r.text)
            else:
                assert r.status_code == 403 and _code(r) == "forbidden", ("oidc", role, method, path)


def test_revoked_key_and_disabled_user_are_refused_on_the_next_request(matrix_app):
    app, keys, _ = matrix_app
    client = TestClient(app, raise_server_exceptions=False)
    admin = bearer(keys["admin"])
    created = client.post("/v1/users", json={"name": "bob", "role": "employee", "groups": ["everyone"]}, headers=admin)
    assert created.status_code == 201
    issued = client.post("/v1/users/bob/keys", json={"name": "laptop"}, headers=admin).json()
    assert issued["key"].startswith("rag_")
    assert client.post("/v1/search", json={"query": "vacation"}, headers=bearer(issued["key"])).status_code == 200
    listed = client.get("/v1/keys", headers=admin).json()
    assert all(k["key"] is None for k in listed), "a key is shown once, at creation"
    assert next(k for k in listed if k["id"] == issued["id"])["last_used_at"] is not None
    assert client.delete(f"/v1/keys/{issued['id']}", headers=admin).json()["revoked_at"]
    assert client.post("/v1/search", json={"query": "vacation"}, headers=bearer(issued["key"])).status_code == 401
    second = client.post("/v1/users/bob/keys", headers=admin).json()["key"]
    assert client.patch("/v1/users/bob", json={"disabled": True}, headers=admin).json()["disabled"]
    assert client.post("/v1/search", json={"query": "vacation"}, headers=bearer(second)).status_code == 401


def test_token_claims_give_role_and_groups(matrix_app):
    app, _, idp = matrix_app
    client = TestClient(app, raise_server_exceptions=False)
    hits = client.post("/v1/search", json={"query": "vacation days"}, headers=bearer(token(idp))).json()["results"]
    assert hits, "an employee token in group 'everyone' reads the handbook"
    outsider = client.post(
        "/v1/search", json={"query": "vacation days"}, headers=bearer(token(idp, groups=["finance"]))
    ).json()["results"]
    assert outsider == []
    assert client.post("/v1/search", json={"query": "x"}, headers=bearer(token(idp, role="root"))).status_code == 401


def test_settings_refuse_weak_signing_secrets_outside_development(settings):
    from pydantic import SecretStr

    from rag.audit import resolve_key
    from rag.errors import ConfigError

    production = settings.model_copy(update={"mode": "production"})
    for weak in (None, "", "change-me", "short-secret"):
        with pytest.raises(ConfigError):
            resolve_key(
                production.model_copy(update={"audit_signing_key": SecretStr(weak) if weak is not None else None})
            )
    strong = production.model_copy(update={"audit_signing_key": SecretStr("k" * 40)})
    assert resolve_key(strong) == b"k" * 40
    with pytest.raises(ConfigError):
        create_app(production)


def test_jwks_from_an_in_network_url_and_key_rotation(tmp_path):
    """The identity provider's keys served over HTTP on loopback; a new kid triggers a re-read."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rag.auth.oidc import InvalidTokenError, OidcVerifier

    first, second = rsa_key(), rsa_key()
    served = {"body": json.dumps(jwks_of(first, "k1")).encode(), "hits": 0}

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):
            served["hits"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = OidcVerifier(f"http://127.0.0.1:{server.server_address[1]}/jwks.json", ISSUER, AUDIENCE, ["RS256"])
        assert verifier.verify(token(first)).name == "oidc:dana"
        assert verifier.verify(token(first)).groups == ("everyone",) and served["hits"] == 1  # cached
        served["body"] = json.dumps(jwks_of(second, "k2")).encode()  # the provider rotates its key
        assert verifier.verify(token(second, kid="k2", role="auditor")).role == "auditor"
        assert served["hits"] == 2
        with pytest.raises(InvalidTokenError):
            verifier.verify(token(rsa_key(), kid="k3"))
    finally:
        server.shutdown()
