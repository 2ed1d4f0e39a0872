"""Scale-out on one machine: two API processes and two workers on PostgreSQL, sharing one index
folder. Workers publish new generations while both APIs answer searches; every search must succeed
and be served from exactly one generation, and both APIs must pick up the last generation without
a restart, releasing the old ones.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx
import numpy as np
import pytest

from indexes.generations import GenerationStore
from indexes.keyword import BM25KeywordIndex
from indexes.vector import FaissVectorIndex
from rag import jobs
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.settings import Settings

from . import fixtures
from .conftest import fresh_database
from .helpers import HANDBOOK, bearer, copy_tree, make_user
from .shared_data import locate, shared_path

QUESTIONS = [
    "How many vacation days do employees get?",
    "What is the meal allowance?",
    "Where are the offices?",
    "Vitamin D and bone density",
    "gene expression in tumour cells",
    "antibiotic resistance in bacteria",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _own_writer():
    """Abstract-sized texts of our own: a title and a paragraph each."""

    def write(folder, start: int, count: int) -> None:
        folder.mkdir(parents=True)
        for n in range(start, start + count):
            (folder / f"note-{n}.txt").write_text(f"Note {n}\n\n{' '.join(fixtures.paragraphs(n, 2, 5))}\n")

    return write


def _scifact_writer():
    """SciFact abstracts (../shared)."""
    scifact = shared_path("eval", "scifact")

    def write(folder, start: int, count: int) -> None:
        folder.mkdir(parents=True)
        lines = (scifact / "corpus.jsonl").read_text().splitlines()[start : start + count]
        for line in lines:
            doc = json.loads(line)
            (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}\n")

    return write


def _mapped_generations(pid: int, index_dir) -> set[str]:
    """Generation folders whose files the process still maps (old ones must be released)."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split(maxsplit=5)[-1].strip() for line in f if str(index_dir) in line}
    return {p.split(str(index_dir) + "/", 1)[1].split("/")[0] for p in paths if "/gen-" in p}


@pytest.mark.postgres
@pytest.mark.parametrize("writer", [_own_writer, _scifact_writer], ids=["own", "scifact"])
def test_two_apis_and_two_workers_share_one_index(tmp_path, writer):
    if writer is _own_writer and locate("eval", "scifact")[0].exists():
        # the same path, run once: with real documents where ../shared has them (minutes per run)
        pytest.skip("SciFact is beside the clone: the scifact variant runs this with real documents")
    write_documents = writer()
    with fresh_database("postgres", tmp_path) as url:
        settings = Settings(data_dir=tmp_path / "data", database_url=url, mode="development", _env_file=None)
        engine = make_engine(settings)
        migrate(engine)
        factory = make_sessionmaker(engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(
            RAG_DATA_DIR=str(settings.data_dir),
            RAG_DATABASE_URL=url,
            RAG_MODE="development",
            RAG_GENERATOR="extractive",
            RAG_PUBLISH_INTERVAL_S="3",
            RAG_KEEP_GENERATIONS="100",
            RAG_WORKER_POLL_S="0.5",
        )
        handbook = copy_tree(HANDBOOK, tmp_path / "docs" / "handbook")
        subprocess.run(
            [sys.executable, "-m", "cli", "ingest", str(handbook), "--groups", "everyone"],
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        key = make_user(settings, "load-user", "employee", ["everyone"])
        ports = [_free_port(), _free_port()]
        # stderr to files: an undrained pipe can block a process, and a failure must show what it said
        api_logs = [tmp_path / f"api-{n}.log" for n in range(2)]
        log_files = [log.open("w") for log in api_logs]
        apis = [
            subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--port", str(p)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=file,
            )
            for p, file in zip(ports, log_files, strict=True)
        ]
        workers: list[subprocess.Popen] = []
        try:
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", headers=bearer(key), timeout=60) for p in ports]
            started = time.monotonic()
            for c, api, log in zip(clients, apis, api_logs, strict=True):
                while True:
                    try:
                        if c.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    said = log.read_text()[-3000:]
                    assert api.poll() is None, f"API exited with {api.returncode}: {said}"
                    assert time.monotonic() - started < 300, f"API did not start in 300 s: {said}"
                    time.sleep(0.5)
            print(f"\nscale-out: both APIs answered /healthz {time.monotonic() - started:.1f} s after starting")

            results: list[tuple[int, int, int, list[int]]] = []  # (api, status, generation, chunk ids)
            stop = threading.Event()

            def load(api: int) -> None:
                n = 0
                while not stop.is_set():
                    question = QUESTIONS[n % len(QUESTIONS)]
                    n += 1
                    try:
                        r = clients[api].post("/v1/search", json={"query": question, "top_k": 10})
                    except httpx.TransportError:
                        results.append((api, 0, -1, []))
                        continue
                    body = r.json() if r.status_code == 200 else {}
                    results.append(
                        (
                            api,
                            r.status_code,
                            body.get("generation", -1),
                            [x["chunk_id"] for x in body.get("results", [])],
                        )
                    )

            threads = [threading.Thread(target=load, args=(a,)) for a in (0, 1)]
            for t in threads:
                t.start()
            for n in range(2):  # two folders for two workers, queued like the admin API does
                folder = tmp_path / "docs" / f"science-{n}"
                write_documents(folder, n * 60, 60)
                with factory() as session:
                    jobs.create_job(session, str(folder), "science", ["everyone"], None)
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "cli", "worker", "--once"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            for w in workers:
                _, err = w.communicate(timeout=900)
                assert w.returncode == 0, err[-2000:]
            final = GenerationStore(settings.index_dir).current().generation
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # both APIs pick up the last generation without a restart
                seen = {api: max((g for a, s, g, _ in results if a == api), default=-1) for api in (0, 1)}
                if min(seen.values()) == final:
                    break
                time.sleep(0.5)
            time.sleep(2.5)  # a little load on the final generation
            stop.set()
            for t in threads:
                t.join()
            mapped = [_mapped_generations(api.pid, settings.index_dir) for api in apis]
        finally:
            for process in [*apis, *workers]:
                process.terminate()
            for process in [*apis, *workers]:
                process.wait(timeout=30)
            for file in log_files:
                file.close()
            engine.dispose()

        failed = [r for r in results if r[1] != 200]
        by_api = defaultdict(set)
        for api, _, generation, _ in results:
            by_api[api].add(generation)
        print(
            f"\nscale-out: {len(results)} searches over 2 APIs, {len(failed)} failed; generations seen "
            f"{ {a: sorted(g) for a, g in by_api.items()} }, final {final}, mapped at the end {mapped}"
        )
        assert not failed, failed[:5]
        assert all(final in gens and len(gens) >= 2 for gens in by_api.values())
        assert all(m <= {f"gen-{final:06d}"} for m in mapped), mapped  # old generations released (still on disk)
        # no mixed-generation answer: every result belongs to the generation the response names;
        # generations only grew here, so ids from a newer one would show up as strangers
        store = GenerationStore(settings.index_dir)
        members = {}
        for folder in sorted(settings.index_dir.glob("gen-*")):
            number = int(folder.name.split("-")[1])
            ids = set(FaissVectorIndex.load(folder).ids().tolist())
            assert ids == set(BM25KeywordIndex.load(folder).ids().tolist())
            members[number] = ids
        checked = 0
        for _, _, generation, chunk_ids in results:
            if generation in members:
                assert set(chunk_ids) <= members[generation], generation
                checked += 1
        assert checked and store.current().generation == final
        assert np.all([len(c) == 10 for _, _, _, c in results])
