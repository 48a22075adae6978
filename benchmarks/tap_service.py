"""The TAP service over HTTP: latency per query class (pyvo and plain HTTP), the engine
alone vs TAP on the same cones, and a load run of concurrent simulated users.

Usage::

    python benchmarks/tap_service.py --survey SURVEY --store STORE [--port 8765]
        [--repeat 10] [--users 50] [--duration 180] [--max-requests 6000] [--skip-latency]

Starts ``dpzero serve --store STORE`` on 127.0.0.1:PORT (its own state folder under
/tmp, removed afterwards), waits for ``/api/tap/availability``, and stops it at the end.

- Latency: each query class of benchmarks/bench_queries.py, one warm-up then
  ``--repeat`` positions; "pyvo" is ``TAPService.run_sync`` (request, answer, VOTable
  parse by astropy), "http" is the whole binary2 VOTable received with httpx (no parse).
- Overhead: the same cones answered by ``TapEngine.execute`` in this process vs over HTTP.
- Load: ``--users`` asyncio users with httpx, each looping a cone (r ≤ 0.05°, SELECT *),
  a polygon, a 12-id lookup and a small join; ~2% of iterations submit a full-scan async
  job and poll it until it ends. Stops at ``--duration`` seconds or ``--max-requests``.
  Counts errors (non-200, QUERY_STATUS ERROR, exceptions) and async jobs lost (not
  COMPLETED in time).

Prints tables and writes ``benchmarks/results/tap_service-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_queries import (
    Footprint,
    build_classes,
    cone,
    cpu_seconds,
    id_lookup,
    join_in_cone,
    polygon,
    scan_aggregate,
    summarise,
)
from catalog_compare import id_pool, machine_state

RESULTS = Path(__file__).parent / "results"


def server_cpu(pid: int) -> float:
    """CPU seconds of a server process and every process under it (its ``--workers``
    and async query processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += cpu_seconds(current)
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo += children.get(current, [])
    return total


MAXREC = 10_000_000


class Server:
    """``dpzero serve`` in a child process, with its own state folder."""

    def __init__(self, store: Path, port: int, workers: int = 1) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="dpzero-tapbench-"))
        self.url = f"http://127.0.0.1:{port}/api/tap"
        exe = Path(sys.executable).parent / "dpzero"
        self.process = subprocess.Popen(
            [str(exe), "serve", "--store", str(store), "--host", "127.0.0.1",
             "--port", str(port), "--state-dir", str(self.state), "--workers", str(workers)],
        )  # fmt: skip

    def wait_ready(self, timeout: float = 120.0) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"dpzero serve exited with {self.process.returncode}")
            try:
                r = httpx.get(f"{self.url}/availability", timeout=5)
                if r.status_code == 200 and b"<available>true</available>" in r.content.replace(
                    b"vosi:", b""
                ):
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("the TAP service did not become available")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.state, ignore_errors=True)


def body_ok(response: httpx.Response) -> bool:
    """A 200 answer whose VOTable says OK or OVERFLOW, not ERROR."""
    if response.status_code != 200:
        return False
    content = response.content
    return b"QUERY_STATUS" in content and b'value="ERROR"' not in content


def latency(url: str, classes: list[Any], server_pid: int) -> dict[str, Any]:
    """Per class: pyvo run_sync (with the VOTable parse) and plain HTTP (whole body).

    For HTTP also the server process's CPU time per request (requests go one at a time).
    """
    import pyvo

    service = pyvo.dal.TAPService(url)
    client = httpx.Client(timeout=600)
    out: dict[str, Any] = {}
    for cls in classes:
        entry: dict[str, Any] = {}
        for how in ("http", "pyvo"):
            times, rows, cpu, first = [], [], [], 0.0
            errors = 0
            for i, query in enumerate(cls.queries):
                c = server_cpu(server_pid)
                t = time.perf_counter()
                if how == "pyvo":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        n = len(service.run_sync(query.adql, maxrec=MAXREC))
                else:
                    r = client.post(
                        f"{url}/sync",
                        data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query.adql,
                              "MAXREC": str(MAXREC)},
                    )  # fmt: skip
                    errors += not body_ok(r)
                    n = len(r.content)
                ms = (time.perf_counter() - t) * 1000
                server_ms = (server_cpu(server_pid) - c) * 1000
                if i == 0:
                    first = ms
                    continue
                times.append(ms)
                rows.append(n)
                cpu.append(server_ms)
            key = "rows" if how == "pyvo" else "bytes"
            entry[how] = {**summarise(times), "first_ms": round(first, 2), key: rows}
            if how == "http":
                entry[how]["errors"] = errors
                entry[how]["server_cpu_median_ms"] = round(float(np.median(cpu)), 2)
        out[cls.name] = entry
        print(
            f"{cls.name:22} http median {entry['http']['median_ms']:8.1f} p95 "
            f"{entry['http']['p95_ms']:8.1f} cpu {entry['http']['server_cpu_median_ms']:7.1f} "
            f"| pyvo median {entry['pyvo']['median_ms']:8.1f} "
            f"p95 {entry['pyvo']['p95_ms']:8.1f} ms, rows {entry['pyvo']['rows'][:3]}",
            flush=True,
        )
    client.close()
    return out


def overhead(store: Path, url: str, classes: list[Any], server_pid: int) -> dict[str, Any]:
    """The same cones through `TapEngine.execute` here and through HTTP (wall and CPU)."""
    from dpzero.tap.engine import TapEngine

    engine = TapEngine.open(store)
    client = httpx.Client(timeout=600)
    out = {}
    for cls in classes:
        engine_ms, http_ms, engine_cpu, server_cpu_ms = [], [], [], []
        engine_rows: list[int] = []
        for i, query in enumerate(cls.queries):
            c = cpu_seconds(os.getpid())
            t = time.perf_counter()
            outcome = engine.execute(query.adql, {}, MAXREC)
            # The outcome streams: the engine's work ends when every batch is read.
            rows = outcome.read_all() if hasattr(outcome, "read_all") else outcome.table
            e = (time.perf_counter() - t) * 1000
            ec = (cpu_seconds(os.getpid()) - c) * 1000
            c = server_cpu(server_pid)
            t = time.perf_counter()
            r = client.post(
                f"{url}/sync",
                data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query.adql,
                      "MAXREC": str(MAXREC)},
            )  # fmt: skip
            h = (time.perf_counter() - t) * 1000
            sc = (server_cpu(server_pid) - c) * 1000
            if not body_ok(r):
                raise SystemExit(f"TAP error on {query.adql}: {r.text[:300]}")
            if i:
                engine_rows.append(rows.num_rows)
                engine_ms.append(e)
                http_ms.append(h)
                engine_cpu.append(ec)
                server_cpu_ms.append(sc)
        entry = {
            "engine": summarise(engine_ms),
            "http": summarise(http_ms),
            "overhead_median_ms": round(float(np.median(http_ms) - np.median(engine_ms)), 2),
            "engine_cpu_median_ms": round(float(np.median(engine_cpu)), 2),
            "server_cpu_median_ms": round(float(np.median(server_cpu_ms)), 2),
            "cpu_overhead_median_ms": round(
                float(np.median(server_cpu_ms) - np.median(engine_cpu)), 2
            ),
            "overhead_of_medians_note": "median(http) - median(engine), same queries, alternating",
            "engine_rows": engine_rows,
        }
        out[cls.name] = entry
        print(
            f"{cls.name:22} engine {entry['engine']['median_ms']:7.1f} ms, TAP http "
            f"{entry['http']['median_ms']:7.1f} ms, overhead "
            f"{entry['overhead_median_ms']:6.1f} ms; "
            f"CPU engine {entry['engine_cpu_median_ms']:.1f}, server "
            f"{entry['server_cpu_median_ms']:.1f} ms",
            flush=True,
        )
    client.close()
    return out


async def load_run(
    url: str,
    footprint: Footprint,
    pool: np.ndarray,
    users: int,
    duration: float,
    max_requests: int,
    async_share: float,
    think: float,
    seed: int,
) -> dict[str, Any]:
    """``users`` concurrent users looping the mix until the time or request budget ends."""
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    error_samples: list[str] = []
    jobs = {"submitted": 0, "completed": 0, "error": 0, "lost": 0, "seconds": []}
    sent = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
    timeout = httpx.Timeout(300.0)

    def record(kind: str, ms: float, ok: bool, why: str = "") -> None:
        latencies.setdefault(kind, []).append(ms)
        if not ok:
            errors[kind] = errors.get(kind, 0) + 1
            if len(error_samples) < 10:
                error_samples.append(f"{kind}: {why[:200]}")

    async def sync(client: httpx.AsyncClient, kind: str, adql: str) -> None:
        nonlocal sent
        sent += 1
        t = time.perf_counter()
        try:
            r = await client.post(
                f"{url}/sync",
                data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql, "MAXREC": str(MAXREC)},
            )
            ok = body_ok(r)
            why = "" if ok else f"HTTP {r.status_code} {r.text[-200:]}"
        except httpx.HTTPError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
        record(kind, (time.perf_counter() - t) * 1000, ok, why)

    async def async_job(client: httpx.AsyncClient, adql: str) -> None:
        nonlocal sent
        jobs["submitted"] += 1
        t = time.perf_counter()
        sent += 1
        try:
            r = await client.post(
                f"{url}/async",
                data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql, "PHASE": "RUN"},
                follow_redirects=False,
            )
            if r.status_code not in (200, 303):
                raise RuntimeError(f"create answered HTTP {r.status_code}")
            job_url = r.headers.get("location") or str(r.url)
            if job_url.startswith("/"):
                job_url = url.split("/api/tap")[0] + job_url
            phase = ""
            while time.perf_counter() - t < 900:
                p = await client.get(f"{job_url}/phase")
                sent += 1
                phase = p.text.strip()
                if phase in ("COMPLETED", "ERROR", "ABORTED"):
                    break
                await asyncio.sleep(1.0)
            if phase == "COMPLETED":
                res = await client.get(f"{job_url}/results/result")
                sent += 1
                if body_ok(res):
                    jobs["completed"] += 1
                    jobs["seconds"].append(round(time.perf_counter() - t, 1))
                    return
                jobs["error"] += 1
                error_samples.append(f"async result: HTTP {res.status_code}")
            elif phase in ("ERROR", "ABORTED"):
                jobs["error"] += 1
                error_samples.append(f"async job ended {phase}")
            else:
                jobs["lost"] += 1
                error_samples.append(f"async job still {phase} after 900 s")
        except (httpx.HTTPError, RuntimeError) as exc:
            jobs["lost"] += 1
            error_samples.append(f"async: {type(exc).__name__}: {exc}")

    async def user(k: int, client: httpx.AsyncClient) -> None:
        rng = np.random.default_rng(seed * 1000 + k)
        pyrng = random.Random(seed * 1000 + k)
        await asyncio.sleep(pyrng.uniform(0, 2))  # users arrive over two seconds
        while time.perf_counter() < deadline and sent < max_requests:
            ((ra, dec),) = footprint.centres(1, rng, 0.1)
            steps = [
                ("cone ≤0.05° *", cone(ra, dec, pyrng.uniform(0.005, 0.05), None).adql),
                ("polygon 0.1° *", polygon(ra, dec, 0.1).adql),
                ("12 ids *", id_lookup(sorted(int(i) for i in rng.choice(pool, 12))).adql),
                ("join cone 0.01°", join_in_cone(ra, dec, 0.01).adql),
            ]
            for kind, adql in steps:
                if time.perf_counter() >= deadline or sent >= max_requests:
                    return
                await sync(client, kind, adql)
                if think:
                    await asyncio.sleep(pyrng.expovariate(1 / think))
            if pyrng.random() < async_share:
                await async_job(client, scan_aggregate().adql)

    start = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(user(k, client) for k in range(users)))
    elapsed = time.perf_counter() - start
    per_class = {
        kind: {**summarise(ms), "count": len(ms), "errors": errors.get(kind, 0)}
        for kind, ms in latencies.items()
    }
    every = [x for ms in latencies.values() for x in ms]
    return {
        "users": users,
        "think_seconds": think,
        "seconds": round(elapsed, 1),
        "sync_requests": len(every),
        "requests_sent": sent,
        "throughput_per_s": round(len(every) / elapsed, 2),
        "all_sync": {**summarise(every), "errors": sum(errors.values())} if every else {},
        "per_class": per_class,
        "async_jobs": jobs,
        "error_samples": error_samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--scan-repeat", type=int, default=3)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=180.0, help="load run seconds")
    parser.add_argument("--max-requests", type=int, default=6000)
    parser.add_argument("--async-share", type=float, default=0.02)
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between requests")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--only", help="comma-separated latency class names")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="dpzero serve --workers")
    args = parser.parse_args()

    footprint = Footprint.from_survey(args.survey)
    pool = id_pool(args.store)
    only = set(args.only.split(",")) if args.only else None
    classes = build_classes(footprint, pool, args.repeat, args.scan_repeat, args.seed + 1, only)
    # Stopped with SIGTERM, still stop the server (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    server = Server(args.store, args.port, args.workers)
    summary: dict[str, Any] = {
        "what": f"dpzero TAP service over HTTP on 127.0.0.1 (uvicorn, --workers {args.workers})",
        "store": str(args.store),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "machine_before": machine_state(),
        "repeat": args.repeat,
    }  # fmt: skip
    try:
        summary["startup_seconds"] = round(server.wait_ready(), 2)
        print(f"TAP service ready in {summary['startup_seconds']} s at {server.url}")
        if not args.skip_latency:
            summary["latency"] = latency(server.url, classes, server.process.pid)
        if not args.skip_overhead:
            cones = [c for c in classes if c.name.startswith("cone") and "5 cols" not in c.name]
            summary["overhead"] = overhead(args.store, server.url, cones, server.process.pid)
        if not args.skip_load:
            print(
                f"load run: {args.users} users, {args.duration} s, ≤ {args.max_requests} requests"
            )
            cpu_before = server_cpu(server.process.pid)
            summary["load"] = asyncio.run(
                load_run(
                    server.url, footprint, pool, args.users, args.duration, args.max_requests,
                    args.async_share, args.think, args.seed,
                )
            )  # fmt: skip
            load = summary["load"]
            used = server_cpu(server.process.pid) - cpu_before
            load["server_cpu_seconds"] = round(used, 1)
            load["server_cpu_ms_per_sync_request"] = round(
                used * 1000 / max(load["sync_requests"], 1), 1
            )
            print(
                f"{load['sync_requests']} sync requests in {load['seconds']} s "
                f"({load['throughput_per_s']}/s), errors {load['all_sync'].get('errors')}, "
                f"async jobs {load['async_jobs']['submitted']} submitted, "
                f"{load['async_jobs']['completed']} completed, {load['async_jobs']['lost']} lost"
            )
            print(f"{'class':18}{'count':>7}{'median':>9}{'p95':>9}{'max':>9}{'errors':>8}")
            for kind, r in load["per_class"].items():
                print(
                    f"{kind:18}{r['count']:>7}{r['median_ms']:>9.0f}{r['p95_ms']:>9.0f}"
                    f"{r['max_ms']:>9.0f}{r['errors']:>8}"
                )
    finally:
        server.stop()
    summary["machine_after"] = machine_state()
    summary["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tap_service-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
