"""Benchmark ``dpzero catalog ingest``: rows/s and peak memory on a simulated survey.

Usage::

    python benchmarks/catalog_ingest.py --size tiny
    python benchmarks/catalog_ingest.py --input DIR      # an existing `sim catalogs` folder

Simulates the survey first (``dpzero sim catalogs --size SIZE --seed 1``) unless
``--input`` is given, then ingests it into a fresh store in a child process (so its peak
memory is its own ``ru_maxrss``), prints a table and writes
``benchmarks/results/catalog_ingest_<size>-<time>.json``. The survey and the store are
deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# Runs in the child: ingest, then report per-table rows and the phase timings.
_CHILD = """
import json, resource, sys
from pathlib import Path
from dpzero.catalog import IngestOptions, ingest_catalogs
options = IngestOptions(partition_rows=int(sys.argv[3]), threads=int(sys.argv[4]))
report = ingest_catalogs(Path(sys.argv[1]), Path(sys.argv[2]), options=options)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": {t.table: t.rows for t in report.tables}, "peak_kb": peak}))
"""


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _columns(source: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    manifest = json.loads((source / "manifest.json").read_text())
    out = {}
    for name, info in manifest["tables"].items():
        out[name] = len(pq.read_schema(source / info["files"][0]).names)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--input", type=Path, help="ingest this sim folder instead")
    parser.add_argument("--jobs", type=int, default=2, help="simulation worker processes")
    parser.add_argument("--partition-rows", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the survey and the store")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dpzero-ingest-bench-"))
    try:
        source = args.input
        if source is None:
            source = work / "survey"
            subprocess.run(
                [sys.executable, "-m", "dpzero.cli", "sim", "catalogs", "--size", args.size,
                 "--seed", "1", "--out", str(source), "--jobs", str(args.jobs), "--quiet"],
                check=True,
            )  # fmt: skip
        store = work / "store"
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(source), str(store),
             str(args.partition_rows), str(args.threads)],
            check=True, capture_output=True, text=True, env=os.environ.copy(),
        )  # fmt: skip
        elapsed = time.monotonic() - start
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        rows, peak_kb = answer["rows"], answer["peak_kb"]
        columns = _columns(source)
        survey_size = json.loads((source / "manifest.json").read_text()).get("size", "input")
        input_bytes = _folder_bytes(source)
        store_bytes = _folder_bytes(store)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = sum(rows.values())
    label = args.size if args.input is None else str(survey_size)
    result = {
        "size": label,
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "load_average_1m": round(os.getloadavg()[0], 1),
        "partition_rows": args.partition_rows,
        "threads": args.threads,
        "rows": total,
        "rows_per_table": rows,
        "columns_per_table": columns,
        "seconds": round(elapsed, 1),
        "rows_per_second": round(total / elapsed),
        "peak_rss_mb": round(peak_kb / 1024),
        "peak_rss_note": "ru_maxrss of the ingest process alone",
        "input_bytes": input_bytes,
        "store_bytes": store_bytes,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"catalog_ingest_{label}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'table':<20}{'rows':>12}{'columns':>9}")
    for name, n in sorted(rows.items()):
        print(f"{name:<20}{n:>12,}{columns.get(name, 0):>9}")
    print(
        f"{'total':<20}{total:>12,}   {elapsed:.1f} s, {result['rows_per_second']:,} rows/s, "
        f"peak {result['peak_rss_mb']} MB, store {store_bytes / 1e9:.2f} GB"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
