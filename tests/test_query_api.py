"""Query API over an ingested handbook: search, grounded answers, streaming, OpenAI compatibility, errors."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.db.models import Chunk
from rag.generators.openai_compat import OpenAICompatibleGenerator
from rag.prompting import NOT_FOUND
from rag.types import Usage

from .helpers import HANDBOOK, bearer, copy_tree, make_user, run_job


@pytest.fixture
def handbook(settings, db, fake_embedder, tmp_path):
    root = copy_tree(HANDBOOK, tmp_path / "handbook")
    run_job(settings, db, fake_embedder, root, collection="handbook", groups=["everyone"], label="internal")
    return root


def client_for(settings, fake_embedder, generator=None, role="employee", **overrides) -> TestClient:
    """A client authenticated as a new user of `role` in group 'everyone' (the handbook's group)."""
    s = settings.model_copy(update={"generator": "extractive", **overrides})
    app = create_app(s, embedder=fake_embedder, generator=generator)
    key = make_user(s, f"{role}-{id(app)}", role)
    client = TestClient(app, raise_server_exceptions=False, headers=bearer(key))
    client.key = key
    return client


class ScriptedGenerator:
    """Stands in for a model that invents an answer: a unit test of the grounding logic only."""

    backend = "openai"
    model = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    def stream(self, prompt, max_tokens, usage: Usage):
        for word in self.text.split(" "):
            yield word + " "
        usage.completion_tokens = len(self.text.split())

    def ready(self) -> bool:
        return True


def test_search_returns_ranked_passages_with_their_documents(settings, fake_embedder, handbook):
    client = client_for(settings, fake_embedder)
    r = client.post("/v1/search", json={"query": "How many vacation days do employees get?", "top_k": 3})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3
    assert set(results[0]) >= {"chunk_id", "document_id", "path", "title", "page", "text", "score"}
    assert results[0]["path"].endswith("time-off.md") and "27 vacation days" in results[0]["text"]
    assert [x["score"] for x in results] == sorted((x["score"] for x in results), reverse=True)


def test_search_filters_apply_before_ranking(settings, fake_embedder, handbook, db):
    client = client_for(settings, fake_embedder)
    q = {"query": "vacation days", "top_k": 50}
    everything = client.post("/v1/search", json=q).json()["results"]
    prefix = str(handbook / "policies")
    only = client.post("/v1/search", json={**q, "filters": {"path_prefix": prefix}}).json()["results"]
    assert only and all(x["path"].startswith(prefix) for x in only)
    # a full result set from the allowed documents, not a post-filtered remainder of the global top-k
    assert len(only) == len([x for x in everything if x["path"].startswith(prefix)])
    assert client.post("/v1/search", json={**q, "filters": {"collection": "nope"}}).json()["results"] == []
    assert client.post("/v1/search", json={**q, "filters": {"label": "restricted"}}).json()["results"] == []
    assert len(
        client.post("/v1/search", json={**q, "filters": {"label": ["internal"], "collection": "handbook"}}).json()[
            "results"
        ]
    ) == len(everything)


def test_query_answers_with_checked_citations(settings, db, fake_embedder, handbook):
    client = client_for(settings, fake_embedder)
    r = client.post("/v1/query", json={"question": "What is the meal allowance in Portugal?"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "answered" and body["grounded"] and "45 EUR" in body["answer"]
    assert body["model"] == "extractive" and body["request_id"] == r.headers["x-request-id"]
    cited = body["citations"][0]
    assert set(cited) >= {"n", "document_id", "path", "page", "chunk_id", "quote", "document_sha256"}
    assert f"[{cited['n']}]" in body["answer"] and cited["path"].endswith("expenses.md")
    assert "45 EUR" in cited["quote"] and len(cited["document_sha256"]) == 64
    with db[1]() as session:  # the quote is verbatim: a reader finds it in the cited passage
        assert cited["quote"] in " ".join(session.get(Chunk, cited["chunk_id"]).text.split())


def test_question_without_answer_in_documents_says_so(settings, fake_embedder, handbook):
    client = client_for(settings, fake_embedder)
    body = client.post("/v1/query", json={"question": "Who won the football world cup in 1990?"}).json()
    assert body["status"] == "not_found" and body["answer"] == NOT_FOUND and not body["grounded"]
    assert body["citations"], "the closest passages are listed so the user can read them"


def test_invented_answer_is_replaced_before_the_user_sees_it(settings, fake_embedder, handbook):
    invented = "Employees get 40 vacation days and a yearly bonus of 5000 EUR paid in March [1]."
    client = client_for(settings, fake_embedder, generator=ScriptedGenerator(invented))
    body = client.post("/v1/query", json={"question": "How many vacation days do employees get?"}).json()
    assert body["status"] == "not_found" and body["answer"] == NOT_FOUND and body["dropped_sentences"] == 1
    with client.stream("POST", "/v1/query", json={"question": "How many vacation days?", "stream": True}) as r:
        raw = "".join(r.iter_text())
    assert "5000" not in raw.split("event: final")[0]  # never streamed either


def test_query_streams_server_sent_events_with_citations_last(settings, fake_embedder, handbook):
    client = client_for(settings, fake_embedder)
    with client.stream(
        "POST", "/v1/query", json={"question": "How long are passwords?"}, headers={"Accept": "text/event-stream"}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [block for block in "".join(r.iter_text()).split("\n\n") if block.strip()]
    kinds = [e.split("\n")[0].removeprefix("event: ") for e in events]
    assert kinds[-1] == "final" and set(kinds[:-1]) == {"delta"}
    final = json.loads(events[-1].split("data: ", 1)[1])
    streamed = "".join(json.loads(e.split("data: ", 1)[1])["text"] for e in events[:-1])
    assert streamed == final["answer"] and "14 characters" in streamed and final["citations"]


def test_openai_client_works_unchanged(settings, fake_embedder, handbook):
    from openai import OpenAI

    client = client_for(settings, fake_embedder)
    oa = OpenAI(base_url="http://testserver/v1", api_key=client.key, http_client=client)
    assert [m.id for m in oa.models.list()] == ["private-rag"]
    messages = [
        {"role": "user", "content": "Where are our offices?"},
        {"role": "assistant", "content": "In Lisbon and Tallinn."},
        {"role": "user", "content": "What is the meal allowance in Portugal?"},
    ]
    done = oa.chat.completions.create(model="private-rag", messages=messages)
    assert "45 EUR" in done.choices[0].message.content and done.choices[0].finish_reason == "stop"
    assert done.rag["citations"][0]["path"].endswith("expenses.md") and done.rag["grounded"]
    pieces, extra = [], None
    for chunk in oa.chat.completions.create(model="private-rag", messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if getattr(chunk, "rag", None):
            extra = chunk.rag
    assert "".join(pieces) == done.choices[0].message.content
    assert extra["citations"] == done.rag["citations"]


def test_error_statuses_are_json_with_request_ids(settings, fake_embedder, tmp_path, handbook):
    client = client_for(settings, fake_embedder)
    for body, status in [
        ({"question": ""}, 422),
        ({"question": "x", "top_k": 0}, 422),
        ({}, 422),
        ({"question": "x" * 2001}, 413),
        ({"question": "   "}, 422),
    ]:
        r = client.post("/v1/query", json=body)
        assert r.status_code == status, (body, r.text)
        assert set(r.json()) == {"error", "request_id"} and r.json()["error"]["message"]
    r = client.post(
        "/v1/query", content=b'{"question": "' + b"x" * 2_000_000 + b'"}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and "private-rag" in r.json()["error"]["message"]
    r = client.post(
        "/v1/chat/completions", json={"model": "private-rag", "messages": [{"role": "assistant", "content": "hi"}]}
    )
    assert r.status_code == 422
    empty = settings.model_copy(update={"data_dir": tmp_path / "empty"})
    r = client_for(empty, fake_embedder).post("/v1/search", json={"query": "anything"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "index_unavailable"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slow_server():
    """A real HTTP server on loopback that accepts a chat request and never answers in time."""

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(3)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_generator_down_or_slow_gives_503_504_or_a_marked_fallback(settings, fake_embedder, handbook, slow_server):
    down = OpenAICompatibleGenerator(f"http://127.0.0.1:{_free_port()}/v1", "m", retries=1, connect_timeout_s=0.5)
    client = client_for(settings, fake_embedder, generator=down, generator_fallback="none")
    r = client.post("/v1/query", json={"question": "What is the meal allowance in Portugal?"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "generator_unavailable"
    slow = OpenAICompatibleGenerator(slow_server, "m", timeout_s=0.5)
    client = client_for(settings, fake_embedder, generator=slow, generator_fallback="none")
    r = client.post("/v1/query", json={"question": "What is the meal allowance in Portugal?"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "generator_timeout"
    client = client_for(settings, fake_embedder, generator=down, generator_fallback="extractive")
    body = client.post("/v1/query", json={"question": "What is the meal allowance in Portugal?"}).json()
    assert body["fallback"] and body["backend"] == "extractive" and "unavailable" in body["notice"]
    assert "45 EUR" in body["answer"]
    ready = client.get("/readyz", headers=bearer(make_user(settings, "ops", "admin")))
    assert ready.status_code == 200 and ready.json()["checks"]["generator"].startswith("degraded")


def test_readyz_and_metrics(settings, fake_embedder, tmp_path, handbook):
    empty = settings.model_copy(update={"data_dir": tmp_path / "empty"})
    r = client_for(empty, fake_embedder, role="admin").get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["index"].startswith("unavailable")
    client = client_for(settings, fake_embedder)
    admin = bearer(make_user(settings, "ops", "admin"))
    ready = client.get("/readyz", headers=admin).json()
    assert ready["status"] == "ready" and ready["checks"]["database"] == "ok", ready
    client.post("/v1/search", json={"query": "laptop"})
    client.post("/v1/query", json={"question": "How long must passwords be?"})
    client.post("/v1/query", json={"question": ""})
    text = client.get("/metrics", headers=admin).text
    assert 'rag_http_requests_total{method="POST",route="/v1/search",status="200"} 1.0' in text
    assert 'rag_http_requests_total{method="POST",route="/v1/query",status="422"} 1.0' in text
    assert 'rag_answers_total{backend="extractive",fallback="false",status="answered"} 1.0' in text
    assert "rag_retrieval_seconds_count 2.0" in text and "rag_generation_seconds_count" in text


def test_embedded_model_answers_or_says_not_found_never_unsupported(settings, fake_embedder, handbook, local_llm_dir):
    """The real packaged SmolLM2 on the CPU: whatever it writes, only supported sentences come out."""
    s = settings.model_copy(
        update={"generator": "embedded", "max_tokens": 64, "llm_model_path": str(local_llm_dir), "prompt_passages": 1}
    )
    client = TestClient(
        create_app(s, embedder=fake_embedder), raise_server_exceptions=False, headers=bearer(make_user(s, "alice"))
    )
    body = client.post("/v1/query", json={"question": "What is the meal allowance in Portugal?"}).json()
    assert body["backend"] == "embedded" and body["model"] == "SmolLM2-135M-Instruct"
    assert body["usage"]["completion_tokens"] > 0
    if body["status"] == "answered":
        assert body["citations"] and all(f"[{c['n']}]" in body["answer"] for c in body["citations"])
        assert "45" in body["answer"] or "EUR" in body["answer"]
    body = client.post("/v1/query", json={"question": "Who won the football world cup in 1990?"}).json()
    assert body["status"] == "not_found" and body["answer"] == NOT_FOUND
