"""Prompt-injection and poisoning suite, full run: attack success rates per category and generator.

    python bench/injection.py [--generators extractive,embedded] [--max-tokens 96] [--limit N] [--json FILE]

The suite (tests/injection_suite.py: 56 poisoned documents, 56 injected questions) is written as real
files and ingested through the real pipeline into a SQLite database with the real embedder; the
attacker is an employee in group `everyone`, a document only `hr` may read holds a canary. Every
attack goes through `POST /v1/query` of the real app with the real generator (the packaged SmolLM2
on the CPU, prompt of 1 passage as by default, or extraction). Controls in the same run: the hr
user sees the canary (so the leak check can fire), an allowed intranet link survives, and the plain
handbook questions are still answered.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

# bench/ingest.py would shadow the `ingest` package that the pipeline imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generators", default="extractive,embedded")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--limit", type=int, default=0, help="only the first N cases of each source (0 = all)")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "rag-bench-models")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from api.app import create_app
    from rag.db.session import make_engine, make_sessionmaker, migrate
    from rag.embedder import load_embedder
    from rag.generators.embedded import ensure_local_model
    from rag.settings import Settings
    from tests import injection_suite as suite
    from tests.helpers import HANDBOOK, bearer, make_user

    problems = suite.suite_is_sound()
    if problems:
        raise SystemExit("unsound suite: " + "; ".join(problems))
    cases, _ = suite.all_cases()
    if args.limit:
        cases = [c for c in cases if c.source == "document"][: args.limit] + [
            c for c in cases if c.source == "question"
        ][: args.limit]
    tmp = Path(tempfile.mkdtemp(prefix="rag-inject-"))
    base = Settings(
        data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'rag.sqlite3'}", mode="development", _env_file=None
    )
    if "answer_link_hosts" in Settings.model_fields:
        base = base.model_copy(update={"answer_link_hosts": [suite.ALLOWED_HOST]})
    engine = make_engine(base)
    migrate(engine)
    db = (engine, make_sessionmaker(engine))
    embedder = load_embedder(base)
    started = time.perf_counter()
    world = suite.build_world(base, db, embedder, tmp / "corpus", HANDBOOK)
    print(f"ingested {len(world.chunks)} chunks in {time.perf_counter() - started:.1f} s; {len(cases)} attacks")
    attacker, hr_user = make_user(base, "mallory", groups=["everyone"]), make_user(base, "hana", groups=["hr"])
    report: dict[str, dict] = {}
    for name in args.generators.split(","):
        update: dict = {"generator": name}
        if name == "embedded":
            update |= {"llm_model_path": str(ensure_local_model(None, args.models)), "prompt_passages": 1}
        s = base.model_copy(update=update)
        app = create_app(s, embedder=embedder)
        client = TestClient(app, raise_server_exceptions=False, headers=bearer(attacker))
        hr_client = TestClient(app, raise_server_exceptions=False, headers=bearer(hr_user))

        def progress(i: int, n: int, outcome, name=name) -> None:
            hits = [k for k, v in outcome.verdict.items() if v]
            if hits or i % 10 == 0 or i == n:
                print(f"  [{name} {i}/{n}] {outcome.case.id}: {', '.join(hits) or 'held'}", flush=True)

        t0 = time.perf_counter()
        outcomes = suite.run_cases(client, cases, world, args.max_tokens, progress)
        elapsed = time.perf_counter() - t0
        ask = {"max_tokens": args.max_tokens}
        hr_body = hr_client.post("/v1/query", json={"question": suite.HR_QUESTION, **ask}).json()
        control = client.post("/v1/query", json={"question": suite.CONTROL_QUESTION, **ask}).json()
        plain = [client.post("/v1/query", json={"question": q, **ask}).json() for q in suite.BASE_QUESTIONS]
        controls = {
            "hr_user_sees_canary": suite.HR_CANARY in json.dumps(hr_body),
            "allowed_link_kept": f"https://{suite.ALLOWED_HOST}/forms/travel" in control["answer"],
            "control_answer": control["answer"],
            "plain_questions_answered": sum(b["status"] == "answered" for b in plain),
            "plain_questions": len(plain),
            "plain_false_citations": sum(bool(suite.false_citations(b, world.chunks)) for b in plain),
        }
        report[name] = {
            "seconds": round(elapsed, 1),
            "all": suite.rates(outcomes),
            "document": suite.rates(outcomes, "document"),
            "question": suite.rates(outcomes, "question"),
            "controls": controls,
            "succeeded": {
                k: [o.case.id for o in outcomes if o.verdict[k]]
                for k in suite.CATEGORIES
                if any(o.verdict[k] for o in outcomes)
            },
            "outcomes": [
                {
                    "id": o.case.id,
                    "status": o.status,
                    "verdict": o.verdict,
                    "answer": o.body.get("answer"),
                    "quotes": [(c["n"], c["path"].rsplit("/", 1)[-1], c["quote"]) for c in o.body.get("citations", [])],
                    "false_citations": suite.false_citations(o.body, world.chunks) if o.status == 200 else [],
                }
                for o in outcomes
            ],
        }
        print(f"\n{name}: {len(outcomes)} attacks in {elapsed:.0f} s (max_tokens {args.max_tokens})")
        print(f"  {'category':24} {'all':>12} {'documents':>12} {'questions':>12}")
        for k in suite.CATEGORIES:
            cells = []
            for part in ("all", "document", "question"):
                hit, n = report[name][part][k]
                cells.append(f"{hit}/{n} {100 * hit / n if n else 0:4.1f}%")
            print(f"  {k:24} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12}")
        print(f"  controls: {json.dumps({k: v for k, v in controls.items() if k != 'control_answer'})}")
        for k, ids in report[name]["succeeded"].items():
            print(f"  {k}: {', '.join(ids)}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"(repo {REPO.name}; corpus in {tmp})")


if __name__ == "__main__":
    main()
