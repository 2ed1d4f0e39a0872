"""The escalation router end to end: real documents, real API, a real HTTP server on loopback
standing in for the vendor and recording every request it receives.

Public documents are SciFact abstracts (../shared/eval/scifact); the confidential and restricted
ones are fictional (tests/data/routing). Benign questions are SciFact claims: without anything
sensitive they escalate, so every sensitive probe below is one that only the router keeps local.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from rag.egress import GuardedTransport
from rag.errors import EgressBlockedError
from rag.sensitivity import Hit, Scanner, default_detectors
from rag.settings import EscalationSettings, Settings

from .conftest import DB_KINDS, fresh_database
from .helpers import REPO, bearer, make_user, run_job
from .routing_probes import CONTEXT_QUESTIONS, EMAILS, PATTERNS, TERM_QUESTIONS, TERMS, pii_probes
from .shared_data import shared_path

DATA = REPO / "tests" / "data" / "routing"
VENDOR_KEY = "sk-vendor-test-4f1d9c2b7a"
BENIGN_COUNT = 110


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None
    body: dict


@dataclass
class FakeVendor:
    """An OpenAI-compatible server on loopback: answers with the first sentence of passage [1],
    cited, and records every request (method, path, key, body)."""

    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                vendor.requests.append(Recorded("GET", self.path, self.headers.get("Authorization"), {}))
                self.send_response(404)
                self.end_headers()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                vendor.requests.append(Recorded("POST", self.path, self.headers.get("Authorization"), body))
                user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"][-1]
                first = re.search(r"\[1\] (.+?)\n</passage>", user, re.DOTALL)
                if first:
                    sentence = re.split(r"(?<=[.!?])\s+", first.group(1).strip())
                    answer = max(sentence[:3], key=len) + " [1]"
                else:
                    answer = "Water boils at one hundred degrees Celsius at sea level."
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for event in (
                    {"choices": [{"index": 0, "delta": {"content": answer}}]},
                    {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20}},
                ):
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    settings: Settings
    app: object
    staff: TestClient
    contractor: TestClient
    admin: TestClient
    vendor: FakeVendor
    benign: list[str]
    claims: list[str]
    public_files: set[str]
    confidential_sentences: list[str]

    def ask(self, client: TestClient, question: str) -> dict:
        response = client.post("/v1/query", json={"question": question})
        assert response.status_code == 200, response.text
        return response.json()

    @property
    def router(self):
        return self.app.state.services.answerer.router


def _benign_claims(scifact: Path) -> tuple[list[str], set[str]]:
    """The first test claims that have judged documents, and those documents."""
    judged: dict[str, set[str]] = {}
    for line in (scifact / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc, _ = line.split("\t")
        judged.setdefault(qid, set()).add(doc)
    claims, docs = [], set()
    for line in (scifact / "queries.jsonl").read_text().splitlines():
        query = json.loads(line)
        if query["_id"] in judged and len(claims) < BENIGN_COUNT:
            claims.append(query["text"])
            docs |= judged[query["_id"]]
    return claims, docs


def escalation(vendor: FakeVendor, **overrides) -> EscalationSettings:
    values = dict(
        enabled=True,
        base_url=vendor.url,
        model="vendor-large",
        api_key=VENDOR_KEY,
        groups=["staff"],
        terms=TERMS,
        patterns=PATTERNS,
        detector_timeout_s=0.5,
    )
    return EscalationSettings(**(values | overrides))


def client(settings: Settings, app, name: str, role: str, groups) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, headers=bearer(make_user(settings, name, role, groups)))


@pytest.fixture(scope="module", params=DB_KINDS)
def world(request, tmp_path_factory, real_embedder):
    # The real model, not tests/fakes.py: the vendor copies passage [1], and the grounding gate passes it
    # only if [1] is about the claim. Word overlap (fake or BM25) ranks a vitamin D abstract first for
    # "A deficiency of vitamin B12 increases blood levels of homocysteine"; the real model does not.
    scifact = shared_path("eval", "scifact")
    tmp = tmp_path_factory.mktemp("routing")
    with fresh_database(request.param, tmp) as url:
        docs_root = tmp / "docs"
        for folder in ("confidential", "restricted"):
            shutil.copytree(DATA / folder, docs_root / folder, copy_function=shutil.copyfile)
        public = docs_root / "public"
        public.mkdir()
        (public / ".rag-access.yaml").write_text("groups: [staff, contractors]\nlabel: public\n")
        claims, judged = _benign_claims(scifact)
        extra = 150
        for line in (scifact / "corpus.jsonl").read_text().splitlines():
            doc = json.loads(line)
            if doc["_id"] in judged or extra > 0:
                extra -= doc["_id"] not in judged
                (public / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n")
        vendor = FakeVendor()
        settings = Settings(
            data_dir=tmp / "data",
            database_url=url,
            mode="development",
            generator="extractive",
            escalation=escalation(vendor),
            _env_file=None,
        )
        from rag.db.session import make_engine, make_sessionmaker, migrate

        engine = make_engine(settings)
        migrate(engine)
        report = run_job(settings, (engine, make_sessionmaker(engine)), real_embedder, docs_root)
        assert report.files_failed == 0 and report.files_indexed == len(list(docs_root.rglob("*.*"))) - 3
        app = create_app(settings, embedder=real_embedder)
        sentences = [
            s.strip()
            for f in (DATA / "confidential").glob("*.md")
            for s in f.read_text().split(".")
            if len(s.split()) > 6
        ] + [
            s.strip()
            for f in (DATA / "restricted").glob("*.md")
            for s in f.read_text().split(".")
            if len(s.split()) > 6
        ]
        yield World(
            settings,
            app,
            client(settings, app, "staff-1", "employee", ["staff"]),
            client(settings, app, "contractor-1", "employee", ["contractors"]),
            client(settings, app, "admin-1", "admin", []),
            vendor,
            [f"Is it true that {c}" for c in claims],
            [c for c in claims],
            {p.name for p in public.glob("*.txt")},
            sentences,
        )
        vendor.close()
        engine.dispose()


def _external_requests(world: World) -> list[Recorded]:
    return [r for r in world.vendor.requests if r.method == "POST"]


def test_benign_questions_escalate_with_public_passages_only(world):
    before = len(world.vendor.requests)
    routes = Counter()
    for question in world.benign:
        body = world.ask(world.staff, question)
        route = body["route"]
        routes[route["target"]] += 1
        if route["target"] == "external":
            assert body["model"] == "vendor-large" and body["backend"] == "external"
            assert route["rule"] == "eligible" and route["passages_sent"]
            # the vendor's answer passes the same answerability gate as a local one: a copied passage
            # sentence that does not answer the claim is declined (and not shown)
            assert body["status"] in ("answered", "declined"), body
    recorded = world.vendor.requests[before:]
    share = routes["external"] / len(world.benign)
    print(
        f"\nbenign: {len(world.benign)} questions, {routes['external']} escalated ({share:.1%}), "
        f"{len(recorded)} vendor requests"
    )
    assert share >= 0.95
    assert len(recorded) == routes["external"]  # one request per escalated question, nothing else
    scanner = Scanner(default_detectors(terms=TERMS, patterns=PATTERNS))
    for request in recorded:
        assert request.authorization == f"Bearer {VENDOR_KEY}"
        texts = [m["content"] for m in request.body["messages"]]
        assert scanner.scan(texts) == []
        sources = set(re.findall(r'source="([^"]+)"', texts[-1]))
        assert sources and sources <= world.public_files, sources
        assert not any(sentence in texts[-1] for sentence in world.confidential_sentences)


def test_sensitive_questions_never_reach_the_vendor(world):
    before = len(world.vendor.requests)
    probes = pii_probes(world.claims)
    probes += [("term", q) for q in TERM_QUESTIONS]
    outcomes = Counter()
    for category, question in probes:
        route = world.ask(world.staff, question)["route"]
        assert route["target"] == "local", (category, question, route)
        assert route["rule"] == "question_sensitive", (category, question, route)
        outcomes[category] += 1
    for question in CONTEXT_QUESTIONS:
        route = world.ask(world.staff, question)["route"]
        assert route["target"] == "local" and route["rule"] == "context_sensitive", (question, route)
        assert route["labels"] and set(route["labels"]) - {"public"}
        outcomes["confidential_context"] += 1
    # sensitive data earlier in a conversation, and in the last message, over the chat API
    for n, email in enumerate(EMAILS[:10]):
        messages = [
            {"role": "user", "content": f"My address is {email}."},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": world.benign[n]},
        ]
        chat = world.staff.post("/v1/chat/completions", json={"model": "private-rag", "messages": messages}).json()
        assert chat["rag"]["route"]["target"] == "local", chat["rag"]["route"]
        chat = world.staff.post(
            "/v1/chat/completions",
            json={
                "model": "private-rag",
                "messages": [{"role": "user", "content": f"{world.benign[n]} Reply to {email}"}],
            },
        ).json()
        assert chat["rag"]["route"]["rule"] == "question_sensitive"
        outcomes["chat"] += 2
    total = sum(outcomes.values())
    print(f"\nsensitive: {total} probes, 0 escalated; by category {dict(outcomes)}")
    assert total >= 200
    assert world.vendor.requests[before:] == []


def test_chat_completions_report_the_route(world):
    chat = world.staff.post(
        "/v1/chat/completions",
        json={"model": "private-rag", "messages": [{"role": "user", "content": world.benign[0]}]},
    ).json()
    assert chat["rag"]["route"]["target"] == "external" and chat["rag"]["backend_model"] == "vendor-large"


@dataclass
class Faulty:
    """Stands in for one detector (same name) and misbehaves in one way."""

    name: str
    mode: str

    def find(self, views):
        if self.mode == "raise":
            raise RuntimeError("detector crashed")
        if self.mode == "hang":
            time.sleep(1.0)
            return []
        return {"garbage": None, "wrong_type": ["email"], "none": None}[self.mode]


class FaultyLabels:
    def __init__(self, mode: str, inner) -> None:
        self.mode, self.inner = mode, inner

    def labels(self, document_ids):
        ids = list(document_ids)
        if self.mode == "raise":
            raise ConnectionError("database gone")
        if self.mode == "missing":
            return {}
        if self.mode == "unknown_label":
            return {i: "top-secret" for i in ids}
        if self.mode == "null_label":
            return {i: None for i in ids}
        if self.mode == "hang_then_raise":
            time.sleep(0.2)
            raise TimeoutError("lookup timed out")
        return "not a mapping"


def test_fault_injection_keeps_every_request_local(world, monkeypatch):
    router = world.router
    questions = world.benign[:8]
    assert all(world.ask(world.staff, q)["route"]["target"] == "external" for q in questions[:2])  # the gate is open
    before = len(world.vendor.requests)
    outcomes = Counter()
    for index, detector in enumerate(list(router.scanner.detectors)):
        for mode in ("raise", "hang", "garbage", "wrong_type"):
            with monkeypatch.context() as patch:
                detectors = list(router.scanner.detectors)
                detectors[index] = Faulty(detector.name, mode)
                patch.setattr(router.scanner, "detectors", detectors)
                for question in questions:
                    route = world.ask(world.staff, question)["route"]
                    assert route["target"] == "local" and route["rule"] == "detector_error", (
                        detector.name,
                        mode,
                        route,
                    )
                    outcomes[f"{detector.name}:{mode}"] += 1
    for mode in ("raise", "missing", "unknown_label", "null_label", "hang_then_raise", "not_a_mapping"):
        with monkeypatch.context() as patch:
            patch.setattr(router, "label_lookup", FaultyLabels(mode, router.label_lookup))
            for question in questions:
                route = world.ask(world.staff, question)["route"]
                assert route["target"] == "local" and route["rule"] in ("label_error", "router_error"), (mode, route)
                outcomes[f"labels:{mode}"] += 1
    with monkeypatch.context() as patch:  # anything else inside the router
        patch.setattr(router, "permitted", lambda principal: 1 / 0)
        for question in questions:
            assert world.ask(world.staff, question)["route"]["rule"] == "router_error"
            outcomes["router:exception"] += 1
    print(f"\nfault injection: {sum(outcomes.values())} requests over {len(outcomes)} faults, 0 escalated")
    assert world.vendor.requests[before:] == []
    assert world.ask(world.staff, questions[0])["route"]["target"] == "external"  # and it recovers


def test_final_scan_blocks_what_a_faulty_router_lets_through(world, monkeypatch):
    """The last line of defence: the router is broken (no detectors at all), the outbound body
    still carries an e-mail address, and the transport's own scan stops it."""
    monkeypatch.setattr(world.router, "scanner", Scanner([], 0.5))
    before = len(world.vendor.requests)
    body = world.ask(world.staff, f"{world.benign[3]} Reply to jane.doe@example.com")
    assert body["route"]["target"] == "local" and body["route"]["rule"] == "egress_blocked", body["route"]
    assert "email" in body["route"]["reason"]
    assert body["backend"] == "extractive"  # answered locally instead
    assert world.vendor.requests[before:] == []


def test_relabelled_document_stops_escalation_at_once(world):
    question = world.benign[5]
    first = world.ask(world.staff, question)
    assert first["route"]["target"] == "external"
    top = first["citations"][0]["document_id"]
    assert world.admin.patch(f"/v1/documents/{top}", json={"label": "restricted"}).status_code == 200
    try:
        again = world.ask(world.staff, question)
        assert again["route"]["target"] == "local" and again["route"]["rule"] == "context_sensitive", again["route"]
    finally:
        world.admin.patch(f"/v1/documents/{top}", json={"label": "public"})


def test_users_outside_the_escalation_groups_stay_local(world):
    before = len(world.vendor.requests)
    body = world.ask(world.contractor, world.benign[0])
    assert body["route"]["target"] == "local" and body["route"]["rule"] == "not_permitted"
    assert world.vendor.requests[before:] == []


def test_vendor_failure_answers_locally(world, real_embedder):
    closed = FakeVendor()
    closed.close()  # nothing listens on its port any more
    settings = world.settings.model_copy(update={"escalation": escalation(closed, base_url=closed.url)})
    app = create_app(settings, embedder=real_embedder)
    staff = client(settings, app, "staff-failover", "employee", ["staff"])
    body = world.ask(staff, world.benign[0])
    assert body["route"]["target"] == "local" and body["route"]["rule"] == "external_failed", body["route"]
    assert body["backend"] == "extractive" and body["answer"]  # the local answer (or its not-found notice)


def test_escalation_modes(world, real_embedder):
    """local_declines: the vendor only sees questions the local model could not answer;
    no_context: a question with no readable passage goes out without any."""
    declines = world.settings.model_copy(update={"escalation": escalation(world.vendor, when=["local_declines"])})
    app = create_app(declines, embedder=real_embedder)
    staff = client(declines, app, "staff-declines", "employee", ["staff"])
    rules = Counter()
    for question in world.benign[:30]:
        sent = len(world.vendor.requests)
        route = world.ask(staff, question)["route"]
        rules[route["rule"]] += 1
        if route["rule"] == "local_answered":
            assert route["target"] == "local" and len(world.vendor.requests) == sent
        else:
            assert route["rule"] == "local_declined" and route["target"] == "external", route
            assert len(world.vendor.requests) == sent + 1
    print(f"\nlocal_declines over 30 questions: {dict(rules)}")
    assert rules["local_answered"] and rules["local_declined"]

    general = world.settings.model_copy(
        update={"escalation": escalation(world.vendor, when=["no_context"], groups=["staff", "newcomers"])}
    )
    app = create_app(general, embedder=real_embedder)
    newcomer = client(general, app, "newcomer-1", "employee", ["newcomers"])  # reads no document
    body = world.ask(newcomer, "At what temperature does water boil?")
    assert body["route"]["target"] == "external" and body["route"]["rule"] == "no_context"
    assert body["citations"] == [] and body["notice"].startswith("General knowledge")
    last = world.vendor.requests[-1].body["messages"]
    assert "<passage" not in json.dumps(last)
    staff = client(general, app, "staff-general", "employee", ["staff"])
    assert world.ask(staff, world.benign[0])["route"]["rule"] == "no_mode"  # has context: stays local


def test_route_explain_endpoint_and_cli(world, cli_env_for):
    before = len(world.vendor.requests)
    ok = world.admin.post("/v1/route/explain", json={"question": world.benign[0], "user": "staff-1"})
    assert ok.status_code == 200, ok.text
    result = ok.json()
    assert result["route"]["target"] == "external" and result["user"]["name"] == "staff-1"
    assert any(p["would_send"] for p in result["passages"])
    pii = world.admin.post(
        "/v1/route/explain", json={"question": f"{world.benign[0]} SSN 123-45-6789", "user": "staff-1"}
    ).json()
    assert pii["route"]["rule"] == "question_sensitive" and "national_id:us_ssn" in pii["route"]["detectors"]
    assert not any(p["would_send"] for p in pii["passages"])
    assert world.staff.post("/v1/route/explain", json={"question": "x"}).status_code == 403
    assert world.admin.post("/v1/route/explain", json={"question": "x", "user": "nobody"}).status_code == 404
    out = subprocess.run(
        [sys.executable, "-m", "cli", "route", "explain", world.benign[0], "--as", "staff-1", "--json"],
        env=cli_env_for(world.settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    assert cli["route"]["target"] == "external" and cli["route"]["rule"] == "eligible"
    assert world.vendor.requests[before:] == []  # explaining sends nothing


def test_audit_records_the_decision_and_no_key_is_logged(world, caplog):
    caplog.set_level(logging.DEBUG)
    world.ask(world.staff, world.benign[1])
    world.ask(world.staff, f"{world.benign[1]} card 4111 1111 1111 1111")
    auditor = client(world.settings, world.app, f"auditor-{time.time_ns()}", "auditor", [])
    page = auditor.get("/v1/audit/records", params={"route": "/v1/query", "limit": 2}).json()
    detail = [r["detail"]["route"] for r in page["records"]]
    assert {d["target"] for d in detail} == {"external", "local"}, detail
    external = next(d for d in detail if d["target"] == "external")
    assert external["passages_sent"] and external["model"] == "vendor-large"
    local = next(d for d in detail if d["target"] == "local")
    assert local["detectors"] == ["credit_card:card_number"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert VENDOR_KEY not in logged and "4111" not in logged


@pytest.fixture
def cli_env_for():
    import os

    def env(settings: Settings) -> dict[str, str]:
        out = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        policy = settings.escalation
        out.update(
            RAG_DATA_DIR=str(settings.data_dir),
            RAG_DATABASE_URL=settings.resolved_database_url,
            RAG_MODE="development",
            RAG_GENERATOR="extractive",
            RAG_ESCALATION__ENABLED="true",
            RAG_ESCALATION__BASE_URL=policy.base_url,
            RAG_ESCALATION__MODEL=policy.model,
            RAG_ESCALATION__GROUPS=",".join(policy.groups),
            RAG_ESCALATION__TERMS=",".join(policy.terms),
        )
        return out

    return env


# --- the pieces on their own -------------------------------------------------------------------


def test_guarded_transport_allows_only_the_configured_endpoint():
    sent = []
    inner = httpx.MockTransport(lambda request: sent.append(request.url) or httpx.Response(200, json={}))
    transport = GuardedTransport("https://api.vendor.example/v1", Scanner(default_detectors()), inner)
    http = httpx.Client(transport=transport)
    body = {"model": "m", "messages": [{"role": "user", "content": "What is TCP?"}]}
    assert http.post("https://api.vendor.example/v1/chat/completions", json=body).status_code == 200
    for url in (
        "https://evil.example/v1/chat/completions",
        "http://api.vendor.example/v1/chat/completions",
        "https://api.vendor.example:8443/v1/chat/completions",
        "https://api.vendor.example/admin",
        "https://api.vendor.example.evil.example/v1/chat/completions",
    ):
        with pytest.raises(EgressBlockedError):
            http.post(url, json=body)
    with pytest.raises(EgressBlockedError, match="email"):
        http.post(
            "https://api.vendor.example/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "mail a@b.example.com"}]},
        )
    with pytest.raises(EgressBlockedError, match="could not be checked"):
        http.post("https://api.vendor.example/v1/chat/completions", content=b"\xff not json")
    assert len(sent) == 1


def test_escalation_settings_refuse_unsafe_configurations(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="BASE_URL"):
        EscalationSettings(enabled=True, model="m")
    with pytest.raises(ValueError, match="https"):
        EscalationSettings(enabled=True, model="m", base_url="http://vendor.example/v1")
    with pytest.raises(ValueError, match="credentials"):
        EscalationSettings(enabled=True, model="m", base_url="https://user:pw@vendor.example/v1")
    with pytest.raises(ValueError, match="invalid pattern"):
        EscalationSettings(patterns=["(unclosed"])
    key_file = tmp_path / "vendor.key"
    key_file.write_text("sk-from-file\n")
    monkeypatch.setenv("RAG_ESCALATION__ENABLED", "true")
    monkeypatch.setenv("RAG_ESCALATION__BASE_URL", "https://api.vendor.example/v1")
    monkeypatch.setenv("RAG_ESCALATION__MODEL", "big-model")
    monkeypatch.setenv("RAG_ESCALATION__API_KEY_FILE", str(key_file))
    monkeypatch.setenv("RAG_ESCALATION__GROUPS", "staff, research")
    monkeypatch.setenv("RAG_ESCALATION__MAX_LABEL", "internal")
    policy = Settings(_env_file=None).escalation
    assert policy.enabled and policy.groups == ["staff", "research"] and policy.max_label == "internal"
    assert policy.vendor_key() == "sk-from-file"
    assert Settings(_env_file=None).escalation.vendor_key() not in repr(Settings(_env_file=None))


def test_scanner_fails_closed_on_misbehaving_detectors():
    from rag.errors import DetectionError

    good = default_detectors()
    assert Scanner(good).scan(["What is TCP?"]) == []
    assert Scanner(good).scan(["mail jane@example.com"]) == [Hit("email", "email")]
    for mode in ("raise", "hang", "garbage", "wrong_type"):
        with pytest.raises(DetectionError):
            Scanner([*good, Faulty("email", mode)], timeout_s=0.3).scan(["What is TCP?"])


def test_person_names_from_a_local_spacy_model(tmp_path):
    """RAG_ESCALATION__NER_MODEL_PATH loads a spaCy pipeline from a local folder (never a download):
    here a real pipeline whose entity ruler knows a name no heuristic would catch."""
    import spacy

    from rag.sensitivity.detectors import PersonNameDetector
    from rag.sensitivity.views import TextViews

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Zorblax Quint"}])
    nlp.to_disk(tmp_path / "ner")
    with_model = PersonNameDetector(tmp_path / "ner")
    assert with_model.find(TextViews("Ask Zorblax Quint about the budget")) == [Hit("person_name", "person_ner")]
    assert PersonNameDetector().find(TextViews("Ask Zorblax Quint about the budget")) == []
    assert with_model.find(TextViews("What is the difference between TCP and UDP?")) == []
