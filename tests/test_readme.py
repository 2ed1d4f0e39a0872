"""The README's API examples (curl and the official openai client) run against a live `rag serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from .helpers import HANDBOOK, REPO, copy_tree, free_port, wait_until_serving

README = (REPO / "README.md").read_text()


def _examples() -> tuple[list[str], str, str]:
    section = README.split("<!-- api-examples")[1].split("<!-- /api-examples -->")[0]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    lines = [c.strip() for c in re.sub(r"\\\n\s*", "", bash).splitlines()]
    setup = next(c.split("#")[0].strip() for c in lines if c.startswith("export RAG_KEY="))
    return [c for c in lines if c.startswith("curl")], python, setup


@pytest.fixture
def live_server(tmp_path):
    """`rag ingest` + `rag serve` as a user runs them (SQLite, extractive generator for speed)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_DATA_DIR=str(tmp_path / "data"), RAG_GENERATOR="extractive", RAG_MODE="development")
    docs = copy_tree(HANDBOOK, tmp_path / "handbook")
    subprocess.run(
        [sys.executable, "-m", "cli", "ingest", str(docs), "--collection", "handbook", "--groups", "everyone"],
        env=env,
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(server, port, timeout_s=120, pause_s=0.5)
        yield port, env
    finally:
        server.terminate()
        server.wait(30)


def test_readme_examples_work_against_a_live_server(live_server, tmp_path):
    port, env = live_server
    commands, python, setup = _examples()
    assert len(commands) == 3
    # the README's own first line, verbatim, with .venv/bin/rag standing for this environment's rag
    bin_dir = tmp_path / "user" / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rag").write_text(f'#!/bin/sh\nexec {sys.executable} -m cli "$@"\n')
    (bin_dir / "rag").chmod(0o755)
    key = subprocess.run(
        ["bash", "-c", f'{setup}\necho "$RAG_KEY"'],
        cwd=tmp_path / "user",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert key.startswith("rag_")
    env = {**env, "RAG_KEY": key}
    outputs = []
    for command in commands:
        out = subprocess.run(
            command.replace("localhost:8000", f"localhost:{port}"),
            shell=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outputs.append(out.stdout)
    search, answer, streamed = outputs
    assert json.loads(search)["results"][0]["path"].endswith("time-off.md")
    body = json.loads(answer)
    assert "27 vacation days" in body["answer"], {k: body.get(k) for k in ("status", "grounded", "answerability")}
    assert any(c["path"].endswith("time-off.md") and f"[{c['n']}]" in body["answer"] for c in body["citations"])
    assert "event: delta" in streamed and "event: final" in streamed
    script = tmp_path / "example.py"
    script.write_text(python.replace("localhost:8000", f"localhost:{port}"))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    lines = out.stdout.splitlines()
    assert "27 vacation days" in lines[0] and re.match(r"\[\d+\] \S+time-off\.md: ", lines[1])
    assert lines[-1] == lines[0]  # the streamed answer equals the whole one
