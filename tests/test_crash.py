"""kill -9 at random moments of an ingest: the rerun completes with no lost and no duplicated chunk."""

import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from ingest.indexing import check
from rag.db.models import Chunk
from rag.db.session import make_engine, make_sessionmaker, migrate
from rag.settings import Settings

from . import fixtures
from .helpers import chunk_fingerprint, copy_tree, run_job
from .shared_data import shared_path


def _own_corpus(folder):
    return fixtures.write_crash_corpus(folder)  # Markdown, Word, PDF and Excel files of our own


def _shared_corpus(folder):
    return copy_tree(shared_path("docs-sample", "18f-handbook"), folder)  # real third-party documents


@pytest.mark.parametrize("make_corpus", [_own_corpus, _shared_corpus], ids=["own", "18f-handbook"])
def test_sigkill_mid_ingest_then_rerun_equals_clean_run(settings, db, cli_env, real_embedder, tmp_path, make_corpus):
    corpus = make_corpus(tmp_path / "corpus")

    clean_settings = Settings(
        data_dir=tmp_path / "clean", database_url=f"sqlite:///{tmp_path / 'clean.sqlite3'}", _env_file=None
    )
    clean_engine = make_engine(clean_settings)
    migrate(clean_engine)
    clean_db = (clean_engine, make_sessionmaker(clean_engine))
    started = time.monotonic()
    run_job(clean_settings, clean_db, real_embedder, corpus, parse_workers=1)
    clean_seconds = time.monotonic() - started
    expected = chunk_fingerprint(clean_db[1])
    assert len(expected) > 100

    rng = random.Random(20261127)
    cmd = [sys.executable, "-m", "cli", "ingest", str(corpus), "--json"]
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # process start-up (imports, model load) takes several seconds; aim the kills into the real work
        time.sleep(rng.uniform(6.0, 6.0 + clean_seconds))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "the corpus was ingested before the kills could land; use a bigger corpus"

    final = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr
    _, factory = db
    assert check(factory, settings.index_dir) == []
    assert subprocess.run([sys.executable, "-m", "cli", "check"], env=cli_env).returncode == 0
    got = chunk_fingerprint(factory)
    with factory() as session:
        rows = session.scalar(select(func.count()).select_from(Chunk))
    assert rows == len(got), "duplicated chunks"
    assert got == expected
