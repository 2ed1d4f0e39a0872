"""Audit log: one record per audited request (answered or refused), answers withheld when the record
cannot be written, the chain detects every tampering, the database refuses updates and deletes."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from api.app import create_app
from rag.audit import AuditEntry, HashChainAuditLog, canonical, record_values
from rag.db.models import AuditRecord

from .helpers import HANDBOOK, bearer, copy_tree, make_user, run_job


@pytest.fixture
def app_and_keys(settings, db, fake_embedder, tmp_path):
    run_job(settings, db, fake_embedder, copy_tree(HANDBOOK, tmp_path / "hb"), groups=["everyone"], label="internal")
    s = settings.model_copy(update={"generator": "extractive"})
    app = create_app(s, embedder=fake_embedder)
    keys = {r: make_user(s, f"{r}1", r) for r in ("employee", "admin", "auditor")}
    return app, keys


def _records(db) -> list[AuditRecord]:
    _, factory = db
    with factory() as s:
        return s.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()


def test_every_audited_request_writes_exactly_one_record(app_and_keys, db):
    app, keys = app_and_keys
    client = TestClient(app, raise_server_exceptions=False)
    emp, aud = bearer(keys["employee"]), bearer(keys["auditor"])
    calls = [
        ("/v1/query", {"question": "What is the meal allowance in Portugal?"}, emp, 200),
        ("/v1/query", {"question": "What is the meal allowance in Portugal?", "stream": True}, emp, 200),
        ("/v1/search", {"query": "vacation days", "top_k": 3}, emp, 200),
        (
            "/v1/chat/completions",
            {"model": "private-rag", "messages": [{"role": "user", "content": "Where are the offices?"}]},
            emp,
            200,
        ),
        ("/v1/query", {"question": "no key"}, {}, 401),
        ("/v1/search", {"query": "auditors may not search"}, aud, 403),
        ("/v1/query", {"question": ""}, emp, 422),
        ("/v1/query", {"question": "x" * 3000}, emp, 413),
        ("/v1/chat/completions", {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}, emp, 404),
    ]
    for path, body, headers, status in calls:
        before = len(_records(db))
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == status, (path, r.text)
        after = _records(db)
        assert len(after) == before + 1, (path, status)
        rec = after[-1]
        assert (rec.route, rec.status, rec.request_id) == (path, status, r.headers["x-request-id"])
    answered, streamed, searched, chatted, anonymous, forbidden, invalid, too_long, _ = _records(db)
    assert answered.principal == "employee1" and answered.role == "employee" and answered.groups == ["everyone"]
    assert answered.question == "What is the meal allowance in Portugal?" and "45 EUR" in answered.answer
    d = answered.detail
    assert d["model"] == "extractive" and d["backend"] == "extractive" and d["labels"] == ["internal"]
    assert d["route"] == {"target": "local", "reason": "escalation disabled", "rule": "disabled"}
    assert d["citations"] and {"chunk_id", "document_id", "version", "score", "label"} <= set(d["retrieved"][0])
    assert {c["chunk_id"] for c in d["citations"]} <= {x["chunk_id"] for x in d["retrieved"]}
    assert "tokens" in d and answered.latency_ms > 0
    assert streamed.answer == answered.answer
    assert searched.answer is None and len(searched.detail["retrieved"]) == 3
    assert chatted.question == "Where are the offices?" and chatted.answer
    assert (
        anonymous.principal is None and anonymous.question == "no key" and anonymous.detail["error"] == "unauthorized"
    )
    assert forbidden.principal == "auditor1" and forbidden.detail["error"] == "forbidden"
    assert invalid.detail["error"] == "invalid_request" and too_long.detail["error"] == "question_too_long"
    assert len(too_long.question) == 3000


def test_no_answer_leaves_when_its_record_cannot_be_written(app_and_keys, db, settings):
    app, keys = app_and_keys
    client = TestClient(app, raise_server_exceptions=False)
    engine, _ = db
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_records"))
    for body in (
        {"question": "What is the meal allowance in Portugal?"},
        {"question": "What is the meal allowance in Portugal?", "stream": True},
    ):
        r = client.post("/v1/query", json=body, headers=bearer(keys["employee"]))
        assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable"
        assert "45 EUR" not in r.text
    r = client.post(
        "/v1/chat/completions",
        headers=bearer(keys["employee"]),
        json={"model": "private-rag", "messages": [{"role": "user", "content": "meal allowance Portugal?"}]},
    )
    assert r.status_code == 503 and "45 EUR" not in r.text


def test_an_unhandled_error_is_one_500_with_its_record_and_no_internals(app_and_keys, db, monkeypatch):
    app, keys = app_and_keys
    secret = "connection string postgresql://svc:hunter2@db"

    def broken(*args, **kwargs):
        raise RuntimeError(secret)

    monkeypatch.setattr(app.state.services.answerer, "stream", broken)
    client = TestClient(app, raise_server_exceptions=False)
    for body in ({"question": "meal allowance?"}, {"question": "meal allowance?", "stream": True}):
        before = len(_records(db))
        r = client.post("/v1/query", json=body, headers=bearer(keys["employee"]))
        assert r.status_code == 500 and r.json() == {
            "error": {"code": "internal_error", "message": "internal error"},
            "request_id": r.headers["x-request-id"],
        }
        assert secret not in r.text
        records = _records(db)
        assert len(records) == before + 1
        assert (records[-1].status, records[-1].request_id) == (500, r.headers["x-request-id"])
        assert records[-1].detail["error"] == "internal_error" and records[-1].principal == "employee1"


def test_the_database_refuses_to_change_or_delete_audit_rows(app_and_keys, db):
    app, keys = app_and_keys
    TestClient(app).post("/v1/search", json={"query": "x"}, headers=bearer(keys["employee"]))
    engine, _ = db
    for statement in ("UPDATE audit_records SET answer = 'forged'", "DELETE FROM audit_records"):
        with pytest.raises(Exception, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    if engine.dialect.name == "postgresql":
        with pytest.raises(Exception, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text("TRUNCATE audit_records"))
    assert len(_records(db)) == 1


def _unlocked(engine):
    """Tampering needs the triggers off: what an attacker with owner access could do."""
    if engine.dialect.name == "postgresql":
        return ["ALTER TABLE audit_records DISABLE TRIGGER USER"], ["ALTER TABLE audit_records ENABLE TRIGGER USER"]
    return (
        ["DROP TRIGGER audit_records_no_update", "DROP TRIGGER audit_records_no_delete"],
        [
            "CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'audit_records is append-only (UPDATE refused)'); END",
            "CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records "
            "BEGIN SELECT RAISE(ABORT, 'audit_records is append-only (DELETE refused)'); END",
        ],
    )


def test_every_random_tampering_is_detected_and_untouched_logs_verify(db, settings):
    engine, factory = db
    log = HashChainAuditLog(factory, b"k" * 32)
    rng = random.Random(11)
    n = 2000
    for i in range(n):
        log.append(
            AuditEntry(
                request_id=f"r{i}",
                route="/v1/query",
                status=rng.choice([200, 200, 401, 403, 422]),
                principal=f"user{i % 7}",
                role="employee",
                groups=["g"],
                question=f"question {i}?",
                answer=f"answer {i}",
                detail={"retrieved": [{"chunk_id": i, "score": rng.random()}]},
                latency_ms=rng.random() * 100,
            )
        )
    assert log.verify().ok and log.verify().records == n
    checkpoint = log.checkpoint()
    off, on = _unlocked(engine)
    cols = (
        "seq, kind, ts, request_id, principal, role, groups, route, status, question, answer, detail, latency_ms, "
        "prev_hash, hash, mac"
    )

    def row(seq):
        with factory() as s:
            return s.scalars(select(AuditRecord).where(AuditRecord.seq == seq)).one()

    def run(*statements, params=None):
        with engine.begin() as conn:
            for sql in off:
                conn.execute(text(sql))
            for sql in statements:
                conn.execute(text(sql), params or {})
            for sql in on:
                conn.execute(text(sql))

    def restore(original: AuditRecord):
        run(
            "DELETE FROM audit_records WHERE seq = :seq OR id = :id",
            f"INSERT INTO audit_records (id, {cols}) VALUES (:id, "
            + ", ".join(f":{c.strip()}" for c in cols.split(","))
            + ")",
            params={"id": original.id, **{c.strip(): getattr(original, c.strip()) for c in cols.split(",")}}
            | {"groups": json.dumps(original.groups), "detail": json.dumps(original.detail)},
        )

    kinds = ["edit", "delete", "insert", "swap", "rehash"]
    detected = {k: 0 for k in kinds}
    trials = 60
    for t in range(trials):
        kind = kinds[t % len(kinds)]
        seq = rng.randint(2, n - 1)
        a, b = row(seq), row(seq + 1)
        if kind == "edit":
            field = rng.choice(["question", "answer", "principal", "request_id"])
            run(f"UPDATE audit_records SET {field} = :v WHERE seq = :seq", params={"v": "tampered", "seq": seq})
        elif kind == "rehash":
            values = record_values(a) | {"answer": "tampered"}
            new_hash = hashlib.sha256(canonical(values)).hexdigest()
            run(
                "UPDATE audit_records SET answer = 'tampered', hash = :h WHERE seq = :seq",
                params={"h": new_hash, "seq": seq},
            )
        elif kind == "delete":
            run("DELETE FROM audit_records WHERE seq = :seq", params={"seq": seq})
        elif kind == "insert":
            run("UPDATE audit_records SET seq = seq + 1000000 WHERE seq > :seq", params={"seq": seq})
            fake = record_values(a) | {"seq": seq + 1, "prev_hash": a.hash, "request_id": "injected"}
            digest = hashlib.sha256(canonical(fake)).hexdigest()
            run(
                f"INSERT INTO audit_records ({cols}) VALUES ("
                + ", ".join(f":{c.strip()}" for c in cols.split(","))
                + ")",
                params=fake
                | {
                    "hash": digest,
                    "mac": log.mac(digest)[::-1],
                    "kind": "request",
                    "groups": json.dumps(fake["groups"]),
                    "detail": json.dumps(fake["detail"]),
                },
            )
        elif kind == "swap":
            run(
                "UPDATE audit_records SET seq = -1 WHERE seq = :a",
                "UPDATE audit_records SET seq = :a WHERE seq = :b",
                "UPDATE audit_records SET seq = :b WHERE seq = -1",
                params={"a": seq, "b": seq + 1},
            )
        result = log.verify()
        detected[kind] += not result.ok
        assert not result.ok and result.first_bad_seq is not None, (kind, seq)
        # put everything back exactly, and check the restored log verifies (no false positive)
        if kind == "insert":
            run(
                "DELETE FROM audit_records WHERE request_id = 'injected'",
                "UPDATE audit_records SET seq = seq - 1000000 WHERE seq > 1000000",
            )
        elif kind == "swap":
            restore(a)
            restore(b)
        else:
            restore(a)
        assert log.verify().ok, f"false positive after restoring a {kind}"
    assert detected == {k: trials // len(kinds) for k in kinds}
    # truncation (the newest records removed) only a checkpoint can reveal
    run(f"DELETE FROM audit_records WHERE seq > {n - 5}")
    assert log.verify().ok
    truncated = log.verify(checkpoint)
    assert not truncated.ok and "truncated" in truncated.reason
    forged = dict(checkpoint, head_seq=n - 5)
    assert "signature" in log.verify(forged).reason


def test_auditor_api_filters_pages_exports_and_verifies(app_and_keys):
    app, keys = app_and_keys
    client = TestClient(app, raise_server_exceptions=False)
    emp, aud = bearer(keys["employee"]), bearer(keys["auditor"])
    for q in ["vacation days", "meal allowance", "passwords", "laptop"]:
        client.post("/v1/query", json={"question": f"What about {q}?"}, headers=emp)
    client.post("/v1/search", json={"query": "x"})  # anonymous: 401
    assert client.get("/v1/audit/records", headers=emp).status_code == 403
    # records 1-6: four queries, the anonymous 401, the employee's 403; each read below is a record too
    page = client.get("/v1/audit/records?limit=2", headers=aud).json()
    assert [r["seq"] for r in page["records"]] == [6, 5] and page["next_cursor"] == 5
    assert (page["records"][0]["route"], page["records"][0]["status"]) == ("/v1/audit/records", 403)
    rest = client.get(f"/v1/audit/records?limit=10&cursor={page['next_cursor']}", headers=aud).json()
    assert [r["seq"] for r in rest["records"]] == [4, 3, 2, 1] and rest["next_cursor"] is None
    assert [r["seq"] for r in client.get("/v1/audit/records?status=401", headers=aud).json()["records"]] == [5]
    assert len(client.get("/v1/audit/records?user=employee1&group=everyone", headers=aud).json()["records"]) == 5
    assert (
        client.get("/v1/audit/records?text=MEAL", headers=aud).json()["records"][0]["question"]
        == "What about meal allowance?"
    )
    assert client.get("/v1/audit/records/2", headers=aud).json()["request_id"]
    lines = [json.loads(x) for x in client.get("/v1/audit/export?format=jsonl", headers=aud).text.strip().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1)) and len(lines) >= 12
    reads = lines[6:12]
    assert {(r["principal"], r["role"], r["status"]) for r in reads} == {("auditor1", "auditor", 200)}
    assert [r["route"] for r in reads] == ["/v1/audit/records"] * 5 + ["/v1/audit/records/{seq}"]
    csv_text = client.get("/v1/audit/export?format=csv", headers=aud).text
    assert csv_text.splitlines()[0].startswith("seq,kind,ts") and len(csv_text.strip().splitlines()) >= 6
    verdict = client.get("/v1/audit/verify", headers=aud).json()
    assert verdict["ok"] and verdict["records"] >= 14


def test_cli_verify_and_checkpoint(app_and_keys, cli_env, tmp_path):
    app, keys = app_and_keys
    client = TestClient(app)
    for _ in range(3):
        client.post("/v1/search", json={"query": "vacation"}, headers=bearer(keys["employee"]))
    cp = tmp_path / "checkpoint.json"
    rag = [sys.executable, "-m", "cli", "audit"]
    assert subprocess.run([*rag, "checkpoint", "--out", str(cp)], env=cli_env, capture_output=True).returncode == 0
    ok = subprocess.run(
        [*rag, "verify", "--checkpoint", str(cp), "--json"], env=cli_env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["records"] == 3
    forged = json.loads(cp.read_text()) | {"head_seq": 2}
    cp.write_text(json.dumps(forged))
    bad = subprocess.run([*rag, "verify", "--checkpoint", str(cp)], env=cli_env, capture_output=True, text=True)
    assert bad.returncode == 1 and "signature" in bad.stderr


def test_the_configured_checkpoint_file_is_written_by_the_cli_and_checked_by_the_api(
    settings, db, fake_embedder, cli_env, tmp_path
):
    cp = tmp_path / "worm" / "audit-checkpoint.json"
    cp.parent.mkdir()
    s = settings.model_copy(update={"generator": "extractive", "audit_checkpoint_file": cp})
    client = TestClient(create_app(s, embedder=fake_embedder))
    keys = {r: make_user(s, f"{r}1", r) for r in ("employee", "auditor")}
    aud = bearer(keys["auditor"])
    missing = client.get("/v1/audit/verify", headers=aud).json()  # configured but not written yet: not ok
    assert not missing["ok"] and "unreadable" in missing["first_bad"]["reason"]
    for _ in range(3):
        client.post("/v1/search", json={"query": "vacation"}, headers=bearer(keys["employee"]))
    env = {**cli_env, "RAG_AUDIT_CHECKPOINT_FILE": str(cp)}
    rag = [sys.executable, "-m", "cli", "audit"]
    written = subprocess.run([*rag, "checkpoint"], env=env, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    head = json.loads(cp.read_text())
    assert head["head_seq"] == len(_records(db)) and not list(cp.parent.glob(".*tmp*"))
    verdict = client.get("/v1/audit/verify", headers=aud).json()
    assert verdict["ok"] and verdict["checkpoint"] == {k: head[k] for k in ("head_seq", "head_hash", "created_at")}
    assert subprocess.run([*rag, "verify"], env=env, capture_output=True).returncode == 0
    # the newest records removed: the chain itself still links, only the checkpoint exposes it
    engine, _ = db
    unlock, lock = _unlocked(engine)
    with engine.begin() as conn:
        for statement in [*unlock, f"DELETE FROM audit_records WHERE seq >= {head['head_seq'] - 1}", *lock]:
            conn.execute(text(statement))
    truncated = client.get("/v1/audit/verify", headers=aud).json()
    assert not truncated["ok"] and truncated["checkpoint"]["head_seq"] == head["head_seq"]
    bad = subprocess.run([*rag, "verify"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: record")
    nowhere = subprocess.run([*rag, "checkpoint"], env=cli_env, capture_output=True, text=True)
    assert nowhere.returncode == 2 and "RAG_AUDIT_CHECKPOINT_FILE" in nowhere.stderr


def test_archiving_moves_old_records_out_and_is_itself_recorded(db, tmp_path):
    _, factory = db
    log = HashChainAuditLog(factory, b"k" * 32)
    for i in range(10):
        log.append(AuditEntry(request_id=f"r{i}", route="/v1/search", status=200, question=f"q{i}"))
    with factory() as s:
        cutoff = s.scalars(select(AuditRecord.ts).where(AuditRecord.seq == 7)).one()
    summary = log.archive(cutoff, tmp_path / "archive.jsonl")
    assert summary["archived_count"] == 6 and summary["archived_last_seq"] == 6
    archived = [json.loads(line) for line in (tmp_path / "archive.jsonl").read_text().splitlines()]
    assert [a["seq"] for a in archived] == [1, 2, 3, 4, 5, 6]
    assert hashlib.sha256((tmp_path / "archive.jsonl").read_bytes()).hexdigest() == summary["file_sha256"]
    rest = _records(db)
    assert [r.seq for r in rest] == [7, 8, 9, 10, 11] and rest[-1].kind == "retention"
    assert rest[-1].detail["archived_head_hash"] == rest[0].prev_hash
    assert log.verify().ok
    engine, _ = db
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_records"))


def test_processes_starting_together_in_development_share_one_generated_key(tmp_path):
    """Two APIs on one data folder start at once: both must get the one key (a FileExistsError here
    once stopped one of them)."""
    import multiprocessing

    from rag.audit import resolve_key as resolve
    from rag.settings import Settings

    settings = Settings(data_dir=tmp_path, mode="development", audit_signing_key=None, _env_file=None)
    with multiprocessing.get_context("fork").Pool(6) as pool:
        keys = pool.map(resolve, [settings] * 12)
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert (tmp_path / "audit.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["audit.key"]
