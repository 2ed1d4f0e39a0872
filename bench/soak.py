"""Soak: a real `rag serve` on PostgreSQL under N concurrent employee clients for D seconds.

The shipped handbook is ingested into a private schema (or a server of the run's own), a uvicorn
process serves it on a free loopback port with the extractive generator, and N clients alternate
`POST /v1/query` and `POST /v1/search` with employee keys until the time is up. Reported: requests,
failures (anything but 200), p50/p99 per route, the server's resident memory (before the load, after
a warm-up, at the end, the peak), audit records against responses (every response's request id must
have exactly one record with the same route and status), and `rag audit verify`.

    python bench/soak.py                       # 16 clients, 600 s, private schema on 127.0.0.1:5432/test
    python bench/soak.py --clients 16 --duration 30 --own-postgres --json-out soak.json

tests/test_soak.py runs a short soak with the same checks; tests/test_faults.py reuses the pieces
to stop PostgreSQL under load. Only loopback traffic; every loop ends at its deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

try:
    from bench._common import REPO, pct
    from bench.own_postgres import OwnPostgres, free_port
except ModuleNotFoundError:  # run as a script: python bench/soak.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench._common import REPO, pct
    from bench.own_postgres import OwnPostgres, free_port

HANDBOOK = REPO / "examples" / "handbook"
DEFAULT_POSTGRES = os.environ.get("RAG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
QUESTIONS = [
    "How many vacation days do employees get?",
    "What is the meal allowance in Portugal?",
    "Where are the offices?",
    "When is a doctor's note required for sick leave?",
    "How long must passwords be?",
    "Who approves expenses above 500 EUR?",
    "What happens to a lost laptop?",
    "How many weeks of parental leave are topped up?",
]
SEARCHES = [
    "vacation days",
    "meal allowance",
    "offices Lisbon Tallinn",
    "sick leave doctor",
    "password manager",
    "expense approval",
    "laptop encryption",
    "parental leave salary",
]
ROUTES = ("/v1/query", "/v1/search")


@dataclass
class Outcome:
    """One request as the client saw it; times are seconds since the load began."""

    route: str
    status: int  # 0 = no HTTP response (connection refused, reset, timeout)
    latency_ms: float
    started: float
    ended: float
    request_id: str | None = None
    code: str | None = None  # the error format's code
    well_formed: bool = True  # a 200 with its fields, or an error in the one error format
    error: str | None = None


def _body_check(route: str, response: httpx.Response) -> tuple[str | None, bool]:
    """(error code, whether the body has the shape the contract promises)."""
    try:
        body = response.json()
    except ValueError:
        return None, False
    if response.status_code == 200:
        fields = ("answer", "citations", "request_id") if route == "/v1/query" else ("results",)
        return None, isinstance(body, dict) and all(f in body for f in fields)
    error = body.get("error") if isinstance(body, dict) else None
    ok = (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and body.get("request_id") == response.headers.get("x-request-id")
        and set(body) == {"error", "request_id"}
    )
    return (error.get("code") if isinstance(error, dict) else None), ok


def _client_loop(
    base_url: str,
    key: str,
    index: int,
    t0: float,
    deadline: float,
    stop: threading.Event,
    out: list[Outcome],
    backoff_s: float,
    timeout_s: float,
) -> None:
    n = index  # clients start at different questions and routes
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s) as client:
        while not stop.is_set() and time.monotonic() < deadline:
            route = ROUTES[n % 2]
            body = (
                {"question": QUESTIONS[(n // 2) % len(QUESTIONS)]}
                if route == "/v1/query"
                else {"query": SEARCHES[(n // 2) % len(SEARCHES)], "top_k": 5}
            )
            n += 1
            started = time.monotonic()
            try:
                r = client.post(route, json=body)
            except httpx.HTTPError as exc:
                ended = time.monotonic()
                out.append(
                    Outcome(route, 0, (ended - started) * 1000, started - t0, ended - t0, error=type(exc).__name__)
                )
                time.sleep(backoff_s)
                continue
            ended = time.monotonic()
            code, well_formed = _body_check(route, r)
            out.append(
                Outcome(
                    route,
                    r.status_code,
                    (ended - started) * 1000,
                    started - t0,
                    ended - t0,
                    r.headers.get("x-request-id"),
                    code,
                    well_formed,
                )
            )
            if r.status_code != 200:
                time.sleep(backoff_s)  # as a polite client would: a refusal is not retried in a tight loop


def run_load(
    base_url: str,
    keys: list[str],
    clients: int,
    duration_s: float,
    *,
    stop: threading.Event | None = None,
    backoff_s: float = 0.05,
    timeout_s: float = 60.0,
    t0: float | None = None,
) -> list[Outcome]:
    """`clients` threads alternating query and search until `duration_s` passes (or `stop` is set)."""
    stop = stop or threading.Event()
    t0 = time.monotonic() if t0 is None else t0
    deadline = time.monotonic() + duration_s
    per_client: list[list[Outcome]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(base_url, keys[i % len(keys)], i, t0, deadline, stop, per_client[i], backoff_s, timeout_s),
            daemon=True,
        )
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + timeout_s + 30)
    return sorted((o for outcomes in per_client for o in outcomes), key=lambda o: o.started)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS, KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


class Deployment:
    """A data folder and a database with the handbook ingested and employee keys: what a soak serves."""

    def __init__(self, data_dir: Path, database_url: str, **settings: str) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        self.env.update(
            PYTHONPATH=str(REPO),
            RAG_DATA_DIR=str(data_dir),
            RAG_DATABASE_URL=database_url,
            RAG_MODE="development",
            RAG_GENERATOR="extractive",
            **settings,
        )

    def rag(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """The real `rag` command of this checkout."""
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"rag {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        return done

    def prepare(self, employees: int = 4, documents: Path = HANDBOOK) -> list[str]:
        """Ingests the documents readable by group `everyone`; returns one API key per employee."""
        self.rag("ingest", str(documents), "--collection", "handbook", "--groups", "everyone", "--label", "internal")
        return [self.add_user(f"soak-employee-{n}", "employee") for n in range(employees)]

    def add_user(self, name: str, role: str, groups: tuple[str, ...] = ("everyone",)) -> str:
        """A user and its first key, through the store `rag users add` uses (in-process: no start-up cost)."""
        from rag import users
        from rag.db.session import make_engine, make_sessionmaker
        from rag.settings import Settings

        engine = make_engine(Settings(data_dir=self.data_dir, database_url=self.database_url, _env_file=None))
        try:
            with make_sessionmaker(engine)() as session:
                _, key = users.create_user(session, name, role, list(groups), actor=users.OPERATOR, with_key=True)
        finally:
            engine.dispose()
        return key


class Server:
    """`rag serve` as a subprocess on a free loopback port; its log goes to a file (never a full pipe)."""

    def __init__(self, deployment: Deployment, log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=deployment.env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rag serve exited {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"rag serve did not answer /healthz within {timeout_s:g} s: {self.log_tail()}")

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def log_tail(self, chars: int = 2000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._log.close()


def audit_records(database_url: str, request_ids: set[str]) -> dict[str, tuple[str, int]]:
    """request id -> (route, status) of the audit records among `request_ids` (read from the database)."""
    engine = create_engine(database_url)
    found: dict[str, tuple[str, int]] = {}
    ids = sorted(request_ids)
    try:
        with engine.connect() as conn:
            for start in range(0, len(ids), 5000):
                rows = conn.execute(
                    text("SELECT request_id, route, status FROM audit_records WHERE request_id = ANY(:ids)"),
                    {"ids": ids[start : start + 5000]},
                )
                for rid, route, status in rows:
                    if rid in found:
                        found[rid] = ("duplicate", -1)
                    else:
                        found[rid] = (route, status)
    finally:
        engine.dispose()
    return found


def audit_match(database_url: str, outcomes: list[Outcome]) -> dict:
    """Every HTTP response against the audit log: one record per request id, same route and status."""
    answered = [o for o in outcomes if o.request_id]
    found = audit_records(database_url, {o.request_id for o in answered})
    missing = [o for o in answered if o.request_id not in found]
    mismatched = [o for o in answered if o.request_id in found and found[o.request_id] != (o.route, o.status)]
    return {
        "responses": len(answered),
        "records": len(found),
        "missing": len(missing),
        "missing_by_status": _count_by(missing, lambda o: f"{o.status} {o.code}"),
        "mismatched": len(mismatched),
        "answers_without_record": sum(1 for o in missing if o.status == 200),
    }


def _count_by(outcomes: list[Outcome], key: Callable[[Outcome], str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[key(o)] = counts.get(key(o), 0) + 1
    return dict(sorted(counts.items()))


def summarize(outcomes: list[Outcome], duration_s: float) -> dict:
    ok = [o for o in outcomes if o.status == 200 and o.well_formed]
    per_route = {}
    for route in ROUTES:
        latencies = [o.latency_ms for o in ok if o.route == route]
        per_route[route] = {
            "requests": sum(1 for o in outcomes if o.route == route),
            "ok": len(latencies),
            "p50_ms": round(pct(latencies, 0.5), 1) if latencies else None,
            "p99_ms": round(pct(latencies, 0.99), 1) if latencies else None,
            "max_ms": round(max(latencies), 1) if latencies else None,
        }
    return {
        "requests": len(outcomes),
        "failed": len(outcomes) - len(ok),
        "failed_by_status": _count_by([o for o in outcomes if o not in ok], lambda o: f"{o.status} {o.code}"),
        "requests_per_s": round(len(outcomes) / duration_s, 2) if duration_s else None,
        "routes": per_route,
    }


@dataclass
class SoakResult:
    clients: int
    duration_s: float
    load: dict
    rss_kib: dict
    rss_samples: list[tuple[float, int]]
    audit: dict
    verify: dict
    load_average: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def soak(
    deployment: Deployment,
    keys: list[str],
    clients: int,
    duration_s: float,
    log_path: Path,
    *,
    warmup_s: float | None = None,
    rss_bound_kib: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> SoakResult:
    """Serve, load, measure and check; `problems` lists every assertion of the soak that failed."""
    warmup_s = min(30.0, duration_s / 10) if warmup_s is None else warmup_s
    server = Server(deployment, log_path)
    samples: list[tuple[float, int]] = []
    loads: list[float] = []  # the machine's 1-minute load average: other work beside the soak
    try:
        server.wait_ready()
        rss_before = server.rss_kib()
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            last_note = 0.0
            while not stop.wait(5.0):
                samples.append((round(time.monotonic() - t0, 1), server.rss_kib()))
                loads.append(os.getloadavg()[0])
                if progress and time.monotonic() - last_note >= 30:
                    last_note = time.monotonic()
                    progress(f"  t={samples[-1][0]:.0f}s rss={samples[-1][1] / 1024:.0f} MiB")

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rss_warm: list[int] = []
        timer = threading.Timer(warmup_s, lambda: rss_warm.append(server.rss_kib()))
        timer.start()
        outcomes = run_load(server.base_url, keys, clients, duration_s, t0=t0)
        elapsed = time.monotonic() - t0
        stop.set()
        timer.cancel()
        sampler.join(10)
        rss_end = server.rss_kib()
        alive = server.process.poll() is None
    finally:
        server.stop()
    verify_run = deployment.rag("audit", "verify", "--json", check=False)
    try:
        verify = json.loads(verify_run.stdout)
    except ValueError:
        verify = {"ok": False, "error": verify_run.stderr.strip()[-500:]}
    verify["exit_code"] = verify_run.returncode
    rss = {
        "before_load": rss_before,
        "after_warmup": rss_warm[0] if rss_warm else None,
        "end": rss_end,
        "peak_sampled": max([s for _, s in samples] + [rss_end]),
        "warmup_s": warmup_s,
    }
    result = SoakResult(
        clients,
        round(elapsed, 1),
        summarize(outcomes, elapsed),
        rss,
        samples,
        audit_match(deployment.database_url, outcomes),
        verify,
    )
    if loads:
        result.load_average = {
            "cpus": os.cpu_count(),
            "median": round(pct(loads, 0.5), 2),
            "min": round(min(loads), 2),
            "max": round(max(loads), 2),
        }
    problems = result.problems
    if not alive:
        problems.append("the server died during the soak")
    if result.load["failed"]:
        problems.append(f"{result.load['failed']} failed requests: {result.load['failed_by_status']}")
    audit = result.audit
    if audit["missing"] or audit["mismatched"] or audit["records"] != audit["responses"]:
        problems.append(f"audit records do not match the responses: {audit}")
    if not verify.get("ok") or verify_run.returncode != 0:
        problems.append(f"rag audit verify failed: {verify}")
    if rss_bound_kib is not None and rss["after_warmup"] is not None:
        growth = rss_end - rss["after_warmup"]
        if growth > rss_bound_kib:
            problems.append(f"RSS grew {growth} KiB after the warm-up (bound {rss_bound_kib} KiB)")
    return result


def private_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh schema on the shared server (other runs and tests are not disturbed) and its dropper."""
    schema = f"soak_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{base_url}?options=-csearch_path%3D{schema}", drop


def report_lines(result: SoakResult) -> list[str]:
    load, rss, audit = result.load, result.rss_kib, result.audit
    lines = [
        f"soak: {result.clients} clients for {result.duration_s:.0f} s: {load['requests']} requests "
        f"({load['requests_per_s']}/s), {load['failed']} failed {load['failed_by_status'] or ''}",
    ]
    for route, r in load["routes"].items():
        lines.append(
            f"  {route}: {r['requests']} requests, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms"
        )
    warm = f"{rss['after_warmup'] / 1024:.1f}" if rss["after_warmup"] else "n/a"
    lines.append(
        f"  server RSS: {rss['before_load'] / 1024:.1f} MiB before the load, {warm} MiB after "
        f"{rss['warmup_s']:g} s warm-up, {rss['end'] / 1024:.1f} MiB at the end, "
        f"peak {rss['peak_sampled'] / 1024:.1f} MiB"
    )
    lines.append(
        f"  audit: {audit['records']} records for {audit['responses']} responses, {audit['missing']} missing, "
        f"{audit['mismatched']} mismatched; rag audit verify: ok={result.verify.get('ok')} "
        f"({result.verify.get('records')} records in the chain, exit {result.verify.get('exit_code')})"
    )
    if result.load_average:
        la = result.load_average
        lines.append(
            f"  machine: {la['cpus']} CPUs, 1-min load average median {la['median']} (min {la['min']}, max {la['max']})"
        )
    lines.extend(f"  PROBLEM: {p}" for p in result.problems)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--employees", type=int, default=4, help="employee users (keys shared round-robin)")
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES, help="server whose private schema is used")
    parser.add_argument("--own-postgres", action="store_true", help="initdb a server of the run's own instead")
    parser.add_argument("--rss-bound-mib", type=float, default=64.0, help="allowed RSS growth after the warm-up")
    parser.add_argument("--work-dir", type=Path, help="keep the data folder and server log here")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 1 <= args.duration <= 24 * 3600:
        parser.error("--clients must be 1..256 and --duration 1..86400")

    work = args.work_dir or Path(os.environ.get("TMPDIR", "/tmp")) / f"rag-soak-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True, exist_ok=True)
    own = OwnPostgres() if args.own_postgres else None
    try:
        if own is not None:
            own.start()
            url, drop = own.create_database("soak"), (lambda: None)
        else:
            url, drop = private_schema(args.database_url)
        try:
            deployment = Deployment(work / "data", url)
            print(f"soak: preparing {work} (handbook, {args.employees} employees)", flush=True)
            keys = deployment.prepare(args.employees)
            print(f"soak: {args.clients} clients for {args.duration:g} s", flush=True)
            result = soak(
                deployment,
                keys,
                args.clients,
                args.duration,
                work / "server.log",
                rss_bound_kib=int(args.rss_bound_mib * 1024),
                progress=lambda line: print(line, flush=True),
            )
        finally:
            drop()
    finally:
        if own is not None:
            own.destroy()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(report_lines(result)))
    if args.json_out:
        args.json_out.write_text(json.dumps(asdict(result), indent=1))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
