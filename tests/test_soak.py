"""A short soak (bench/soak.py): a real `rag serve` on PostgreSQL, 16 employee clients alternating
/v1/query (extractive) and /v1/search. No request may fail, every response must have exactly one
audit record with its route and status, the chain must verify, and the server's memory must stay
within a bound after the warm-up. The 10-minute run for the figures is `python bench/soak.py`.
"""

from __future__ import annotations

import pytest

from bench.soak import Deployment, report_lines, soak

from .conftest import fresh_database
from .helpers import HANDBOOK, copy_tree

CLIENTS = 16
DURATION_S = 25.0
WARMUP_S = 5.0
RSS_BOUND_KIB = 64 * 1024  # growth allowed between the end of the warm-up and the end of the run


@pytest.mark.postgres
def test_short_soak_on_postgres(tmp_path):
    with fresh_database("postgres", tmp_path) as url:
        deployment = Deployment(tmp_path / "data", url)
        keys = deployment.prepare(employees=4, documents=copy_tree(HANDBOOK, tmp_path / "handbook"))
        result = soak(
            deployment,
            keys,
            CLIENTS,
            DURATION_S,
            tmp_path / "server.log",
            warmup_s=WARMUP_S,
            rss_bound_kib=RSS_BOUND_KIB,
        )
    print("\n" + "\n".join(report_lines(result)))
    load = result.load
    assert result.problems == []
    # the checks behind `problems`, spelled out
    assert load["failed"] == 0 and load["requests"] >= 100
    assert all(r["ok"] == r["requests"] > 0 for r in load["routes"].values())
    assert result.audit["records"] == result.audit["responses"] == load["requests"]
    assert result.verify["ok"] and result.verify["exit_code"] == 0
    assert result.verify["records"] >= load["requests"]
    assert result.rss_kib["end"] - result.rss_kib["after_warmup"] <= RSS_BOUND_KIB
