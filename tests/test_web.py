"""The web app's server side without a browser: sessions, CSRF, role pages, headers, the audit trail.

The browser-level flows are in test_web_browser.py; these pin the rules each layer enforces on its
own (a real database on both backends, the real app, the fake embedder over the shipped handbook).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.app import create_app
from rag import users
from rag.db.models import ApiKey, AuditRecord, Chunk, Document, WebSession

from .helpers import HANDBOOK, bearer, copy_tree, make_user, run_job

BASE = "http://127.0.0.1:8000"
HTML = {"Accept": "text/html"}


@pytest.fixture
def app_env(settings, db, fake_embedder, tmp_path):
    """The handbook (group everyone), one HR document (group hr), four users, a live app."""
    root = copy_tree(HANDBOOK, tmp_path / "handbook")
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "salaries.txt").write_text("Confidential salary bands for the zebra team are secret.\n")
    run_job(settings, db, fake_embedder, root, collection="handbook", groups=["everyone"])
    run_job(settings, db, fake_embedder, tmp_path / "hr", collection="hr", groups=["hr"])
    s = settings.model_copy(update={"generator": "extractive", "auth_failures_per_minute": 5})
    keys = {
        "alice": make_user(s, "alice", "employee", ("everyone",)),
        "ada": make_user(s, "ada", "admin", ()),
        "audra": make_user(s, "audra", "auditor", ()),
    }
    app = create_app(s, embedder=fake_embedder)
    return app, keys, db[1]


def signed_in(app, key: str, base: str = BASE) -> TestClient:
    client = TestClient(app, base_url=base, follow_redirects=False)
    r = client.post("/signin", data={"api_key": key}, headers={"Origin": base})
    assert r.status_code == 303 and r.headers["location"] == "/"
    page = client.get("/", follow_redirects=True)  # the role's start page
    client.csrf = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)
    return client


def records(factory) -> list[AuditRecord]:
    with factory() as s:
        return list(s.scalars(select(AuditRecord).order_by(AuditRecord.seq)))


def record_count(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord))


def test_sign_in_gives_a_hardened_cookie_and_stores_only_its_hash(app_env):
    app, keys, factory = app_env
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    r = client.post("/signin", data={"api_key": keys["alice"]})
    cookie = r.headers["set-cookie"]
    assert r.status_code == 303
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie and "Secure" not in cookie
    session_id = client.cookies["rag_session"]
    with factory() as s:
        stored = s.scalars(select(WebSession)).one()
    assert stored.id_hash == hashlib.sha256(session_id.encode()).hexdigest() and stored.via == "api_key"
    # behind https the cookie is Secure
    secure = TestClient(app, base_url="https://rag.example", follow_redirects=False)
    assert "Secure" in secure.post("/signin", data={"api_key": keys["alice"]}).headers["set-cookie"]
    # the sign-in is audited under the user's name, and neither key nor session id is written anywhere
    signin = [r for r in records(factory) if r.route == "/signin"]
    assert [(r.principal, r.status) for r in signin] == [("alice", 303), ("alice", 303)]
    dump = json.dumps([[r.question, r.answer, r.detail] for r in records(factory)])
    assert keys["alice"] not in dump and session_id not in dump
    page = client.get("/ask").text
    assert keys["alice"] not in page and session_id not in page


def test_a_wrong_key_is_refused_counted_and_audited(app_env):
    app, keys, factory = app_env
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    r = client.post("/signin", data={"api_key": "rag_not-a-real-key"}, headers=HTML)
    assert r.status_code == 401 and "not accepted" in r.text and "rag_session" not in r.headers.get("set-cookie", "")
    assert records(factory)[-1].status == 401 and records(factory)[-1].principal is None
    for _ in range(5):
        client.post("/signin", data={"api_key": "rag_wrong"})
    assert client.post("/signin", data={"api_key": keys["alice"]}).status_code == 429  # rate limited per address


def test_cookie_requests_need_the_csrf_token_and_our_origin(app_env):
    app, keys, _ = app_env
    client = signed_in(app, keys["alice"])
    body = {"query": "vacation days"}
    assert client.post("/v1/search", json=body).status_code == 403  # no token
    assert client.post("/v1/search", json=body, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    evil = {"X-CSRF-Token": client.csrf, "Origin": "https://evil.example"}
    r = client.post("/v1/search", json=body, headers=evil)
    assert r.status_code == 403 and r.json()["error"]["message"] == "cross-site request refused"
    cross = {"X-CSRF-Token": client.csrf, "Sec-Fetch-Site": "cross-site"}
    assert client.post("/v1/search", json=body, headers=cross).status_code == 403
    ok = client.post("/v1/search", json=body, headers={"X-CSRF-Token": client.csrf, "Origin": BASE})
    assert ok.status_code == 200 and ok.json()["results"]
    proxied = {"X-CSRF-Token": client.csrf, "Origin": "https://rag.example", "X-Forwarded-Host": "rag.example"}
    assert client.post("/v1/search", json=body, headers=proxied).status_code == 200  # behind a reverse proxy
    # GETs change nothing and need no token; bearer callers are not cookie-borne and need none
    assert client.get("/v1/documents").status_code == 200
    api = TestClient(app, base_url=BASE, headers=bearer(keys["alice"]))
    assert api.post("/v1/search", json=body, headers={"Origin": "https://evil.example"}).status_code == 200
    # a cross-site sign-in (login CSRF) is refused
    other = TestClient(app, base_url=BASE, follow_redirects=False)
    r = other.post("/signin", data={"api_key": keys["alice"]}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "rag_session" not in other.cookies
    # a form post carries the token as a field
    r = client.post("/signout", data={"csrf_token": "wrong"}, headers={"Origin": BASE})
    assert r.status_code == 403
    crowded = "&".join(f"f{n}=x" for n in range(50)) + f"&csrf_token={client.csrf}"
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": BASE}
    assert client.post("/signout", content=crowded, headers=form).status_code == 403  # bounded parsing, no 500
    assert other.post("/signin", content=crowded, headers=form).status_code == 401


def test_sign_out_ends_the_session(app_env):
    app, keys, _ = app_env
    client = signed_in(app, keys["alice"])
    old = client.cookies["rag_session"]
    r = client.post("/signout", data={"csrf_token": client.csrf}, headers={"Origin": BASE})
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    replay = TestClient(app, base_url=BASE, follow_redirects=False, cookies={"rag_session": old})
    assert replay.get("/v1/documents").status_code == 401
    r = replay.get("/ask", headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == "/signin"


@pytest.mark.parametrize("how", ["idle", "absolute", "disabled", "revoked"])
def test_sessions_end_when_idle_expired_or_their_user_or_key_goes(app_env, how):
    app, keys, factory = app_env
    client = signed_in(app, keys["alice"])
    assert client.get("/v1/documents").status_code == 200
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with factory() as s:
        if how == "idle":  # default idle limit: 30 minutes
            s.execute(update(WebSession).values(last_seen_at=long_ago))
        elif how == "absolute":
            s.execute(update(WebSession).values(expires_at=long_ago))
        elif how == "disabled":
            users.update_user(s, "alice", actor=users.OPERATOR, disabled=True)
        else:
            key = s.scalars(select(ApiKey)).first()
            users.revoke_key(s, key.id, actor=users.OPERATOR)
        s.commit()
    r = client.get("/v1/documents")
    assert r.status_code == 401 and r.json()["error"]["message"] == "the session has ended: sign in again"


def test_each_role_gets_only_its_pages(app_env):
    app, keys, factory = app_env
    allowed = {
        "alice": {"/ask", "/search", "/documents"},
        "ada": {
            "/ask",
            "/search",
            "/documents",
            "/admin/documents",
            "/admin/ingest",
            "/admin/routing",
            "/admin/status",
            "/admin/users",
            "/admin/feedback",
        },
        "audra": {"/audit"},
    }
    every = {
        "/ask",
        "/search",
        "/documents",
        "/admin/documents",
        "/admin/ingest",
        "/admin/routing",
        "/admin/status",
        "/admin/users",
        "/admin/feedback",
        "/audit",
        "/audit/1",
    }
    for user, pages in allowed.items():
        client = signed_in(app, keys[user])
        for path in every:
            before = record_count(factory)
            r = client.get(path, headers=HTML)
            want = 200 if path in pages or (path == "/audit/1" and user == "audra") else 403
            assert r.status_code == want, (user, path)
            assert r.headers["content-type"].startswith("text/html")
            assert record_count(factory) == before + 1  # exactly one audit record per page view
            if want == 403:
                assert "403" in r.text and "may not use this route" in r.text
        nav = client.get("/", follow_redirects=True, headers=HTML).text
        for path in every - pages - {"/audit/1"}:
            assert f'href="{path}"' not in nav, (user, path)
    assert records(factory)[-1].principal == "audra" and records(factory)[-1].detail["via"] == "session"


def test_without_a_session_pages_send_to_sign_in_and_the_api_says_401(app_env):
    app, _, factory = app_env
    anonymous = TestClient(app, base_url=BASE, follow_redirects=False)
    for path in ("/", "/ask", "/audit", "/admin/documents", "/passages/1"):
        r = anonymous.get(path, headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == "/signin", path
        assert anonymous.get(path).status_code == 401
    before = record_count(factory)
    for asset in ("/static/app.js", "/static/app.css"):
        r = anonymous.get(asset)
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    assert record_count(factory) == before  # package assets, like /healthz: no record
    for escape in ("/static/../web/routes.py", "/static/%2e%2e/routes.py", "/static/..%2froutes.py"):
        r = anonymous.get(escape)
        assert r.status_code in (401, 404) and "def build_router" not in r.text, escape
    r = anonymous.get("/signin")
    assert r.status_code == 200 and records(factory)[-1].route == "/signin"  # public, but audited


def test_pages_carry_the_security_headers(app_env):
    app, keys, _ = app_env
    client = signed_in(app, keys["alice"])
    for path in ("/signin", "/ask", "/audit"):
        r = client.get(path, headers=HTML)
        csp = r.headers["content-security-policy"]
        script_src = re.search(r"script-src ([^;]*)", csp).group(1)
        assert script_src == "'self'" and "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
        assert "<script>" not in r.text and " style=" not in r.text  # nothing inline for the CSP to forbid


def test_citation_previews_show_only_readable_passages(app_env):
    app, keys, factory = app_env
    with factory() as s:
        handbook = s.scalars(select(Chunk.id).join(Document).where(Document.path.like("%time-off.md"))).first()
        secret = s.scalars(select(Chunk.id).join(Document).where(Document.path.like("%salaries.txt"))).first()
    alice = signed_in(app, keys["alice"])
    r = alice.get(f"/passages/{handbook}")
    assert r.status_code == 200 and "vacation" in r.json()["text"] and len(r.json()["document_sha256"]) == 64
    hidden, missing = alice.get(f"/passages/{secret}"), alice.get("/passages/999999")
    assert hidden.status_code == missing.status_code == 404
    assert "salary" not in hidden.text and hidden.json()["error"]["message"] == missing.json()["error"][
        "message"
    ].replace("999999", str(secret))
    assert records(factory)[-2].detail["target"] == {"chunk_id": secret}  # the attempt is on record
    assert signed_in(app, keys["ada"]).get(f"/passages/{secret}").status_code == 200
    assert signed_in(app, keys["audra"]).get(f"/passages/{handbook}").status_code == 403


def test_a_question_asked_in_the_app_is_audited_like_the_api(app_env):
    app, keys, factory = app_env
    client = signed_in(app, keys["alice"])
    headers = {"X-CSRF-Token": client.csrf, "Origin": BASE, "Accept": "text/event-stream"}
    r = client.post("/v1/query", json={"question": "How many vacation days?", "stream": True}, headers=headers)
    assert r.status_code == 200 and "event: delta" in r.text and "event: final" in r.text
    final = json.loads(r.text.split("event: final\ndata: ")[1])
    record = records(factory)[-1]
    assert (record.route, record.principal, record.question) == ("/v1/query", "alice", "How many vacation days?")
    assert record.answer == final["answer"] and record.request_id == final["request_id"]
    assert record.detail["via"] == "session" and record.detail["key_id"] and record.detail["citations"]
    api = TestClient(app, base_url=BASE, headers=bearer(keys["alice"]))
    api.post("/v1/query", json={"question": "How many vacation days?"})
    same = records(factory)[-1]
    assert set(same.detail) == set(record.detail) and same.answer == record.answer


def test_audit_page_filters_pages_and_exports(app_env):
    app, keys, factory = app_env
    alice = signed_in(app, keys["alice"])
    for _ in range(3):
        alice.get("/documents")
    auditor = signed_in(app, keys["audra"])
    r = auditor.get("/audit?user=alice&route=/documents&status=&text=&group=&since=&until=")
    assert r.status_code == 200 and r.text.count('class="record-link"') == 3
    assert 'href="/v1/audit/export?format=csv&amp;user=alice&amp;route=%2Fdocuments"' in r.text
    assert auditor.get("/audit?status=abc", headers=HTML).status_code == 422
    newest = records(factory)[-1].seq
    page = auditor.get(f"/audit?cursor={newest}")
    assert page.status_code == 200 and f'href="/audit/{newest}"' not in page.text
    r = auditor.get(f"/audit/{newest}")
    assert r.status_code == 200 and "Record" in r.text
    assert auditor.get("/audit/99999", headers=HTML).status_code == 404


def test_hostile_text_is_escaped_in_server_rendered_pages(app_env):
    app, keys, factory = app_env
    payload = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    alice = signed_in(app, keys["alice"])
    headers = {"X-CSRF-Token": alice.csrf, "Origin": BASE}
    alice.post("/v1/search", json={"query": payload}, headers=headers)
    seq = records(factory)[-1].seq
    auditor = signed_in(app, keys["audra"])
    for path in (f"/audit/{seq}", "/audit"):
        text = auditor.get(path).text
        assert payload not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_feedback_is_stored_with_the_request_id_and_only_for_ones_own_answers(app_env):
    app, keys, factory = app_env
    alice = signed_in(app, keys["alice"])
    headers = {"X-CSRF-Token": alice.csrf, "Origin": BASE}
    answer = alice.post("/v1/query", json={"question": "How many vacation days?"}, headers=headers).json()
    rid = answer["request_id"]
    rate = {"request_id": rid, "rating": "down", "comment": "<b>wrong</b> year"}
    r = alice.post("/v1/feedback", json=rate, headers=headers)
    assert r.status_code == 201 and r.json() == {"request_id": rid, "rating": "down", "comment": "<b>wrong</b> year"}
    assert records(factory)[-1].detail["target"] == {"request_id": rid, "rating": "down"}
    carol = TestClient(app, base_url=BASE, headers=bearer(make_user_key(app_env, "carol")))
    stolen = carol.post("/v1/feedback", json={"request_id": rid, "rating": "up"})
    assert stolen.status_code == 404  # someone else's answer: as if it did not exist
    assert carol.post("/v1/feedback", json={"request_id": "ffff", "rating": "up"}).status_code == 404
    assert alice.post("/v1/feedback", json={**rate, "rating": "meh"}, headers=headers).status_code == 422
    admin = TestClient(app, base_url=BASE, headers=bearer(keys["ada"]))
    listed = admin.get("/v1/feedback").json()
    assert [(f["request_id"], f["principal"], f["question"]) for f in listed] == [
        (rid, "alice", "How many vacation days?")
    ]
    assert listed[0]["answer"] == answer["answer"] and listed[0]["citations"]
    page = signed_in(app, keys["ada"]).get("/admin/feedback").text
    assert "How many vacation days?" in page and "&lt;b&gt;wrong&lt;/b&gt; year" in page
    assert alice.post("/v1/feedback", json={**rate, "rating": "up"}, headers=headers).status_code == 201
    assert admin.get("/v1/feedback").json() == []  # rated again: replaced, not added
    assert len(admin.get("/v1/feedback?rating=up").json()) == 1
    assert alice.get("/admin/feedback", headers=HTML).status_code == 403
    assert alice.get("/v1/feedback").status_code == 403


def make_user_key(app_env, name: str) -> str:
    app, _, factory = app_env
    with factory() as s:
        _, key = users.create_user(s, name, "employee", ["everyone"], actor=users.OPERATOR, with_key=True)
    return key


# --- conversations kept server-side -------------------------------------------------------------


def _ask_in(client, conversation_id: int, question: str, **extra):
    headers = {"X-CSRF-Token": client.csrf, "Origin": BASE}
    return client.post(
        f"/v1/conversations/{conversation_id}/messages", json={"question": question, **extra}, headers=headers
    )


def _write(client) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf, "Origin": BASE}


def test_a_conversation_is_kept_continued_renamed_and_deleted(app_env):
    app, keys, factory = app_env
    alice = signed_in(app, keys["alice"])
    seen: list[dict] = []
    answerer = app.state.services.answerer
    real_stream = answerer.stream

    def spy(question, **kwargs):  # the real answer path; only the history it is given is noted
        seen.append({"question": question, "history": kwargs.get("history")})
        return real_stream(question, **kwargs)

    answerer.stream = spy
    created = alice.post("/v1/conversations", json={}, headers=_write(alice))
    assert created.status_code == 201 and created.json()["title"] == "New conversation"
    cid = created.json()["id"]
    first = _ask_in(alice, cid, "How many vacation days?")
    assert first.status_code == 200 and first.json()["citations"]
    streamed = _ask_in(alice, cid, "And for part-time staff?", stream=True)
    assert streamed.status_code == 200 and "event: delta" in streamed.text and "event: final" in streamed.text
    assert seen[0]["history"] == []
    assert seen[1]["history"] == [
        {"role": "user", "content": "How many vacation days?"},
        {"role": "assistant", "content": first.json()["answer"]},
    ]
    # the answers are audited like /v1/query's, under the route's template
    record = records(factory)[-1]
    assert record.route == "/v1/conversations/{conversation_id}/messages" and record.principal == "alice"
    assert record.question == "And for part-time staff?" and record.detail["citations"]
    assert record.detail["target"] == {"conversation_id": cid}
    # listed, with the first question as its title, and both turns kept with their request ids
    listed = alice.get("/v1/conversations").json()
    assert [(c["id"], c["title"], c["turns"]) for c in listed] == [(cid, "How many vacation days?", 2)]
    opened = alice.get(f"/v1/conversations/{cid}").json()
    assert [m["question"] for m in opened["messages"]] == ["How many vacation days?", "And for part-time staff?"]
    assert opened["messages"][0]["request_id"] == first.json()["request_id"] == records(factory)[-4].request_id
    assert opened["messages"][0]["result"]["citations"] == first.json()["citations"]
    # its answers can be rated like any other
    rate = {"request_id": first.json()["request_id"], "rating": "up"}
    assert alice.post("/v1/feedback", json=rate, headers=_write(alice)).status_code == 201
    # the page lists it and names it (escaped)
    renamed = alice.patch(f"/v1/conversations/{cid}", json={"title": "<b>Leave</b> rules"}, headers=_write(alice))
    assert renamed.status_code == 200 and renamed.json()["title"] == "<b>Leave</b> rules"
    page = alice.get(f"/ask/{cid}", headers=HTML)
    assert page.status_code == 200 and "&lt;b&gt;Leave&lt;/b&gt; rules" in page.text and "<b>Leave" not in page.text
    assert f'href="/ask/{cid}" aria-current="page"' in page.text
    # deleted: gone from the list, 404 afterwards, and the audit log still has the questions
    assert alice.delete(f"/v1/conversations/{cid}", headers=_write(alice)).status_code == 204
    assert alice.get(f"/v1/conversations/{cid}").status_code == 404
    assert alice.get("/v1/conversations").json() == []
    assert any(r.question == "How many vacation days?" for r in records(factory))


def test_nobody_else_can_see_or_touch_a_conversation(app_env):
    app, keys, factory = app_env
    alice = signed_in(app, keys["alice"])
    cid = alice.post("/v1/conversations", json={"title": "mine"}, headers=_write(alice)).json()["id"]
    _ask_in(alice, cid, "How many vacation days?")
    carol = TestClient(app, base_url=BASE, headers=bearer(make_user_key(app_env, "carol")))
    ada = signed_in(app, keys["ada"])  # admins read every document, but not other people's conversations
    missing = 999_999
    for other in (carol, ada):
        headers = _write(other) if other is ada else {}
        for method, tail, body in (
            ("GET", "", None),
            ("PATCH", "", {"title": "stolen"}),
            ("DELETE", "", None),
            ("POST", "/messages", {"question": "How many vacation days?"}),
        ):
            r = other.request(method, f"/v1/conversations/{cid}{tail}", json=body, headers=headers)
            gone = other.request(method, f"/v1/conversations/{missing}{tail}", json=body, headers=headers)
            assert r.status_code == gone.status_code == 404, (method, tail)
            assert r.json()["error"]["message"] == f"no conversation {cid}"
            assert gone.json()["error"]["message"] == f"no conversation {missing}"
        assert other.get("/v1/conversations").json() == []
        assert other.get(f"/ask/{cid}", headers={**HTML, **headers}).status_code == 404
    ada_page = ada.get("/ask", headers=HTML).text
    assert "mine" not in ada_page and f"/ask/{cid}" not in ada_page
    auditor = signed_in(app, keys["audra"])
    assert auditor.get("/v1/conversations").status_code == 403  # the auditor role does not ask at all
    opened = alice.get(f"/v1/conversations/{cid}").json()
    assert opened["title"] == "mine" and len(opened["messages"]) == 1  # untouched
    attempts = [r for r in records(factory) if r.principal in ("carol", "ada") and r.status == 404]
    assert {r.principal for r in attempts if r.detail.get("target", {}).get("conversation_id") == cid} == {
        "carol",
        "ada",
    }  # the attempts are on record


def test_conversations_are_bounded_at_the_edge(app_env, monkeypatch):
    app, keys, _ = app_env
    alice = signed_in(app, keys["alice"])
    w = _write(alice)
    assert alice.post("/v1/conversations", json={"title": "x" * 201}, headers=w).status_code == 422
    assert alice.post("/v1/conversations", json={"title": "a\u202eb"}, headers=w).status_code == 422
    assert alice.post("/v1/conversations", json={"title": ""}, headers=w).status_code == 422
    cid = alice.post("/v1/conversations", headers=w).json()["id"]  # no body: untitled
    assert alice.patch(f"/v1/conversations/{cid}", json={"title": "tab\there"}, headers=w).status_code == 422
    for bad in ("0", "-1", str(2**31), "abc"):
        assert alice.get(f"/v1/conversations/{bad}").status_code == 422, bad
    assert alice.get("/v1/conversations?limit=201").status_code == 422
    assert _ask_in(alice, cid, "x" * 2001).status_code == 413
    long_first = "Why " + "very " * 60 + "long?"
    assert _ask_in(alice, cid, long_first).status_code == 200
    assert len(alice.get(f"/v1/conversations/{cid}").json()["title"]) == 200
    monkeypatch.setattr("rag.conversations.MAX_TURNS", 2)
    assert _ask_in(alice, cid, "How many vacation days?").status_code == 200
    full = _ask_in(alice, cid, "And sick days?")
    assert full.status_code == 422 and "start a new one" in full.json()["error"]["message"]
    monkeypatch.setattr("rag.conversations.MAX_CONVERSATIONS", 2)
    assert alice.post("/v1/conversations", json={}, headers=w).status_code == 201
    over = alice.post("/v1/conversations", json={}, headers=w)
    assert over.status_code == 422 and "delete some" in over.json()["error"]["message"]


def test_an_answer_the_audit_log_withheld_is_not_kept(app_env, monkeypatch):
    from rag.errors import AuditUnavailableError

    app, keys, _ = app_env
    alice = signed_in(app, keys["alice"])
    cid = alice.post("/v1/conversations", json={}, headers=_write(alice)).json()["id"]
    real_append = app.state.audit_log.append

    def failing(entry):
        if entry.route.endswith("/messages"):
            raise AuditUnavailableError("the audit log is unavailable; the answer was withheld")
        return real_append(entry)

    monkeypatch.setattr(app.state.audit_log, "append", failing)
    r = _ask_in(alice, cid, "How many vacation days?")
    assert r.status_code == 503 and "vacation" not in r.text
    monkeypatch.setattr(app.state.audit_log, "append", real_append)
    opened = alice.get(f"/v1/conversations/{cid}").json()
    assert opened["messages"] == [] and opened["turns"] == 0  # stored, but never shown: never sent
    assert _ask_in(alice, cid, "How many vacation days?").status_code == 200
    assert len(alice.get(f"/v1/conversations/{cid}").json()["messages"]) == 1


# --- ingestion and document pages ----------------------------------------------------------------


@pytest.fixture
def ingest_env(settings, db, fake_embedder, tmp_path):
    """An ingest root holding the handbook and a folder whose access policy is invalid (its files fail)."""
    root = tmp_path / "drive"
    copy_tree(HANDBOOK, root / "handbook")
    broken = root / "broken"
    broken.mkdir()
    (broken / "a <i onmouseover=x>bad name.md").write_text("# Zebra\n\nThe zebra policy is strict.\n")
    (broken / ".rag-access.yaml").write_text("groups: [hr]\nowner: nobody\n")
    s = settings.model_copy(update={"generator": "extractive", "ingest_roots": [root]})
    run_job(s, db, fake_embedder, root, collection="drive", groups=["everyone"])
    keys = {"alice": make_user(s, "alice", "employee", ("everyone",)), "ada": make_user(s, "ada", "admin", ())}
    return create_app(s, embedder=fake_embedder), keys, db[1], root


def test_admin_ingest_page_shows_jobs_counts_and_failed_files(ingest_env):
    app, keys, factory, root = ingest_env
    ada = signed_in(app, keys["ada"])
    page = ada.get("/admin/ingest", headers=HTML)
    assert page.status_code == 200
    assert f'<option value="{root.resolve()}">' in page.text  # the configured root, to start a job from
    job = re.search(r'<li class="result job" id="job-(\d+)"[^>]*data-state="succeeded"', page.text)
    assert job, page.text
    assert "invalid .rag-access.yaml in broken" in page.text and "1 failed" in page.text
    assert "a &lt;i onmouseover=x&gt;bad name.md" in page.text and "<i onmouseover" not in page.text
    assert "data-groups='[\"everyone\"]'" in page.text  # a retry keeps the job's options
    assert 'class="retry"' in page.text
    # the documents page lists the failure with its reason, and the filters narrow the list
    docs = ada.get("/admin/documents", headers=HTML).text
    assert "a &lt;i onmouseover=x&gt;bad name.md" in docs and "invalid .rag-access.yaml" in docs
    narrowed = ada.get("/admin/documents?path=time-off&label=&group=&collection=", headers=HTML).text
    assert "time-off.md" in narrowed and "expenses" not in narrowed and "bad" not in narrowed
    assert "No file's latest ingestion failed among these" in narrowed
    alice = signed_in(app, keys["alice"])
    assert alice.get("/admin/ingest", headers=HTML).status_code == 403
    # fixed and ingested again: the file is a document now and no longer listed as failed
    (root / "broken" / ".rag-access.yaml").write_text("groups: [everyone]\n")
    with factory() as s:
        last = s.scalar(select(func.max(Document.id)))
    api = TestClient(app, base_url=BASE, headers=bearer(keys["ada"]))
    queued = api.post("/v1/ingest/jobs", json={"path": str(root), "collection": "drive", "groups": ["everyone"]})
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    assert f'id="job-{queued.json()["job_id"]}"' in ada.get("/admin/ingest").text
    with factory() as s:
        assert s.scalar(select(func.max(Document.id))) == last  # queued only; a worker runs it


def test_document_lists_filter_by_label_group_and_path(app_env):
    app, keys, factory = app_env
    ada = signed_in(app, keys["ada"])
    with factory() as s:
        doc = s.scalars(select(Document).where(Document.path.like("%time-off.md"))).one()
    headers = _write(ada)
    assert ada.patch(f"/v1/documents/{doc.id}", json={"label": "confidential"}, headers=headers).status_code == 200
    by_label = ada.get("/admin/documents?label=confidential").text
    assert by_label.count('<tr id="doc-') == 1 and "time-off.md" in by_label
    by_group = ada.get("/admin/documents?group=hr").text
    assert by_group.count('<tr id="doc-') == 1 and "salaries.txt" in by_group
    assert ada.get("/admin/documents?path=%25").text.count('<tr id="doc-') == 0  # LIKE wildcards are literal
    assert ada.get("/admin/documents?label=secret", headers=HTML).status_code == 422
    assert ada.get("/admin/documents?group=" + "g" * 201, headers=HTML).status_code == 422
    # an employee's filters narrow what they may read; they never widen it
    alice = signed_in(app, keys["alice"])
    for query in ("group=hr", "path=salaries", "collection=hr"):
        listed = alice.get(f"/documents?{query}").text
        assert "salaries.txt" not in listed and "No documents you may read that match" in listed, query
    mine = alice.get("/documents?path=time-off&label=confidential").text
    assert "time-off.md" in mine and 'value="time-off"' in mine  # the form keeps the filters


def test_status_and_routing_pages_show_the_live_index_and_the_users_to_explain_for(app_env):
    app, keys, factory = app_env
    ada = signed_in(app, keys["ada"])
    page = ada.get("/admin/status", headers=HTML).text
    with factory() as s:
        chunks = s.scalar(select(func.count()).select_from(Chunk))
    assert re.search(r'id="index-generation">\d+<', page)
    assert f'id="index-chunks">{chunks}<' in page and "MiB" in page
    assert "extractive" in page and keys["ada"] not in page
    routing = ada.get("/admin/routing", headers=HTML).text
    assert '<option value="alice">' in routing and '<option value="audra">' not in routing  # auditors never ask
    # what the routing page's JS sends: the dry run for another user, audited under the admin's name
    r = ada.post("/v1/route/explain", json={"question": "vacation days", "user": "alice"}, headers=_write(ada))
    assert r.status_code == 200 and r.json()["user"]["name"] == "alice" and r.json()["passages"]
    assert records(factory)[-1].principal == "ada" and records(factory)[-1].detail["explained_for"] == "alice"


# --- sign-in through the identity provider (OIDC authorization code with PKCE) -------------------


class LoopbackIdp:
    """A small identity provider on loopback: discovery, JWKS, an authorize endpoint that signs in
    `user` at once, and a token endpoint that checks the PKCE verifier and spends each code once."""

    def __init__(self) -> None:
        import http.server
        import threading

        from .test_auth import jwks_of, rsa_key

        self.key = rsa_key()
        self.user = {"sub": "dana", "role": "employee", "groups": ["everyone"]}
        self.codes: dict[str, dict] = {}
        self.nonce_override: str | None = None
        idp = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict | None = None, location: str | None = None) -> None:
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                payload = json.dumps(body or {}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                from urllib.parse import parse_qs, urlencode, urlsplit

                url = urlsplit(self.path)
                if url.path == "/.well-known/openid-configuration":
                    return self._send(
                        200,
                        {
                            "issuer": idp.issuer,
                            "authorization_endpoint": idp.issuer + "/authorize",
                            "token_endpoint": idp.issuer + "/token",
                            "jwks_uri": idp.issuer + "/jwks",
                        },
                    )
                if url.path == "/jwks":
                    return self._send(200, jwks_of(idp.key, "k1"))
                if url.path == "/authorize":
                    q = {k: v[0] for k, v in parse_qs(url.query).items()}
                    assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
                    code = secrets.token_urlsafe(16)
                    idp.codes[code] = q
                    return self._send(
                        302, location=q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})
                    )
                return self._send(404)

            def do_POST(self):
                from urllib.parse import parse_qs

                form = {
                    k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
                }
                asked = idp.codes.pop(form.get("code", ""), None)  # a code is spent once
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if (
                    asked is None
                    or challenge != asked["code_challenge"]
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or form.get("client_id") != asked["client_id"]
                ):
                    return self._send(400, {"error": "invalid_grant"})
                now = int(time.time())
                claims = {
                    "iss": idp.issuer,
                    "aud": asked["client_id"],
                    "iat": now,
                    "exp": now + 300,
                    "nonce": idp.nonce_override or asked["nonce"],
                    **idp.user,
                }
                return self._send(
                    200, {"id_token": jwt.encode(claims, idp.key, algorithm="RS256", headers={"kid": "k1"})}
                )

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def oidc_env(settings, db, fake_embedder, tmp_path):
    run_job(settings, db, fake_embedder, copy_tree(HANDBOOK, tmp_path / "handbook"), groups=["everyone"])
    idp = LoopbackIdp()
    s = settings.model_copy(
        update={
            "generator": "extractive",
            "oidc_jwks": idp.issuer + "/jwks",
            "oidc_issuer": idp.issuer,
            "oidc_audience": "private-rag-web",
            "oidc_algorithms": ["RS256"],
        }
    )
    yield create_app(s, embedder=fake_embedder), idp, db[1]
    idp.close()


def _to_idp_and_back(client, idp_url: str) -> httpx.Response:
    """What the browser does at the provider: follow /authorize, which sends it back with a code."""
    back = httpx.get(idp_url, follow_redirects=False)
    assert back.status_code == 302
    location = back.headers["location"]
    return client.get(location[location.index("/signin/oidc/callback") :], headers=HTML)


def test_sign_in_through_the_identity_provider_with_pkce(oidc_env):
    app, idp, factory = oidc_env
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    assert 'href="/signin/oidc"' in client.get("/signin").text
    out = client.get("/signin/oidc")
    assert out.status_code == 303 and out.headers["location"].startswith(idp.issuer + "/authorize?")
    sent = dict(parse_qsl(urlsplit(out.headers["location"]).query))
    assert sent["client_id"] == "private-rag-web" and sent["code_challenge_method"] == "S256"
    assert sent["redirect_uri"] == BASE + "/signin/oidc/callback" and "code_verifier" not in sent
    login_cookie = out.headers["set-cookie"]
    assert "HttpOnly" in login_cookie and "SameSite=lax" in login_cookie and "Path=/signin/oidc" in login_cookie
    back = _to_idp_and_back(client, out.headers["location"])
    assert back.status_code == 200 and 'http-equiv="refresh" content="0; url=/"' in back.text
    assert "SameSite=strict" in back.headers["set-cookie"] and "rag_session" in client.cookies
    page = client.get("/ask", headers=HTML)
    assert page.status_code == 200 and "oidc:dana" in page.text  # the same name a bearer token would give
    callback = [r for r in records(factory) if r.route == "/signin/oidc/callback"]
    assert [(r.principal, r.status) for r in callback] == [("oidc:dana", 200)]
    with factory() as s:
        stored = s.scalars(select(WebSession)).one()
    assert stored.via == "oidc" and stored.identity == {"name": "oidc:dana", "role": "employee", "groups": ["everyone"]}
    # the session is a session like any other: CSRF-checked, and it may ask
    client.csrf = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)
    asked = client.post("/v1/query", json={"question": "How many vacation days?"}, headers=_write(client))
    assert asked.status_code == 200 and asked.json()["citations"]
    assert client.get("/audit", headers=HTML).status_code == 403  # an employee's token gives an employee's pages
    # the same callback again: the login cookie is gone and the code is spent
    replay = client.get(back.request.url.path + "?" + back.request.url.query.decode(), headers=HTML)
    assert replay.status_code == 401 and "start again" in replay.text


def test_identity_provider_sign_ins_the_browser_did_not_start_are_refused(oidc_env):
    app, idp, factory = oidc_env
    browser = TestClient(app, base_url=BASE, follow_redirects=False)
    # a callback with a state this browser never started (login CSRF): no login cookie
    out = TestClient(app, base_url=BASE, follow_redirects=False).get("/signin/oidc")
    stranger = _to_idp_and_back(browser, out.headers["location"])
    assert stranger.status_code == 401 and "rag_session" not in browser.cookies
    # a state that does not match this browser's own login
    mine = browser.get("/signin/oidc").headers["location"]
    code = httpx.get(mine, follow_redirects=False).headers["location"].split("code=")[1].split("&")[0]
    swapped = browser.get(f"/signin/oidc/callback?code={code}&state=not-mine", headers=HTML)
    assert swapped.status_code == 401 and "does not match" in swapped.text
    # a tampered login cookie
    location = browser.get("/signin/oidc").headers["location"]
    sealed = browser.cookies.get("rag_oidc_login")
    browser.cookies.clear()
    browser.cookies.set("rag_oidc_login", sealed[:-4] + "0000", domain="127.0.0.1", path="/signin/oidc")
    tampered = _to_idp_and_back(browser, location)
    assert tampered.status_code == 401 and "start again" in tampered.text
    # an ID token issued for another sign-in (nonce) or with a role it may not have
    idp.nonce_override = "someone-elses"
    fresh = TestClient(app, base_url=BASE, follow_redirects=False)
    refused = _to_idp_and_back(fresh, fresh.get("/signin/oidc").headers["location"])
    assert refused.status_code == 401 and "not issued for this sign-in" in refused.text
    idp.nonce_override = None
    idp.user = {"sub": "mallory", "role": "superuser", "groups": []}
    refused = _to_idp_and_back(fresh, fresh.get("/signin/oidc").headers["location"])
    assert refused.status_code == 401 and "unknown role" in refused.text and "rag_session" not in fresh.cookies
    assert fresh.get("/signin/oidc/callback?error=access_denied", headers=HTML).status_code == 401
    assert fresh.get("/signin/oidc/callback?code=" + "x" * 3000 + "&state=y", headers=HTML).status_code == 401
    assert all(r.principal is None for r in records(factory) if r.route == "/signin/oidc/callback" and r.status == 401)


def test_identity_provider_sign_in_is_absent_unless_configured(app_env):
    app, _, _ = app_env
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    assert "/signin/oidc" not in client.get("/signin").text
    assert client.get("/signin/oidc", headers=HTML).status_code == 404
    assert client.get("/signin/oidc/callback?code=a&state=b", headers=HTML).status_code == 404


def test_an_admin_changes_roles_but_not_their_own_nor_to_or_from_auditor(app_env):
    app, keys, factory = app_env
    ada = signed_in(app, keys["ada"])
    alice = signed_in(app, keys["alice"])
    assert alice.get("/admin/users", headers=HTML).status_code == 403
    w = _write(ada)
    r = ada.patch("/v1/users/alice", json={"role": "admin"}, headers=w)
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert records(factory)[-1].detail["target"]["role"] == "admin"
    assert alice.get("/admin/users", headers=HTML).status_code == 200  # her session's next request
    assert ada.patch("/v1/users/alice", json={"role": "employee"}, headers=w).status_code == 200
    assert alice.get("/admin/users", headers=HTML).status_code == 403
    own = ada.patch("/v1/users/ada", json={"role": "employee"}, headers=w)
    assert own.status_code == 403 and "your own role" in own.json()["error"]["message"]
    assert (
        ada.patch("/v1/users/ada", json={"role": "admin", "groups": ["x"]}, headers=w).status_code == 200
    )  # unchanged
    assert ada.patch("/v1/users/alice", json={"role": "auditor"}, headers=w).status_code == 403
    assert ada.patch("/v1/users/audra", json={"role": "employee"}, headers=w).status_code == 403
    assert ada.patch("/v1/users/alice", json={"role": "root"}, headers=w).status_code == 422
    page = ada.get("/admin/users").text
    assert re.search(r'<select id="role-\d+" name="role" disabled', page)  # their own row's role is fixed
