"""Images benchmark: conversion rate, Butler reads, cutouts through the service, and
registry queries, on an SQLite and a PostgreSQL registry.

Usage::

    python benchmarks/images.py [--legacy DIR] [--repeat 30]

Without ``--legacy`` the tiny simulated release is rendered first
(``dpzero sim images --size tiny --seed 1``). For each registry (SQLite file; and
PostgreSQL at 127.0.0.1:5432 when reachable, in a database made and dropped here),
the release is converted into a new repository (local-file datastore), then timed:

- conversion: datasets ingested per second (one run; a fresh repository);
- ``butler.get`` of a whole calexp, and of a 100×100 box of it (``bbox`` parameter);
- a 100×100 cutout through the image service: ``GET /api/cutout/sync`` with a POLYGON
  whose box is 100×100 pixels, answered by a separate server process (the image routes
  behind the platform's open-mode gate) and read whole by an HTTP client; the first
  request (cold: dataset lookup and WCS read) apart from the median of the rest;
- the registry query for every dataset of one visit (all dataset types with a visit).

The server's CPU time per cutout is reported too: on a shared machine wall-clock
figures grow with the load (the load average is recorded), CPU time much less.

Medians and 90th percentiles of ``--repeat`` runs, in milliseconds. Prints a table and
writes JSON to ``benchmarks/results/images-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def timings(func: Callable[[], object], repeat: int) -> dict[str, float]:
    """Median and 90th percentile milliseconds of ``repeat`` calls, and median CPU time
    of this process (for the HTTP client: its own share only)."""
    samples, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        func()
        samples.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(samples[min(len(samples) - 1, int(0.9 * len(samples)))], 2),
        "cpu_median_ms": round(statistics.median(cpu), 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            return True
    except Exception:
        return False


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one registry, dropped afterwards."""
    import psycopg

    name = f"dpzero_bench_images_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def image_server(repo: str) -> Iterator[tuple[str, int]]:
    """This script's ``--serve`` mode in a subprocess; yields its URL and process id."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", repo, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the image server did not start")
            try:
                httpx.get(url + "/api/cutout/sync", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def serve(repo: str, port: int) -> None:
    """The image routes behind the platform's gate (open mode), as `dpzero serve` has them."""
    import uvicorn
    from fastapi import FastAPI

    from dpzero.auth import install_auth
    from dpzero.config import Settings
    from dpzero.images.handlers import images_router
    from dpzero.images.service import ImageService

    state = Path(tempfile.mkdtemp(prefix="dpzero-bench-images-state-"))
    try:
        settings = Settings(repo=repo, port=port, state_dir=state)
        app = FastAPI()
        app.state.image_service = ImageService.open(repo)
        app.include_router(images_router(settings))
        install_auth(app, settings)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        shutil.rmtree(state, ignore_errors=True)


def measure_backend(legacy: Path, root: Path, registry: str | None, repeat: int) -> dict:
    """Convert ``legacy`` into a new repository at ``root`` and time the reads."""
    from lsst.daf.butler import Butler

    from dpzero.images.ids import dataset_id_uri
    from dpzero.repo.convert import convert_legacy
    from dpzero.repo.dimensions import INSTRUMENT, RELEASE_COLLECTION
    from dpzero.repo.exposure import Box
    from dpzero.repo.repository import RepoSpec

    out: dict[str, object] = {}
    start = time.perf_counter()
    report = convert_legacy(legacy, RepoSpec(str(root), registry=registry))
    seconds = time.perf_counter() - start
    datasets = sum(report.ingested.values())
    out["convert"] = {
        "datasets": datasets,
        "seconds": round(seconds, 2),
        "datasets_per_s": round(datasets / seconds, 2),
    }

    with Butler(str(root), collections=RELEASE_COLLECTION) as butler:
        ref = butler.query_datasets("calexp", limit=1, order_by=["visit", "detector"])[0]
        visit = int(ref.dataId["visit"])
        full = butler.get(ref)
        x0 = full.bbox.x0 + full.bbox.width // 2 - 50
        y0 = full.bbox.y0 + full.bbox.height // 2 - 50
        box = Box(x0, y0, 100, 100)
        out["calexp_shape"] = list(full.image.shape)
        out["butler_get_calexp"] = timings(lambda: butler.get(ref), repeat)
        out["butler_get_cutout_100"] = timings(
            lambda: butler.get(ref, parameters={"bbox": box}), repeat
        )
        visit_types = [
            dt.name
            for dt in butler.registry.queryDatasetTypes()
            if "visit" in dt.dimensions.names and not dt.isComponent()
        ]

        def visit_datasets() -> int:
            refs = butler.registry.queryDatasets(
                visit_types,
                collections=RELEASE_COLLECTION,
                where="instrument = INSTR AND visit = VISIT",
                bind={"INSTR": INSTRUMENT, "VISIT": visit},
                findFirst=True,
            )
            return len(list(refs))

        out["visit_datasets"] = visit_datasets()
        out["registry_visit_query"] = timings(visit_datasets, repeat)

    # A POLYGON whose pixel box is exactly the 100×100 `box` (straight edges in TAN).
    xs = np.array([x0 - 0.4, x0 + 99.4, x0 + 99.4, x0 - 0.4])
    ys = np.array([y0 - 0.4, y0 - 0.4, y0 + 99.4, y0 + 99.4])
    ra, dec = full.parent_to_sky(xs, ys)
    polygon = " ".join(f"{a:.10f} {d:.10f}" for a, d in zip(ra, dec, strict=True))
    params = {"ID": dataset_id_uri(ref), "POLYGON": polygon}
    server = image_server(str(root))
    with server as (url, pid), httpx.Client(base_url=url, timeout=60) as client:

        def cutout() -> None:
            response = client.get("/api/cutout/sync", params=params)
            if response.status_code != 200:
                raise RuntimeError(response.text)
            if f"SODABBOX= '{x0} {y0} 100 100'" not in response.content[:2880].decode():
                raise RuntimeError("the cutout is not the expected 100x100 box")

        out["service_cutout_100_first"] = timings(cutout, 1)["median_ms"]
        cpu_before = process_cpu_seconds(pid)
        out["service_cutout_100"] = timings(cutout, repeat)
        # The server's own CPU per request does not depend on what else the machine runs.
        out["service_cutout_100_server_cpu_ms"] = round(
            (process_cpu_seconds(pid) - cpu_before) * 1000 / repeat, 2
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--legacy", type=Path, help="legacy release (default: simulate tiny)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    results: dict[str, object] = {
        "machine": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
        "repeat": args.repeat,
    }
    work = Path(tempfile.mkdtemp(prefix="dpzero-bench-images-"))
    try:
        legacy = args.legacy
        if legacy is None:
            from dpzero.sim.images.simulate import simulate_images

            legacy = work / "legacy"
            start = time.perf_counter()
            simulate_images("tiny", 1, legacy, progress=False)
            results["simulate_tiny_s"] = round(time.perf_counter() - start, 1)
        results["legacy"] = str(args.legacy or "dpzero sim images --size tiny --seed 1")
        results["sqlite"] = measure_backend(legacy, work / "repo-sqlite", None, args.repeat)
        if postgres_reachable():
            with postgres_database() as database:
                results["postgresql"] = measure_backend(
                    legacy, work / "repo-postgresql", database, args.repeat
                )
        results["load_average_end"] = list(os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print_table(results)
    out = ROOT / "results" / f"images-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def print_table(results: dict[str, object]) -> None:
    backends = [b for b in ("sqlite", "postgresql") if b in results]
    rows = [
        ("conversion, datasets/s", lambda r: f"{r['convert']['datasets_per_s']:.1f}"),
        ("conversion, datasets (s)", _conversion),
        ("butler.get calexp, ms", lambda r: _ms(r["butler_get_calexp"])),
        ("butler.get 100x100 bbox, ms", lambda r: _ms(r["butler_get_cutout_100"])),
        ("service cutout 100x100, ms", lambda r: _ms(r["service_cutout_100"])),
        ("service cutout, first call, ms", lambda r: f"{r['service_cutout_100_first']:.1f}"),
        ("service cutout, server CPU ms", lambda r: f"{r['service_cutout_100_server_cpu_ms']:.1f}"),
        ("registry: datasets of a visit, ms", lambda r: _ms(r["registry_visit_query"])),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{b:>18}" for b in backends))
    for name, cell in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{cell(results[b]):>18}" for b in backends))  # type: ignore[arg-type]
    first = results[backends[0]]
    print(f"(calexp {first['calexp_shape']}, {first['visit_datasets']} datasets in the visit; "  # type: ignore[index]
          "median / p90 (median CPU))")  # fmt: skip


def _conversion(r: dict) -> str:
    return f"{r['convert']['datasets']} ({r['convert']['seconds']:.1f} s)"


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['median_ms']:.1f} / {stats['p90_ms']:.1f} ({stats['cpu_median_ms']:.1f})"


if __name__ == "__main__":
    main()
