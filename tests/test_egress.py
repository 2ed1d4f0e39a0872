"""With escalation disabled (the default), a full ingest and query run opens no network connection.

Two checks: in-process, every Python socket connection and name lookup is recorded and refused
while the embedder loads, a folder is ingested and the API answers with the embedded model; and
the real CLI runs in a network namespace with no interface up at all, where any attempt to reach
a model hub or a vendor would fail the run.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from .helpers import HANDBOOK, bearer, copy_tree, make_user, run_job


class EgressAttemptError(AssertionError):
    pass


@pytest.fixture
def socket_guard(monkeypatch):
    """Records every attempt to open an internet socket or resolve a name, and refuses it."""
    attempts: list[tuple[str, object]] = []

    def refuse(kind: str, target: object) -> None:
        attempts.append((kind, target))
        raise EgressAttemptError(f"network access attempted: {kind} {target!r}")

    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse("connect", address)
        return original_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse("connect_ex", address)
        return original_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse("getaddrinfo", host))
    monkeypatch.setattr(socket, "gethostbyname", lambda host: refuse("gethostbyname", host))
    return attempts


def test_the_socket_guard_catches_a_connection(socket_guard):
    """The guard can fail: a connection attempt is recorded and refused."""
    with pytest.raises(EgressAttemptError):
        socket.create_connection(("10.255.255.1", 80), timeout=1)
    with pytest.raises(EgressAttemptError):
        import httpx

        httpx.get("https://huggingface.co", timeout=1)
    assert [kind for kind, _ in socket_guard] == ["getaddrinfo", "getaddrinfo"]


def test_full_ingest_and_query_make_no_outbound_connection(settings, db, tmp_path, local_llm_dir, socket_guard):
    """SQLite and PostgreSQL both: psycopg talks to the database through libpq (C), not Python
    sockets, so the guard sees only what Python code would send elsewhere."""
    from api.app import create_app
    from rag.embedder import load_embedder

    assert not settings.escalation.enabled
    embedder = load_embedder(settings)  # from the packaged folder
    root = copy_tree(HANDBOOK, tmp_path / "handbook")
    report = run_job(settings, db, embedder, root, groups=["everyone"])
    assert report.files_failed == 0 and report.files_indexed > 0
    s = settings.model_copy(update={"generator": "embedded", "llm_model_path": str(local_llm_dir)})
    client = TestClient(
        create_app(s, embedder=embedder), raise_server_exceptions=False, headers=bearer(make_user(s, "egress-user"))
    )
    answer = client.post("/v1/query", json={"question": "How many vacation days do employees get?"}).json()
    assert answer["route"] == {
        "target": "local",
        "reason": "escalation disabled",
        "rule": "disabled",
        "detectors": None,
        "labels": None,
        "withheld": None,
        "passages_sent": None,
        "model": None,
    }
    assert answer["backend"] == "embedded" and answer["citations"]
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "private-rag", "messages": [{"role": "user", "content": "Where are the offices?"}]},
    )
    assert chat.status_code == 200
    assert socket_guard == []


def test_cli_runs_in_a_network_namespace_without_network(tmp_path, local_llm_dir):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.skip("cannot create a network namespace here (needs unshare and privileges)")
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_DATA_DIR=str(tmp_path / "data"),
        RAG_MODE="development",
        RAG_GENERATOR="embedded",
        RAG_LLM_MODEL_PATH=str(local_llm_dir),
    )
    isolated = ["unshare", "-n", sys.executable, "-m", "cli"]
    ingest = subprocess.run(
        [*isolated, "ingest", str(HANDBOOK), "--groups", "everyone"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    ask = subprocess.run(
        [*isolated, "ask", "How many vacation days do employees get?", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ask.returncode == 0, ask.stderr[-2000:]
    assert '"backend": "embedded"' in ask.stdout and '"target": "local"' in ask.stdout
    probe = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-c",
            "import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(('1.1.1.1', 443)))",
        ],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() not in ("", "0"), probe.stdout  # the namespace really has no route out
