"""Integration: a real vLLM OpenAI-compatible server (CPU build) on loopback answers through our API.

vLLM runs from its own virtualenv (scripts/setup-vllm.sh; its pins clash with ours) serving the
packaged SmolLM2-135M-Instruct converted to a Hugging Face folder by our own converter. CI sets
RAG_REQUIRE_VLLM=1, so a missing server there fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app

from .helpers import HANDBOOK, REPO, bearer, copy_tree, make_user, run_job
from .shared_data import shared_path

VLLM_VENV = Path(os.environ.get("RAG_VLLM_VENV", REPO / ".venv-vllm"))
REQUIRE = os.environ.get("RAG_REQUIRE_VLLM") == "1"
SERVED = "SmolLM2-135M-Instruct"
FILES = [
    "getting-started__equipment.md",
    "travel-and-leave__leave.md",
    "tools__github.md",
    "general-information-and-resources__collaboration-tools.md",
]


def _own_documents(folder: Path) -> int:
    """Our sample handbook (Markdown, HTML, Word, text; its onboarding page lists the equipment)."""
    copy_tree(HANDBOOK, folder)
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _shared_documents(folder: Path) -> int:
    """Four real pages of the 18F handbook (../shared)."""
    folder.mkdir()
    for name in FILES:
        shutil.copyfile(shared_path("docs-sample", "18f-handbook", name), folder / name)
    return len(FILES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_url(local_llm_dir, tmp_path_factory):
    python = VLLM_VENV / "bin" / "python"
    if not python.exists():
        if REQUIRE:
            pytest.fail(f"vLLM virtualenv missing at {VLLM_VENV} (run scripts/setup-vllm.sh)")
        pytest.skip("vLLM not installed (scripts/setup-vllm.sh)")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    cmd = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(local_llm_dir),
        "--served-model-name",
        SERVED,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "2048",
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-num-seqs",
        "8",
    ]
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"vLLM exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vLLM did not start in time:\n{log.read_text()[-3000:]}")
        yield url
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)


def _vllm_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(m) for m in re.findall(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


@pytest.mark.slow
@pytest.mark.parametrize("documents", [_own_documents, _shared_documents], ids=["handbook", "18f-handbook"])
def test_answers_come_from_the_vllm_server(settings, db, embedder, vllm_url, tmp_path, documents):
    folder = tmp_path / "docs"
    count = documents(folder)
    report = run_job(settings, db, embedder, folder, groups=["staff"])
    assert report.files_indexed == count
    s = settings.model_copy(
        update={
            "generator": "openai",
            "generator_base_url": f"{vllm_url}/v1",
            "generator_model": SERVED,
            "generator_fallback": "none",
            "max_tokens": 64,
            "prompt_passages": 1,
        }
    )
    key = make_user(s, "alice", groups=["staff"])
    client = TestClient(create_app(s, embedder=embedder), raise_server_exceptions=False, headers=bearer(key))
    ready = client.get("/readyz", headers=bearer(make_user(s, "ops", "admin")))
    assert ready.json()["checks"]["generator"] == "ok"
    before = _vllm_requests(vllm_url)
    question = "What equipment does a new employee receive?"

    body = client.post("/v1/query", json={"question": question}).json()
    assert body["backend"] == "openai" and body["model"] == SERVED and not body["fallback"], body
    assert body["usage"]["completion_tokens"] > 0 and body["status"] in ("answered", "not_found", "declined")
    if body["status"] == "answered":
        assert body["citations"] and all(f"[{c['n']}]" in body["answer"] for c in body["citations"])

    with client.stream("POST", "/v1/query", json={"question": question, "stream": True}) as r:
        raw = "".join(r.iter_text())
    assert "event: final" in raw and "event: error" not in raw

    from openai import OpenAI

    oa = OpenAI(base_url="http://testserver/v1", api_key=key, http_client=client)
    done = oa.chat.completions.create(model="private-rag", messages=[{"role": "user", "content": question}])
    assert done.rag["backend_model"] == SERVED and done.usage.completion_tokens > 0
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in oa.chat.completions.create(
            model="private-rag", messages=[{"role": "user", "content": question}], stream=True
        )
        if c.choices
    )
    assert streamed == done.choices[0].message.content  # greedy decoding: the same answer both ways
    assert _vllm_requests(vllm_url) - before >= 4  # every answer above was generated by vLLM
