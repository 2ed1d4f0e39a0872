"""Fault runs on a PostgreSQL server and a file system of the test's own (the shared ones are never touched).

a. PostgreSQL stopped and restarted under load: while it is down every request is refused with a 503
   in the one error format (never a 500, never an answer without its audit record), and the service
   recovers by itself once it is back.
b. The disk filling during an index publish: the publish fails with a clear error, the previous
   generation keeps serving, nothing half-written is left behind, and once there is room the next
   publish brings the index level with the database (`rag check` clean).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from api.errors import classify
from bench.own_postgres import OwnPostgres, free_port, unavailable_reason
from bench.soak import Deployment, Server, audit_match, run_load
from indexes.generations import GenerationStore
from ingest.worker import Worker
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.errors import DatabaseUnavailableError, IndexWriteError
from rag.settings import Settings

from . import fixtures
from .helpers import HANDBOOK, copy_tree

REQUIRE_POSTGRES = os.environ.get("RAG_REQUIRE_POSTGRES") == "1"
REFUSED_WHILE_DOWN = {"audit_unavailable", "database_unavailable"}


@pytest.fixture(scope="module")
def own_postgres():
    reason = unavailable_reason()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"a PostgreSQL server of the test's own is required (RAG_REQUIRE_POSTGRES=1): {reason}")
        pytest.skip(reason)
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_postgres_stopped_and_restarted_under_load(tmp_path, own_postgres):
    deployment = Deployment(tmp_path / "data", own_postgres.create_database("fault_restart"))
    keys = deployment.prepare(employees=2, documents=copy_tree(HANDBOOK, tmp_path / "handbook"))
    server = Server(deployment, tmp_path / "server.log")
    marks: dict[str, float] = {}
    try:
        server.wait_ready()
        t0 = time.monotonic()
        load: list = []
        loader = threading.Thread(target=lambda: load.extend(run_load(server.base_url, keys, 16, 26.0, t0=t0)))
        loader.start()
        time.sleep(6)
        marks["stop_begin"] = time.monotonic() - t0
        own_postgres.stop("fast")  # open sessions are cut, as in a restart or a failover
        marks["stopped"] = time.monotonic() - t0
        time.sleep(6)
        marks["start_begin"] = time.monotonic() - t0
        own_postgres.start()
        marks["started"] = time.monotonic() - t0
        loader.join(120)
        assert not loader.is_alive()
        alive = server.process.poll() is None
    finally:
        server.stop()
        if not own_postgres.running():
            own_postgres.start()
    audit = audit_match(deployment.database_url, load)
    down = [o for o in load if o.started >= marks["stopped"] and o.ended <= marks["start_begin"]]
    after = [o for o in load if o.started >= marks["started"]]
    first_ok = next((o for o in after if o.status == 200), None)
    recover_s = first_ok.ended - marks["started"] if first_ok else None
    statuses: dict[str, int] = {}
    for o in load:
        statuses[f"{o.status} {o.code or ''}".strip()] = statuses.get(f"{o.status} {o.code or ''}".strip(), 0) + 1
    verify = deployment.rag("audit", "verify", check=False)
    print(
        f"\nfault a: {len(load)} requests over {load[-1].ended:.1f} s, PostgreSQL down from "
        f"{marks['stopped']:.1f} s to {marks['start_begin']:.1f} s (stop took "
        f"{marks['stopped'] - marks['stop_begin']:.2f} s, start {marks['started'] - marks['start_begin']:.2f} s); "
        f"statuses {statuses}; {len(down)} requests wholly inside the outage, all "
        f"{sorted({(o.status, o.code) for o in down})}; first answer {recover_s and round(recover_s, 2)} s after "
        f"the restart; audit: {audit}; verify: {verify.stdout.strip()}"
    )
    assert alive, server.log_tail()
    assert all(o.status in (200, 503) for o in load), statuses  # no 500, no dropped connection
    assert all(o.well_formed for o in load), [o for o in load if not o.well_formed][:3]
    assert {o.code for o in load if o.status == 503} <= REFUSED_WHILE_DOWN, statuses
    assert len(down) >= 16 and all(o.status == 503 for o in down), down[:3]
    # no answer without its record: every 200 is in the log with its route and status, and only
    # refusals whose record could not be written (the database was down) are missing
    assert audit["answers_without_record"] == 0 and audit["mismatched"] == 0, audit
    assert set(audit["missing_by_status"]) <= {"503 audit_unavailable"}, audit
    # recovers by itself, at once: everything sent after the first answer is answered
    assert first_ok is not None and recover_s < 10, recover_s
    late = [o for o in after if o.started >= first_ok.ended]
    assert len(late) >= 16 and all(o.status == 200 for o in late), [o for o in late if o.status != 200][:3]
    assert verify.returncode == 0, verify.stdout + verify.stderr


# -- b. the disk fills during a publish --------------------------------------------------------------


@contextlib.contextmanager
def small_file_system(size: str):
    """A tmpfs of the test's own (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (the disk-full fault run is skipped)")
    mountpoint = Path(tempfile.mkdtemp(prefix="rag-small-fs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)], capture_output=True)
    if done.returncode != 0:
        mountpoint.rmdir()
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path: Path, leave: int) -> Path:
    """Fills the file system holding `path` until `leave` bytes are free."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        while (free := _free_bytes(path)) > leave:
            f.write(b"\0" * min(1 << 20, free - leave))
            f.flush()
    return filler


def _search(client: httpx.Client) -> tuple[int, int | None]:
    r = client.post("/v1/search", json={"query": "vacation days", "top_k": 3})
    return r.status_code, r.json().get("generation") if r.status_code == 200 else None


def test_disk_full_during_publish_keeps_previous_generation(tmp_path, own_postgres):
    with small_file_system("16m") as disk:
        deployment = Deployment(disk / "data", own_postgres.create_database("fault_disk"))
        keys = deployment.prepare(employees=1, documents=copy_tree(HANDBOOK, tmp_path / "handbook"))
        index_dir = disk / "data" / "indexes"
        more = tmp_path / "more"
        more.mkdir()
        for n in range(24):  # enough new chunks that the next generation cannot fit in what is left
            (more / f"note-{n}.txt").write_text(f"Note {n}\n\n{' '.join(fixtures.paragraphs(n, 3, 6))}\n")
        server = Server(deployment, tmp_path / "server.log")
        try:
            server.wait_ready()
            client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {keys[0]}"}, timeout=60)
            assert _search(client) == (200, 1)
            stop = threading.Event()
            during: list[tuple[int, int | None]] = []

            def keep_searching() -> None:
                while not stop.wait(0.05):
                    during.append(_search(client))

            filler = _fill(disk, leave=16 * 1024)
            free_before = _free_bytes(disk)
            searcher = threading.Thread(target=keep_searching)
            searcher.start()
            try:
                failed = deployment.rag(
                    "ingest", str(more), "--collection", "notes", "--groups", "everyone", check=False
                )
            finally:
                stop.set()
                searcher.join(60)
            free_after = _free_bytes(disk)
            leftovers = sorted(p.name for p in index_dir.iterdir() if p.name.startswith((".gen-", ".manifest")))
            generations = sorted(p.name for p in index_dir.glob("gen-*"))
            lagging = deployment.rag("check", check=False)
            after_failure = _search(client)
            jobs = json.loads(deployment.rag("jobs", "--json").stdout)

            filler.unlink()  # room again: the next publish brings the index level with the database
            retried = deployment.rag("reindex")
            clean = deployment.rag("check", check=False)
            deadline = time.monotonic() + 10
            while _search(client)[1] != 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            final = _search(client)
        finally:
            server.stop()
        print(
            f"\nfault b: ingest on a full disk exited {failed.returncode}: {failed.stderr.strip()}; "
            f"searches during it: {len(during)} ({sorted(set(during))}); free {free_before} B before the publish, "
            f"{free_after} B after; generations on disk {generations}, leftovers {leftovers}; rag check then: "
            f"{lagging.returncode} {lagging.stderr.strip()}; after freeing space: {retried.stdout.strip()}, "
            f"rag check {clean.returncode} {clean.stdout.strip()}, search {final}"
        )
        assert failed.returncode != 0
        error_lines = failed.stderr.strip().splitlines()
        assert len(error_lines) == 1 and error_lines[0].startswith("error: could not write index generation 2")
        assert "No space left on device" in error_lines[0] and "generation 1 stays live" in error_lines[0]
        assert during and all(s == (200, 1) for s in during), during  # the previous generation kept serving
        assert after_failure == (200, 1)
        assert generations == ["gen-000001"] and leftovers == []  # nothing half-written left behind
        assert free_after >= free_before - 8192, (free_before, free_after)
        assert jobs[0]["state"] == "failed" and jobs[0]["error"] == error_lines[0].removeprefix("error: "), jobs[0]
        assert lagging.returncode == 1 and "index lacks" in lagging.stderr  # the lag is named, not hidden
        assert clean.returncode == 0, clean.stderr
        assert final == (200, 2)


# -- the seams the fault runs go through, without a server or root -----------------------------------


def test_an_unreachable_database_is_database_unavailable(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    engine = make_engine(Settings(data_dir=tmp_path, database_url=url, _env_file=None))
    with pytest.raises(DatabaseUnavailableError, match="unreachable"), make_sessionmaker(engine)() as session:
        session.execute(text("SELECT 1"))
    assert classify(DatabaseUnavailableError("the database is unreachable"))[:2] == (503, "database_unavailable")


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_publish_that_cannot_write_leaves_the_previous_generation_live(tmp_path, monkeypatch):
    store = GenerationStore(tmp_path)
    first = store.publish(lambda folder: (folder / "index.bin").write_bytes(b"one"), {"n": 1})

    def half_written(folder: Path) -> None:
        (folder / "index.bin").write_bytes(b"tw")
        raise _enospc()

    with pytest.raises(IndexWriteError, match=r"generation 2 \(No space left on device\); generation 1 stays live"):
        store.publish(half_written, {"n": 2})
    assert store.current() == first and sorted(p.name for p in tmp_path.iterdir()) == ["gen-000001", "manifest.json"]

    def no_room_for_the_manifest(path: Path, data: bytes) -> None:
        raise _enospc()

    monkeypatch.setattr("indexes.generations.write_bytes_atomic", no_room_for_the_manifest)
    with pytest.raises(IndexWriteError, match="generation 1 stays live"):  # the folder was renamed already
        store.publish(lambda folder: (folder / "index.bin").write_bytes(b"two"), {"n": 2})
    assert store.current() == first and sorted(p.name for p in tmp_path.iterdir()) == ["gen-000001", "manifest.json"]
    monkeypatch.undo()
    assert store.publish(lambda folder: (folder / "index.bin").write_bytes(b"two"), {"n": 2}).generation == 2


def test_the_worker_keeps_polling_through_a_database_outage(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, worker_poll_s=0.01, _env_file=None)
    engine = make_engine(settings)
    migrate(engine)
    polls: list[int] = []

    def factory():
        polls.append(1)
        if len(polls) <= 2:
            raise DatabaseUnavailableError("the database is unreachable; retry later")
        return make_sessionmaker(engine)()

    worker = Worker(settings, factory, ingestor=None)
    monkeypatch.setattr("ingest.worker.time.sleep", lambda _s: worker.stop() if len(polls) >= 3 else None)
    assert worker.run() == 0 and len(polls) == 3  # two failed polls, then a normal empty one
    polls.clear()
    with pytest.raises(DatabaseUnavailableError):  # `rag worker --once` reports the outage instead
        Worker(settings, factory, ingestor=None).run(once=True)
    engine.dispose()
