"""The long fuzzing run for issue 15's closing note: tests/test_fuzz.py with many more examples.

    python bench/fuzz.py [--examples 150] [--phases examples,coverage,fuzzing] [--db sqlite|postgres|both]
                         [--out fuzz-report.json]

Runs the same test as CI (same checks, same app, each role and no key) with schemathesis' coverage
phase added and `--examples` generated requests per operation, role and database, then prints what
was covered: operations, requests per role, statuses seen, and every failing (database, role,
operation) with its first failure. Exit status 1 when anything failed. In process (ASGI); nothing
leaves loopback (the test refuses any other connection).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import REPO


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=150, help="generated requests per operation, role and db")
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--out", type=Path, help="keep the JSON tally here")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkstemp(suffix=".json", prefix="fuzz-")[1])
    env = {
        **os.environ,
        "RAG_TEST_FUZZ_EXAMPLES": str(args.examples),
        "RAG_TEST_FUZZ_PHASES": args.phases,
        "RAG_TEST_FUZZ_REPORT": str(out),
    }
    selection = "every_operation" + ("" if args.db == "both" else f" and {args.db}")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider", "-k", selection],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    report = json.loads(out.read_text())
    statuses: Counter[str] = Counter()
    for key, n in report["by_status"].items():
        statuses[key.rsplit("|", 1)[1]] += n

    phases = report.get("phases", args.phases.split(","))
    print(f"phases {','.join(phases)}; {report['examples_per_operation_setting']} generated per operation")
    print(f"operations covered: {len(report['operations'])}")
    for name in report["operations"]:
        print(f"  {name}")
    print("requests per database/role:")
    for who, n in report["examples"].items():
        print(f"  {who:20} {n}")
    total = sum(report["examples"].values())
    print(f"total requests: {total} in {elapsed:.0f} s; statuses: {dict(sorted(statuses.items()))}")
    print(f"failing (database, role, operation): {len(report['failures'])}")
    for key, message in report["failures"].items():
        print(f"  {key}: {' '.join(message.split())[:400]}")
    if proc.returncode not in (0, 1):
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    print(f"pytest exit status {proc.returncode}; tally in {out}")
    return 0 if proc.returncode == 0 and not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
