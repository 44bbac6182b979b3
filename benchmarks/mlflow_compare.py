"""Modelgate against `mlflow server`: the same MLflow REST calls, the same data, the same database.

    .venv/bin/python benchmarks/mlflow_compare.py --db sqlite
    .venv/bin/python benchmarks/mlflow_compare.py --db postgres      # local PostgreSQL, trust auth
    .venv/bin/python benchmarks/mlflow_compare.py --db both --json out.json --write-readme
    .venv/bin/python benchmarks/mlflow_compare.py --db sqlite --models 100 --versions 5 --rounds 3

For each database kind, in a fresh temporary directory (and, on PostgreSQL, two fresh databases):

1. Seeds both servers with the same models x versions (same names, descriptions, tags, sources,
   run ids), each through its fastest correct path: MLflow through its SQLAlchemy store in a
   process of its own, Modelgate through its services (audit events, grants and numbering are
   real) as a superuser; then ANALYZE (VACUUM ANALYZE on PostgreSQL) on both.
2. Starts `mlflow server` with its defaults but the backend store, host and port (uvicorn,
   4 workers, its job runner included) and Modelgate with the README's production command
   (`gunicorn config.wsgi:application --workers 4 --threads 4 --timeout 600`, DEBUG off), each
   in a process group of its own, and waits until both are idle.
3. Checks every call on both servers: 200, the MLflow shapes, the same answers (a search page
   of 100 with a next_page_token, paging to the end, versions as strings, READY) and fails
   loudly otherwise.
4. Times get model, get version, search models (100 a page, name filter plus the prompt clause
   the MLflow client adds), search the versions of one model and create a version, at each
   concurrency, with keep-alive connections (one per client thread) and with a new connection
   per request. Each cell runs Modelgate, then MLflow, then Modelgate... for --rounds rounds
   on the same request sequence; every response must be 200.

The primary figure is server CPU per request: the growth of utime+stime+cutime+cstime from
/proc/<pid>/stat over the server's whole process tree (cutime/cstime keep the CPU of children
that exited), plus on PostgreSQL the client backends connected to the server's database
(found in pg_stat_activity, sampled every 0.1 s during a batch), divided by the requests.
It does not count the load generator or other work on the machine. Then requests/s and
p50/p95/p99 latency. Each figure is the median over the rounds; the ratio is
Modelgate / MLflow (below 1 is cheaper or faster for CPU and latency, above 1 is more for
requests/s).

Not collected by pytest; speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import readme_report

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PG_ADMIN = readme_report.PG_ADMIN
PG_URL = "postgres://postgres@127.0.0.1:5432/{db}"
API = "/api/2.0/mlflow"
PROMPT_CLAUSE = "tag.`mlflow.prompt.is_prompt` != 'true'"
CLIENT_HEADERS = {
    "User-Agent": "mlflow-python-client/3.17.2",
    "X-MLflow-Client-Version": "3.17.2",
}
TICK = os.sysconf("SC_CLK_TCK")
WORKERS_DEFAULT = 4  # `mlflow server`'s default; the README's gunicorn command uses 4 too
CALLS = ["get model", "get version", "search models", "search versions", "create version"]
README_BLOCK = "<!-- mlflow-compare:{db}:{edge} -->"


# -- the seed: the same rows on both sides ---------------------------------------------------


def model_name(m: int) -> str:
    return f"model-{m}"


def model_tags(m: int) -> dict[str, str]:
    return {"team": f"team-{m % 10}", "domain": f"domain-{m % 7}"}


def version_fields(m: int, v: int) -> dict[str, Any]:
    """Version v (1-based) of model m: its source, run id and tags."""
    return {
        "source": f"s3://bench/{model_name(m)}/{v}",
        "run_id": f"{m:016x}{v:016x}",
        "tags": {"run": str(v)},
    }


DESCRIPTION = "Benchmark model"

SEED_MLFLOW = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
from mlflow_compare import DESCRIPTION, model_name, model_tags, version_fields
from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
import sqlalchemy

uri, models, versions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = SqlAlchemyStore(uri)
started = time.perf_counter()
for m in range(models):
    name = model_name(m)
    tags = [RegisteredModelTag(k, v) for k, v in model_tags(m).items()]
    store.create_registered_model(name, tags=tags, description=DESCRIPTION)
    for v in range(1, versions + 1):
        f = version_fields(m, v)
        store.create_model_version(
            name, f["source"], run_id=f["run_id"],
            tags=[ModelVersionTag(k, x) for k, x in f["tags"].items()])
with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
    conn.execute(sqlalchemy.text("ANALYZE" if uri.startswith("sqlite") else "VACUUM ANALYZE"))
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

SEED_MODELGATE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
import django
django.setup()
from django.contrib.auth.models import User
from django.db import connection, transaction
from core.actors import Actor
from core.tokens import token_create
from governance.roles import roles_sync
from registry import services
from mlflow_compare import DESCRIPTION, model_name, model_tags, version_fields

models, versions, token_user = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
groups = roles_sync(actor=Actor.system("cli"))
admin = User.objects.create_superuser("admin", "admin@example.com", "bench-password-1")
actor = Actor.system("cli", user=admin)
started = time.perf_counter()
for m in range(models):
    with transaction.atomic():
        rm = services.registered_model_create(
            actor=actor, name=model_name(m), description=DESCRIPTION, tags=model_tags(m))
        for v in range(1, versions + 1):
            services.version_create(actor=actor, registered_model=rm, **version_fields(m, v))
seconds = time.perf_counter() - started
if token_user == "superuser":
    user = admin
else:
    user = User.objects.create_user("ci", password="bench-password-1")
    user.groups.add(groups["data scientist"])
_, raw = token_create(actor=Actor.system("cli", user=user), user=user, name="mlflow-compare")
with connection.cursor() as cursor:
    cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "VACUUM ANALYZE")
print(json.dumps({"token": raw, "seconds": seconds}))
"""


def run_seed(script: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", script, *argv, str(Path(__file__).parent)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def seed_result(label: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"seeding {label} failed:\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# -- CPU from /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (field 3 onwards), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def tree_ticks(root: int) -> int:
    """utime+stime+cutime+cstime of `root` and every descendant, in clock ticks."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                stats[int(entry)] = fields
                children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            total += sum(int(x) for x in stats[pid][11:15])
        stack.extend(children.get(pid, []))
    return total


class Backends:
    """CPU of the PostgreSQL client backends connected to one database, over an interval.

    Backends are sampled every 0.1 s while measuring: one that appears counts from zero (its
    connection set-up is the server's cost), one that exits counts up to its last sample."""

    def __init__(self, database: str) -> None:
        import psycopg

        self.database = database
        self.conn = psycopg.connect(PG_ADMIN, autocommit=True)
        self.seen: dict[int, tuple[int, int]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _pids(self) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s "
            "AND backend_type IN ('client backend', 'parallel worker')",
            (self.database,),
        ).fetchall()
        return [row[0] for row in rows]

    def _sample(self, baseline: bool) -> None:
        for pid in self._pids():
            fields = _stat(pid)
            if fields is None:
                continue
            ticks = int(fields[11]) + int(fields[12])
            with self.lock:
                first = self.seen.get(pid, (ticks if baseline else 0, 0))[0]
                self.seen[pid] = (first, ticks)

    def start(self) -> None:
        self.seen = {}
        self._sample(baseline=True)
        self.stop.clear()

        def loop() -> None:
            while not self.stop.wait(0.1):
                self._sample(baseline=False)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def finish(self) -> int:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        self._sample(baseline=False)
        return sum(last - first for first, last in self.seen.values())

    def close(self) -> None:
        self.conn.close()


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    port: int
    command: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    headers: dict[str, str] = field(default_factory=dict)
    database: str | None = None  # PostgreSQL database name
    proc: subprocess.Popen[bytes] | None = None
    backends: Backends | None = None
    idle_ticks_per_s: float = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.database:
            self.backends = Backends(self.database)

    def stop(self) -> None:
        if self.backends is not None:
            self.backends.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        # Children (uvicorn's workers, MLflow's job consumers) may outlive the leader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def ticks(self) -> int:
        assert self.proc is not None
        return tree_ticks(self.proc.pid)

    def wait_ready(self, path: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.label} exited with {self.proc.returncode}; see {self.log}:\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            try:
                status, _, _ = request(self, "GET", path, None, keepalive=None)
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.label} did not answer within {timeout:.0f} s; see {self.log}")

    def wait_idle(self, timeout: float = 120) -> None:
        """Wait until start-up work (imports, migrations check, job consumers) has settled:
        under 5% of one core over 2 s. Then measure what idling costs, for the record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.ticks()
            time.sleep(2)
            if self.ticks() - before <= 0.05 * 2 * TICK:
                break
        before = self.ticks()
        time.sleep(3)
        self.idle_ticks_per_s = (self.ticks() - before) / 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- HTTP -------------------------------------------------------------------------------------


class Reply:
    def __init__(self, server: Server, method: str, path: str, status: int, body: bytes) -> None:
        self.server, self.method, self.path, self.status, self.body = (
            server,
            method,
            path,
            status,
            body,
        )

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            self.fail("the body is not JSON")
        if not isinstance(data, dict):
            self.fail("the body is not a JSON object")
        return data

    def fail(self, why: str) -> NoReturn:
        raise SystemExit(
            f"{self.server.label}: {self.method} {self.path} -> {self.status}: {why}\n"
            f"{self.body[:600].decode(errors='replace')}"
        )


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | None,
    keepalive: http.client.HTTPConnection | None,
) -> tuple[int, bytes, float]:
    """One request; on `keepalive` if given, else on a connection of its own. Returns the
    status, the body and the seconds from before connecting to the last byte read."""
    headers = {**CLIENT_HEADERS, **server.headers}
    if body is not None:
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    conn = keepalive or http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    if keepalive is None:
        headers["Connection"] = "close"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        if keepalive is None:
            conn.close()
    return response.status, data, time.perf_counter() - started


def call(server: Server, method: str, path: str, body: bytes | None = None) -> Reply:
    status, data, _ = request(server, method, path, body, keepalive=None)
    return Reply(server, method, path, status, data)


# -- the calls --------------------------------------------------------------------------------

Req = tuple[str, str, bytes | None]


def get_model(m: int) -> Req:
    return "GET", f"{API}/registered-models/get?" + urlencode({"name": model_name(m)}), None


def get_version(m: int, v: int) -> Req:
    query = urlencode({"name": model_name(m), "version": str(v)})
    return "GET", f"{API}/model-versions/get?{query}", None


def search_models(prefix: str, page_token: str | None = None) -> Req:
    """As MlflowClient.search_registered_models(f"name LIKE '{prefix}%'", max_results=100)
    sends it: with the clause that hides prompts."""
    params = {"filter": f"name LIKE '{prefix}%' AND {PROMPT_CLAUSE}", "max_results": "100"}
    if page_token:
        params["page_token"] = page_token
    return "GET", f"{API}/registered-models/search?" + urlencode(params), None


def search_versions(m: int) -> Req:
    """As MlflowClient.search_model_versions(f"name='{name}'") sends it (its default
    max_results is 10000)."""
    params = {"filter": f"name='{model_name(m)}'", "max_results": "10000"}
    return "GET", f"{API}/model-versions/search?" + urlencode(params), None


def create_version(m: int, n: int) -> Req:
    body = {"name": model_name(m), "source": f"s3://bench/{model_name(m)}/new-{n}"}
    return "POST", f"{API}/model-versions/create", json.dumps(body).encode()


def prefixes(models: int) -> list[str]:
    """Name prefixes for the search filter: 'model-1' … 'model-9' (111 of 1,000 models each)."""
    return [model_name(d) for d in range(1, 10) if d < models] or [model_name(0)]


def request_sequence(
    label: str, n: int, models: int, versions: int, rng: random.Random, serial: Iterator[int]
) -> list[Req]:
    makers: dict[str, Callable[[], Req]] = {
        "get model": lambda: get_model(rng.randrange(models)),
        "get version": lambda: get_version(rng.randrange(models), rng.randint(1, versions)),
        "search models": lambda: search_models(rng.choice(prefixes(models))),
        "search versions": lambda: search_versions(rng.randrange(models)),
        "create version": lambda: create_version(rng.randrange(models), next(serial)),
    }
    return [makers[label]() for _ in range(n)]


# -- correctness before timing ----------------------------------------------------------------


def _pairs(items: list[dict[str, str]] | None, key: str = "key") -> dict[str, str]:
    return {item[key]: item.get("value", item.get("version", "")) for item in items or []}


def _version_view(mv: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": mv.get("name"),
        "version": mv.get("version"),
        "source": mv.get("source"),
        "run_id": mv.get("run_id", ""),
        "current_stage": mv.get("current_stage"),
        "status": mv.get("status"),
        "tags": _pairs(mv.get("tags")),
    }


def check_server(server: Server, models: int, versions: int) -> dict[str, Any]:
    """Every timed call answers 200 with the data seeded; returns a view of the answers to
    compare across servers. Raises SystemExit (naming server, call and body) otherwise."""
    seen: dict[str, Any] = {}
    m = models // 2
    reply = call(server, *get_model(m))
    if reply.status != 200:
        reply.fail("get model should answer 200")
    rm = reply.json().get("registered_model") or reply.fail("no registered_model")
    latest = [_version_view(mv) for mv in rm.get("latest_versions") or []]
    view = {
        "name": rm.get("name"),
        "description": rm.get("description"),
        "tags": _pairs(rm.get("tags")),
        "latest_versions": latest,
    }
    expected_latest = {**version_fields(m, versions), "name": model_name(m)}
    if (
        view["name"] != model_name(m)
        or view["description"] != DESCRIPTION
        or view["tags"] != model_tags(m)
        or [(lv["version"], lv["source"]) for lv in latest]
        != [(str(versions), expected_latest["source"])]
    ):
        reply.fail(f"get model answered {view}")
    seen["get model"] = view

    v = max(1, versions // 2)
    reply = call(server, *get_version(m, v))
    if reply.status != 200:
        reply.fail("get version should answer 200")
    mv = _version_view(reply.json().get("model_version") or reply.fail("no model_version"))
    fields = version_fields(m, v)
    want = {
        "name": model_name(m),
        "version": str(v),
        "source": fields["source"],
        "run_id": fields["run_id"],
        "current_stage": "None",
        "status": "READY",
        "tags": fields["tags"],
    }
    if mv != want:
        reply.fail(f"get version answered {mv}, expected {want}")
    seen["get version"] = mv

    names = [model_name(i) for i in range(models)]
    pages = []
    for prefix in prefixes(models):
        expected = sorted(n for n in names if n.startswith(prefix))
        got: list[str] = []
        token = None
        while True:
            reply = call(server, *search_models(prefix, token))
            if reply.status != 200:
                reply.fail("search models should answer 200")
            data = reply.json()
            page = [r.get("name") for r in data.get("registered_models") or []]
            token = data.get("next_page_token") or None
            remaining = len(expected) - len(got)
            if len(page) != min(100, remaining) or bool(token) != (remaining > 100):
                reply.fail(
                    f"expected {min(100, remaining)} models and "
                    f"{'a' if remaining > 100 else 'no'} next_page_token, got {len(page)} "
                    f"and {token!r}"
                )
            got.extend(page)
            pages.append(page)
            if not token:
                break
        if got != expected:
            reply.fail(f"search '{prefix}%' paged to {got[:5]}…, expected {expected[:5]}…")
    seen["search models"] = pages

    reply = call(server, *search_versions(m))
    if reply.status != 200:
        reply.fail("search versions should answer 200")
    data = reply.json()
    found = [_version_view(x) for x in data.get("model_versions") or []]
    if (
        sorted(int(x["version"]) for x in found) != list(range(1, versions + 1))
        or {x["name"] for x in found} != {model_name(m)}
        or data.get("next_page_token")
    ):
        reply.fail(f"search versions of {model_name(m)} found {len(found)}")
    seen["search versions"] = sorted(found, key=lambda x: int(x["version"]))

    reply = call(server, *create_version(models - 1, 0))
    if reply.status != 200:
        reply.fail("create version should answer 200")
    mv = _version_view(reply.json().get("model_version") or reply.fail("no model_version"))
    if mv["version"] != str(versions + 1) or mv["status"] != "READY":
        reply.fail(f"create version answered {mv}")
    again = call(server, *get_version(models - 1, versions + 1))
    if again.status != 200:
        again.fail("the created version should be readable")
    seen["create version"] = mv
    return seen


def check(servers: list[Server], models: int, versions: int) -> None:
    views = [check_server(s, models, versions) for s in servers]
    for label in views[0]:
        if views[0][label] != views[1][label]:
            raise SystemExit(
                f"{label}: the servers answer differently:\n"
                f"{servers[0].label}: {str(views[0][label])[:800]}\n"
                f"{servers[1].label}: {str(views[1][label])[:800]}"
            )


# -- timing -----------------------------------------------------------------------------------


def run_batch(server: Server, reqs: list[Req], concurrency: int, keepalive: bool) -> dict[str, Any]:
    """Send `reqs` from `concurrency` threads; server CPU is read once every thread holds its
    warmed connection and again when the last has finished."""
    shares = [reqs[i::concurrency] for i in range(concurrency)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    ready = threading.Barrier(concurrency + 1)
    go = threading.Barrier(concurrency + 1)

    def worker(share: list[Req]) -> None:
        conn = None
        mine: list[float] = []
        try:
            if keepalive:
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
                request(server, *get_model(0), keepalive=conn)  # open and warm it
            ready.wait()
            go.wait()
            for method, path, body in share:
                status, data, seconds = request(server, method, path, body, keepalive=conn)
                if status != 200:
                    raise RuntimeError(f"{method} {path} -> {status}: {data[:300]!r}")
                mine.append(seconds)
        except Exception as exc:  # reported below, after every thread has stopped
            with lock:
                errors.append(f"{server.label}: {exc}")
            with contextlib.suppress(threading.BrokenBarrierError):
                ready.abort()
                go.abort()
        finally:
            if conn is not None:
                conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    ticks, started = server.ticks(), time.perf_counter()
    try:
        ready.wait()
        ticks = server.ticks()
        if server.backends:
            server.backends.start()
        started = time.perf_counter()
        go.wait()
    except threading.BrokenBarrierError:
        pass  # a worker failed: reported below
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ticks = server.ticks() - ticks
    pg = server.backends.finish() if server.backends else 0
    if errors:
        raise SystemExit("a timed request failed:\n" + "\n".join(errors[:5]))
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "seconds": wall,
        "cpu_ms_per_req": (ticks + pg) * 1000 / TICK / len(latencies),
        "server_cpu_ms": ticks * 1000 / TICK,
        "postgres_cpu_ms": pg * 1000 / TICK,
        "pg_cpu_ms_per_req": pg * 1000 / TICK / len(latencies),
        "rps": len(latencies) / wall,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
    }


METRICS = ["cpu_ms_per_req", "rps", "p50", "p95", "p99", "pg_cpu_ms_per_req"]


def measure(
    servers: list[Server], args: argparse.Namespace, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    cells = []
    serial = iter(range(1, 10**9))
    for label in args.calls:
        for concurrency in args.concurrency:
            for connection in args.connections:
                n = max(concurrency, args.requests // concurrency * concurrency)
                rounds: list[dict[str, Any]] = []
                for r in range(args.rounds):
                    rng = random.Random(f"{label}|{concurrency}|{connection}|{r}")
                    reqs = request_sequence(label, n, args.models, args.versions, rng, serial)
                    for server in servers:
                        result = run_batch(server, reqs, concurrency, connection == "keep-alive")
                        rounds.append({"server": server.label, "round": r, **result})
                cell = summarise(label, concurrency, connection, rounds, servers)
                cells.append(cell)
                log(cell_line(cell, servers))
    return cells


def summarise(
    label: str,
    concurrency: int,
    connection: str,
    rounds: list[dict[str, Any]],
    servers: list[Server],
) -> dict[str, Any]:
    median = {
        s.label: {
            k: statistics.median(x[k] for x in rounds if x["server"] == s.label) for k in METRICS
        }
        for s in servers
    }
    a, b = (median[s.label] for s in servers)
    return {
        "call": label,
        "concurrency": concurrency,
        "connection": connection,
        "median": median,
        "ratio": {k: a[k] / b[k] if b[k] else None for k in METRICS},
        "rounds": rounds,
    }


def cell_line(cell: dict[str, Any], servers: list[Server]) -> str:
    a, b = (cell["median"][s.label] for s in servers)
    r = cell["ratio"]
    return (
        f"{cell['call']:<16} c={cell['concurrency']} {cell['connection']:<10} "
        f"CPU ms/req {a['cpu_ms_per_req']:6.2f} / {b['cpu_ms_per_req']:6.2f} "
        f"= {r['cpu_ms_per_req']:.2f}x  req/s {a['rps']:6.1f} / {b['rps']:6.1f} "
        f"= {r['rps']:.2f}x  p50 {a['p50']:6.1f} / {b['p50']:6.1f} ms  "
        f"p99 {a['p99']:6.1f} / {b['p99']:6.1f} ms"
    )


# -- one database kind ------------------------------------------------------------------------


def modelgate_env(var: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": "benchmark-only-secret-key-" + "x" * 40,
            "DATABASE_URL": database_url,
            "MODELGATE_VAR_DIR": str(var),
            # The README's switches for plain HTTP on this machine (Production).
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "BEHIND_TLS_PROXY": "false",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            # The local server's only role is a superuser; the warning would fill the log.
            "SILENCED_SYSTEM_CHECKS": "governance.W001",
        }
    )
    return env


def pg_execute(*statements: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def run_database(kind: str, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"mlflow-compare-{kind}-"))
    tag = f"{os.getpid()}_{int(time.time())}"
    mg_db, ml_db = f"mlc_modelgate_{tag}", f"mlc_mlflow_{tag}"
    (tmp / "modelgate").mkdir()
    (tmp / "mlflow").mkdir()
    if kind == "sqlite":
        mg_url = f"sqlite:///{tmp / 'modelgate' / 'modelgate.sqlite3'}"
        ml_url = f"sqlite:///{tmp / 'mlflow' / 'mlflow.db'}"
    else:
        pg_execute(f"CREATE DATABASE {mg_db}", f"CREATE DATABASE {ml_db}")
        mg_url = PG_URL.format(db=mg_db)
        # No psycopg2 here: SQLAlchemy reaches PostgreSQL through psycopg 3.
        ml_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{ml_db}"
    env = modelgate_env(tmp / "modelgate", mg_url)
    ml_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_"))}
    servers: list[Server] = []
    try:
        log(f"[{kind}] {tmp}: migrating; seeding both with {args.models} x {args.versions}")
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeds = {
            "MLflow": run_seed(
                SEED_MLFLOW, [ml_url, str(args.models), str(args.versions)], {**ml_env}
            ),
            "Modelgate": run_seed(
                SEED_MODELGATE, [str(args.models), str(args.versions), args.token_user], env
            ),
        }
        seeded = {label: seed_result(label, proc) for label, proc in seeds.items()}
        for label, result in seeded.items():
            log(f"[{kind}] {label} seeded in {result['seconds']:.0f} s")
        mg_port, ml_port = free_port(), free_port()
        workers = str(args.workers)
        modelgate = Server(
            label="Modelgate",
            port=mg_port,
            command=[
                str(BIN / "gunicorn"),
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{mg_port}",
                "--workers",
                workers,
                "--threads",
                str(args.threads),
                "--timeout",
                "600",
            ],
            env=env,
            cwd=ROOT,
            log=tmp / "modelgate.log",
            headers={"Authorization": f"Bearer {seeded['Modelgate']['token']}"},
            database=mg_db if kind == "postgres" else None,
        )
        ml_command = [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            ml_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(ml_port),
        ]
        if args.workers != WORKERS_DEFAULT:
            ml_command += ["--workers", workers]
        mlflow = Server(
            label="MLflow",
            port=ml_port,
            command=ml_command,
            env=ml_env,
            cwd=tmp / "mlflow",
            log=tmp / "mlflow.log",
            database=ml_db if kind == "postgres" else None,
        )
        servers = [modelgate, mlflow]
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready(get_model(0)[1])
        for server in servers:
            server.wait_idle()
            log(
                f"[{kind}] {server.label} idles at {server.idle_ticks_per_s * 1000 / TICK:.0f} ms/s"
            )
        check(servers, args.models, args.versions)
        log(f"[{kind}] both servers answer every call correctly and alike; timing")
        for server in servers:  # warm each worker's code paths and connections, untimed
            for label in args.calls:
                reqs = request_sequence(
                    label,
                    16,
                    args.models,
                    args.versions,
                    random.Random(label),
                    iter(range(10**9, 2 * 10**9)),
                )
                run_batch(server, reqs, 8, True)
        cells = measure(servers, args, log)
        return {
            "database": kind,
            "seed_seconds": {k: v["seconds"] for k, v in seeded.items()},
            "idle_cpu_ms_per_s": {s.label: s.idle_ticks_per_s * 1000 / TICK for s in servers},
            "commands": {s.label: s.command for s in servers},
            "wall_seconds": time.perf_counter() - started,
            "cells": cells,
        }
    finally:
        for server in servers:
            server.stop()
        if kind == "postgres":
            pg_execute(
                f"DROP DATABASE IF EXISTS {mg_db} WITH (FORCE)",
                f"DROP DATABASE IF EXISTS {ml_db} WITH (FORCE)",
            )
        if args.keep:
            log(f"[{kind}] kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# -- report -----------------------------------------------------------------------------------


def machine(kinds: list[str]) -> dict[str, str]:
    import mlflow

    info = readme_report.machine()
    info["mlflow"] = mlflow.__version__
    info["gunicorn"] = re.sub(
        r"[^\d.]", "", readme_report.run([str(BIN / "gunicorn"), "--version"])
    )
    if "postgres" in kinds:
        info["postgresql"] = readme_report.postgresql_version()
    return info


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def table(result: dict[str, Any], servers: tuple[str, str]) -> list[str]:
    postgres = result["database"] == "postgres"
    columns = ["CPU ms/req", "req/s", "p50 ms", "p95 ms", "p99 ms"]
    metrics = METRICS if postgres else METRICS[:-1]
    if postgres:
        columns.append("of which PostgreSQL, ms/req")
    lines = [
        f"| {'PostgreSQL' if postgres else 'SQLite'}: Modelgate / MLflow = ratio | concurrency "
        "| connection | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for cell in result["cells"]:
        a, b = (cell["median"][s] for s in servers)
        cols = []
        for k in metrics:
            ratio = cell["ratio"][k]
            text = f"{ratio:.2f}×" if ratio is not None else "–"
            text = f"**{text}**" if k == "cpu_ms_per_req" else text
            cols.append(f"{_fmt(a[k])} / {_fmt(b[k])} = {text}")
        lines.append(
            f"| {cell['call']} | {cell['concurrency']} | {cell['connection']} | "
            + " | ".join(cols)
            + " |"
        )
    return lines


def report(result: dict[str, Any], report_info: dict[str, Any]) -> str:
    m, s = report_info["machine"], report_info["settings"]
    db = result["database"]
    engine = (
        f"PostgreSQL {m.get('postgresql', '?')}" if db == "postgres" else f"SQLite {m['sqlite']}"
    )
    seed = result["seed_seconds"]
    idle = result["idle_cpu_ms_per_s"]
    paragraphs = [
        f"Measured {report_info['date']} by `benchmarks/mlflow_compare.py --db {db}` on "
        f"{m['cpu']} ({m['cores']} cores, {m['ram']} RAM), {m['os']}, Python {m['python']}, "
        f"{engine}, MLflow {m['mlflow']}, gunicorn {m['gunicorn']}, Modelgate {m['modelgate']}; "
        f"load generator, both servers and the database share the machine; "
        f"{result['wall_seconds'] / 60:.0f} min in all.",
        f"{s['models']:,} models × {s['versions']} versions, seeded in {seed['Modelgate']:.0f} s "
        f"(Modelgate, services) and {seed['MLflow']:.0f} s (MLflow, store API) side by side. "
        f"Modelgate: `gunicorn config.wsgi:application --workers {s['workers']} --threads "
        f"{s['threads']} --timeout 600`, DEBUG off, a {s['token_user']}'s token "
        f"(`Authorization: Bearer`). MLflow: `mlflow server --backend-store-uri … --host "
        f"127.0.0.1 --port …`, otherwise its defaults (uvicorn, {s['workers']} workers, its job "
        "runner; no authentication). *search models*: 100 a page, `name LIKE 'model-N%'` and "
        "the prompt clause the MLflow client adds; *search versions*: `name='model-N'` "
        f"({s['versions']} versions, max_results 10000 as the client sends); *create version*: "
        "an `s3://` source. *new*: a new connection per request.",
        f"Each cell: {s['rounds']} rounds of {s['requests']} requests per server, alternating "
        "Modelgate and MLflow; medians over the rounds, as Modelgate / MLflow = ratio (below 1 "
        "favours Modelgate for CPU and latency, above 1 for req/s). CPU is per request, from "
        "/proc: the server's whole process tree"
        + (" and the PostgreSQL backends serving its database" if db == "postgres" else "")
        + f" (idling costs Modelgate {idle['Modelgate']:.0f} ms/s and MLflow "
        f"{idle['MLflow']:.0f} ms/s, counted).",
    ]
    lines = [textwrap.fill(p, width=95, break_on_hyphens=False) + "\n" for p in paragraphs]
    return "\n".join([*lines, *table(result, ("Modelgate", "MLflow"))])


def write_readme(path: Path, db: str, text: str) -> None:
    readme_report.write_block(
        path, README_BLOCK.format(db=db, edge="start"), README_BLOCK.format(db=db, edge="end"), text
    )


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per cell and server")
    parser.add_argument(
        "--requests", type=int, default=96, help="requests per round (rounded to the concurrency)"
    )
    parser.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    parser.add_argument("--connections", default="keep-alive,new", help="keep-alive and/or new")
    parser.add_argument(
        "--calls", default=",".join(CALLS), help="comma-separated, of: " + ", ".join(CALLS)
    )
    parser.add_argument("--workers", type=int, default=WORKERS_DEFAULT, help="both servers")
    parser.add_argument("--threads", type=int, default=4, help="per Modelgate worker (README)")
    parser.add_argument(
        "--token-user",
        choices=["data-scientist", "superuser"],
        default="data-scientist",
        help="whose token Modelgate's requests carry",
    )
    parser.add_argument("--json", type=Path, help="write every round's figures here")
    parser.add_argument(
        "--write-readme",
        type=Path,
        nargs="?",
        const=ROOT / "README.md",
        help="replace the marked block(s) of this file (default README.md)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args(argv)
    args.calls = [c.strip() for c in args.calls.split(",") if c.strip()]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.connections = [c.strip() for c in args.connections.split(",")]
    if unknown := set(args.calls) - set(CALLS):
        parser.error(f"unknown calls: {', '.join(sorted(unknown))}")
    if unknown := set(args.connections) - {"keep-alive", "new"}:
        parser.error(f"unknown connections: {', '.join(sorted(unknown))}")
    if args.models < 2 or args.versions < 1 or args.rounds < 1 or args.requests < 2:
        parser.error("--models is at least 2, --versions, --rounds at least 1, --requests 2")
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    if args.write_readme:  # fail now rather than after the run
        for kind in kinds:
            write_readme_check(args.write_readme, kind)

    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"{time.perf_counter() - started:7.0f}s {line}", flush=True)

    info = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(kinds),
        "settings": {
            "models": args.models,
            "versions": args.versions,
            "rounds": args.rounds,
            "requests": args.requests,
            "workers": args.workers,
            "threads": args.threads,
            "token_user": args.token_user.replace("-", " "),
            "concurrency": args.concurrency,
            "connections": args.connections,
            "calls": args.calls,
        },
    }
    results = []
    for kind in kinds:
        result = run_database(kind, args, log)
        results.append(result)
        text = report(result, info)
        print("\n" + text + "\n", flush=True)
        if args.json:
            args.json.write_text(json.dumps({**info, "results": results}, indent=1))
        if args.write_readme:
            write_readme(args.write_readme, kind, text)
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min")


def write_readme_check(path: Path, db: str) -> None:
    """Before a long run: the README has the block this run will write."""
    readme_report.block(
        path, README_BLOCK.format(db=db, edge="start"), README_BLOCK.format(db=db, edge="end")
    )


if __name__ == "__main__":
    main()
