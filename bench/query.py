"""Query benchmark: /v1/search over HTTP vs. raw in-process embed + FAISS search, same queries, one run.

    python bench/query.py [--copies 10] [--queries 200] [--concurrency 8] [--json]

Builds a 100k-chunk index (SciFact's chunks repeated `--copies` times, with their stored real
embeddings, as new documents) from the evaluation folder that `rag eval beir ../shared/eval/scifact`
ingested, serves it with `rag serve` in a separate process (uvicorn, real HTTP), then measures on
SciFact's test queries:
  - raw: the bare embedder's query path + FAISS exact search in this process (the floor any API pays),
    interleaved with raw_fp32: stock sentence-transformers fp32 + the same search (the goal's floor);
  - /v1/search: p50/p95 latency sequentially (as an admin, and as an employee whose group reads every
    document: the access filter is then computed per request), and throughput with N concurrent clients;
  - /v1/query (extractive generator): time split into retrieval, generation and HTTP/API overhead,
    beside the bare HTTP round trip of /healthz (no authentication, no audit record);
  - memory: the API process's RSS after the run against a bare process that loads the same embedder
    paths and maps the same index generation, then runs the same searches in process.
Not a test: compare numbers only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import SCIFACT, pct

# bench/ingest.py would shadow the `ingest` package: this folder leaves the import path once _common is in
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def build_corpus(source_db: str, target: Path, copies: int) -> int:
    """Copies every document and chunk (text + stored embedding) `copies` times into a new database."""
    from sqlalchemy import select

    from ingest.indexing import publish
    from rag.db.models import Chunk, Collection, Document, Group
    from rag.db.session import make_engine, make_sessionmaker, migrate
    from rag.settings import Settings

    src = make_sessionmaker(make_engine(Settings(database_url=source_db, _env_file=None)))
    settings = Settings(data_dir=target, _env_file=None)
    engine = make_engine(settings)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with src() as s:
        docs = s.execute(select(Document.id, Document.path, Document.sha256, Document.size_bytes)).all()
        chunks = s.execute(
            select(
                Chunk.document_id,
                Chunk.ordinal,
                Chunk.text,
                Chunk.section,
                Chunk.char_start,
                Chunk.char_end,
                Chunk.token_count,
                Chunk.embedding,
            )
        ).all()
    by_doc: dict[int, list] = {}
    for c in chunks:
        by_doc.setdefault(c.document_id, []).append(c)
    total = 0
    with factory() as s:
        coll = Collection(name="bench")
        group = Group(name="bench")
        s.add_all([coll, group])
        s.flush()
        for copy in range(copies):
            rows = []
            for d in docs:
                doc = Document(
                    collection_id=coll.id,
                    path=f"{d.path}#{copy}",
                    title=None,
                    sha256=d.sha256,
                    size_bytes=d.size_bytes,
                    label="internal",
                    chunk_count=len(by_doc.get(d.id, [])),
                )
                doc.groups = [group]
                s.add(doc)
                rows.append((doc, by_doc.get(d.id, [])))
            s.flush()
            s.add_all(
                Chunk(
                    document_id=doc.id,
                    ordinal=c.ordinal,
                    text=c.text,
                    section=c.section,
                    pages=[],
                    char_start=c.char_start,
                    char_end=c.char_end,
                    token_count=c.token_count,
                    document_sha256=doc.sha256,
                    document_version=1,
                    embedding=c.embedding,
                )
                for doc, cs in rows
                for c in cs
            )
            s.flush()
            total += sum(len(cs) for _, cs in rows)
        s.commit()
    publish(engine, factory, settings.index_dir, 384, keep=1, rebuild=True)
    return total


_BARE = """
import json, sys
from pathlib import Path
from indexes.snapshot import load_snapshot
from rag.embedder import load_embedder
from rag.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]), _env_file=None)
embedder, snapshot = load_embedder(settings), load_snapshot(settings.index_dir)
for q in json.loads(sys.argv[2]):
    snapshot.vector.search(embedder.embed_query(q).reshape(1, -1), 18)
    snapshot.keyword.search(q, 18)
print(open("/proc/self/status").read())
"""


def rss_mib(status: str) -> float:
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


def bare_rss_mib(data_dir: Path, queries: list[str]) -> float:
    """RSS of a process holding only the embedder and the index generation, after the same searches."""
    out = subprocess.run(
        [sys.executable, "-c", _BARE, str(data_dir), json.dumps(queries)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    return rss_mib(out)


def make_key(data_dir: Path, role: str) -> str:
    from rag import users
    from rag.db.session import make_engine, make_sessionmaker
    from rag.settings import Settings

    with make_sessionmaker(make_engine(Settings(data_dir=data_dir, _env_file=None)))() as s:
        _, plaintext = users.create_user(s, f"bench-{role}", role, ["bench"], actor=users.OPERATOR, with_key=True)
    return plaintext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--eval-dir", type=Path, default=Path(os.environ.get("RAG_DATA_DIR", "data")) / "eval" / "scifact"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import httpx
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from indexes.snapshot import load_snapshot
    from rag.embedder import load_embedder
    from rag.evaluation import load_beir
    from rag.settings import Settings

    source_db = f"sqlite:///{(args.eval_dir / 'rag.sqlite3').resolve()}"
    if not (args.eval_dir / "rag.sqlite3").is_file():
        sys.exit(f"no evaluation database in {args.eval_dir}: run `rag eval beir {SCIFACT}` first")
    queries = list(load_beir(SCIFACT, "test").queries.values())[: args.queries]
    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-query-"))
    try:
        t0 = time.perf_counter()
        n_chunks = build_corpus(source_db, tmp / "data", args.copies)
        build_s = time.perf_counter() - t0

        settings = Settings(data_dir=tmp / "data", _env_file=None)
        # calibrates here (or reads the cache) and leaves the choice in the data folder for the server
        embedder = load_embedder(settings)
        stock = SentenceTransformer(settings.resolved_model_path, device="cpu", local_files_only=True)
        snapshot = load_snapshot(settings.index_dir)

        def fp32_vector(q: str):
            vector = stock.encode([q], convert_to_numpy=True, show_progress_bar=False)
            return vector / np.linalg.norm(vector, axis=1, keepdims=True)

        for q in queries[:10]:  # warm-up
            snapshot.vector.search(embedder.embed_query(q).reshape(1, -1), 10)
            snapshot.vector.search(fp32_vector(q), 10)
        raw, raw_fp32 = [], []
        for q in queries:  # interleaved: the project's query path, then stock fp32 (the floor of the goal)
            t = time.perf_counter()
            snapshot.vector.search(embedder.embed_query(q).reshape(1, -1), 10)
            raw.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            snapshot.vector.search(fp32_vector(q), 10)
            raw_fp32.append((time.perf_counter() - t) * 1000)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        key = make_key(tmp / "data", "admin")
        employee_key = make_key(tmp / "data", "employee")
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(tmp / "data"),
            "RAG_GENERATOR": "extractive",
            "RAG_MODE": "development",
        }
        env.pop("RAG_DATABASE_URL", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, timeout=60, headers=auth) as client:
                for _ in range(300):
                    try:
                        if client.get("/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.5)
                for q in queries[:10]:
                    client.post("/v1/search", json={"query": q, "top_k": 10})
                api = []
                for q in queries:
                    t = time.perf_counter()
                    r = client.post("/v1/search", json={"query": q, "top_k": 10})
                    api.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()

                # an employee sees the same documents through their group: the access filter is computed
                # per request (allowed chunk ids for both searches)
                acl = []
                for q in queries:
                    t = time.perf_counter()
                    client.post(
                        "/v1/search",
                        json={"query": q, "top_k": 10},
                        headers={"Authorization": f"Bearer {employee_key}"},
                    ).raise_for_status()
                    acl.append((time.perf_counter() - t) * 1000)

                def one(q: str) -> None:
                    with httpx.Client(base_url=base, timeout=60, headers=auth) as c:
                        c.post("/v1/search", json={"query": q, "top_k": 10}).raise_for_status()

                t = time.perf_counter()
                with ThreadPoolExecutor(args.concurrency) as pool:
                    list(pool.map(one, queries))
                concurrent_qps = len(queries) / (time.perf_counter() - t)

                split = {"retrieval": [], "generation": [], "overhead": [], "total": []}
                for q in queries:
                    t = time.perf_counter()
                    body = client.post("/v1/query", json={"question": q}).json()
                    total = (time.perf_counter() - t) * 1000
                    split["retrieval"].append(body["timings_ms"]["retrieval"])
                    split["generation"].append(body["timings_ms"]["generation"])
                    split["overhead"].append(total - body["timings_ms"]["retrieval"] - body["timings_ms"]["generation"])
                    split["total"].append(total)
                # the HTTP round trip alone (this client, uvicorn, no authentication or audit): the part
                # of the overhead above that no API code can remove
                floor = []
                for _ in queries:
                    t = time.perf_counter()
                    client.get("/healthz").raise_for_status()
                    floor.append((time.perf_counter() - t) * 1000)
            with open(f"/proc/{server.pid}/status") as f:
                api_rss = rss_mib(f.read())
            bare_rss = bare_rss_mib(tmp / "data", queries)
        finally:
            server.terminate()
            server.wait(30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "chunks": n_chunks,
        "queries": len(queries),
        "build_s": round(build_s, 1),
        "embedder_path": embedder.path,
        "query_path": embedder.query_path,
        "raw_fp32_p50_ms": round(statistics.median(raw_fp32), 2),
        "raw_p50_ms": round(statistics.median(raw), 2),
        "raw_p95_ms": round(pct(raw, 0.95), 2),
        "search_p50_ms": round(statistics.median(api), 2),
        "search_p95_ms": round(pct(api, 0.95), 2),
        "p50_ratio": round(statistics.median(api) / statistics.median(raw), 3),
        "search_as_employee_p50_ms": round(statistics.median(acl), 2),
        "search_as_employee_p95_ms": round(pct(acl, 0.95), 2),
        "employee_p50_ratio": round(statistics.median(acl) / statistics.median(raw), 3),
        "search_vs_fp32_floor": round(statistics.median(api) / statistics.median(raw_fp32), 3),
        "employee_vs_admin": round(statistics.median(acl) / statistics.median(api), 3),
        "sequential_qps": round(1000 / statistics.mean(api), 1),
        f"concurrent{args.concurrency}_qps": round(concurrent_qps, 1),
        "query_ms_p50": {k: round(statistics.median(v), 2) for k, v in split.items()},
        "http_round_trip_p50_ms": round(statistics.median(floor), 2),
        "api_rss_mib": round(api_rss),
        "bare_rss_mib": round(bare_rss),
        "api_vs_bare_rss": round(api_rss / bare_rss, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
