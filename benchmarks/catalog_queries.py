"""Catalog store benchmark: ingest rate, cone and id-lookup latency, whole-table
aggregates and pairs run partition by partition, the memory of a streamed full scan.

Usage::

    python benchmarks/catalog_queries.py                      # 200 k synthetic objects
    python benchmarks/catalog_queries.py --rows 1000000
    python benchmarks/catalog_queries.py --input CATALOG_DIR  # output of `dpzero sim catalogs`

Synthetic inputs are object tables with exactly the DP0.1 schema, at the DC2 object
density (4.8e5 per deg²) in a square field centred on the DC2 footprint. Prints a table
and writes JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dpzero.catalog import IngestOptions, ingest_catalogs, open_store
from dpzero.schema import load_schema

DENSITY_PER_DEG2 = 4.8e5
CENTRE = (61.86, -35.79)
DB = "dp01_dc2_catalogs"


def synthetic_input(root: Path, rows: int, seed: int) -> tuple[float, float, float]:
    """Write an object table of ``rows`` rows; return the field's centre and half side."""
    rng = np.random.default_rng(seed)
    schema = load_schema("dp01_dc2").table("object").arrow_schema()
    half = math.sqrt(rows / DENSITY_PER_DEG2) / 2
    ra0, dec0 = CENTRE
    (root / "object").mkdir(parents=True)
    files = []
    per_file = 250_000
    for start in range(0, rows, per_file):
        n = min(per_file, rows - start)
        cols = {}
        for f in schema:
            t = f.type
            if pa.types.is_floating(t):
                cols[f.name] = pa.array(rng.normal(1000, 300, n).astype(t.to_pandas_dtype()), t)
            elif pa.types.is_integer(t):
                cols[f.name] = pa.array(rng.integers(0, 1000, n).astype(t.to_pandas_dtype()), t)
            elif pa.types.is_boolean(t):
                cols[f.name] = pa.array(rng.random(n) < 0.9)
            else:
                cols[f.name] = pa.array(["3,4"] * n, t)
        dec = rng.uniform(dec0 - half, dec0 + half, n)
        cols["dec"] = pa.array(dec)
        cols["ra"] = pa.array(ra0 + rng.uniform(-half, half, n) / np.cos(np.radians(dec)))
        cols["objectId"] = pa.array((3828 << 42) + np.arange(start, start + n), pa.int64())
        name = f"object/object_{start // per_file}.parquet"
        pq.write_table(pa.table([cols[f.name] for f in schema], schema=schema), root / name)
        files.append(name)
    manifest = {"schema": "dp01_dc2", "tables": {"object": {"files": files, "rows": rows}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return ra0, dec0, half


def timed(fn, repeat: int) -> tuple[float, int]:
    """Median wall time in ms over ``repeat`` calls (after one warm-up) and the rows."""
    rows = fn(0).num_rows
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i + 1)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), rows


def whole_table_plans(store, repeat: int) -> list[dict[str, object]]:
    """Whole-table aggregates and pairs run partition by partition, and the same
    aggregates as one DuckDB plan over the files, for comparison."""
    from dpzero.adql import parse_adql, resolve, to_duckdb
    from dpzero.catalog._adql import store_catalog

    out: list[dict[str, object]] = []
    queries = {
        "GROUP BY histogram": (
            f"SELECT FLOOR(psFlux_i / 100) AS bin, COUNT(*) AS n FROM {DB}.object "
            "GROUP BY FLOOR(psFlux_i / 100)"
        ),
        "full-table COUNT, AVG, MIN, MAX": (
            f"SELECT COUNT(*) AS n, AVG(psFlux_i) AS f, MIN(ra) AS lo, MAX(ra) AS hi "
            f"FROM {DB}.object"
        ),
    }
    for name, adql in queries.items():
        single = to_duckdb(resolve(parse_adql(adql), store_catalog(store)))
        ms, rows = timed(lambda _, q=adql: store.query_adql(q), repeat)
        out.append({"query": f"{name}, per partition", "ms": ms, "rows": rows})
        ms, rows = timed(lambda _, q=single: store.query(q), repeat)
        out.append({"query": f"{name}, one DuckDB plan", "ms": ms, "rows": rows})
    pairs = (
        f"SELECT a.objectId, b.objectId AS other FROM {DB}.object AS a JOIN {DB}.object AS b "
        "ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < 1.0 / 3600 "
        "WHERE a.objectId <> b.objectId"
    )
    ms, rows = timed(lambda _: store.query_adql(pairs), 1)
    out.append({"query": 'pairs within 1" of the whole table', "ms": ms, "rows": rows})
    return out


_MEMORY_PROBE = """
import json, sys
from dpzero.catalog import open_store

def hwm_mb():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) / 1024 for x in f if x.startswith("VmHWM:"))

store = open_store(sys.argv[1])
store.query_adql("SELECT TOP 10 * FROM dp01_dc2_catalogs.object")
before = hwm_mb()
size = 0
for batch in store.stream_adql("SELECT * FROM dp01_dc2_catalogs.object"):
    size += batch.nbytes
print(json.dumps({"before_mb": before, "peak_mb": hwm_mb(), "result_mb": size / 2**20}))
"""


def streamed_scan_memory(store_dir: Path) -> dict[str, float]:
    """Peak memory of a process streaming SELECT * of the whole object table."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(store_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return {k: round(v, 1) for k, v in json.loads(out.stdout).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="synthetic object rows")
    parser.add_argument("--input", type=Path, help="ingest this catalog folder instead")
    parser.add_argument("--partition-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep the store in this folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dpzero-bench-"))
    try:
        if args.input:
            source = args.input
            meta = json.loads((source / "manifest.json").read_text())
            region = meta.get("region", {})
            ra0 = region.get("ra_center", CENTRE[0])
            dec0 = (region.get("dec_min", CENTRE[1]) + region.get("dec_max", CENTRE[1])) / 2
            half = region.get("half_width", 0.1)
            label = f"input {source}"
        else:
            source = work / "input"
            ra0, dec0, half = synthetic_input(source, args.rows, args.seed)
            label = f"synthetic {args.rows} objects"
        store_dir = args.keep or work / "store"
        if store_dir.exists():
            shutil.rmtree(store_dir)
        t = time.perf_counter()
        report = ingest_catalogs(
            source, store_dir, options=IngestOptions(partition_rows=args.partition_rows)
        )
        ingest_s = time.perf_counter() - t
        total_rows = sum(e.rows for e in report.tables)
        store = open_store(store_dir)
        obj = store._table(f"{DB}.object")
        n_parts = len(obj.partitions)

        rng = np.random.default_rng(args.seed)
        centres = [
            (ra0 + rng.uniform(-half, half) * 0.5 / math.cos(math.radians(dec0)),
             dec0 + rng.uniform(-half, half) * 0.5)
            for _ in range(args.repeat + 1)
        ]  # fmt: skip
        results: list[dict[str, object]] = []

        def cone(radius_deg: float, cols: str, via_files: bool = False):
            def run(i: int) -> pa.Table:
                ra, dec = centres[i]
                circle = f"CIRCLE('ICRS', {ra}, {dec}, {radius_deg})"
                where = f"CONTAINS(POINT('ICRS', ra, dec), {circle}) = 1"
                if via_files:
                    # The same cone with no pruning: DuckDB scans every partition file.
                    return store.query(
                        f"SELECT {cols} FROM {DB}.object WHERE adql_hav(ra, dec, {ra}, {dec}) "
                        f"<= pow(sin(radians({radius_deg}) / 2), 2)"
                    )
                return store.query_adql(f"SELECT {cols} FROM {DB}.object WHERE {where}")

            return run

        for radius_arcsec in (5, 60, 180, 600):
            ms, rows = timed(cone(radius_arcsec / 3600, "objectId, ra, dec, psFlux_i"), args.repeat)
            results.append({"query": f'cone {radius_arcsec}" 4 cols', "ms": ms, "rows": rows})
        for radius_arcsec in (60, 600):
            ms, rows = timed(cone(radius_arcsec / 3600, "*"), args.repeat)
            results.append({"query": f'cone {radius_arcsec}" SELECT *', "ms": ms, "rows": rows})
        ms, rows = timed(
            cone(60 / 3600, "objectId, ra, dec, psFlux_i", True), max(3, args.repeat // 3)
        )
        results.append({"query": 'cone 60" 4 cols, DuckDB over all files', "ms": ms, "rows": rows})

        ids = store.query(f"SELECT objectId FROM {DB}.object").column(0).to_numpy()
        for count in (1, 100):

            def lookup(i: int, count: int = count) -> pa.Table:
                chosen = np.random.default_rng(i).choice(ids, count, replace=False)
                return store.query_adql(
                    f"SELECT * FROM {DB}.object WHERE objectId IN ({', '.join(map(str, chosen))})"
                )

            ms, rows = timed(lookup, args.repeat)
            results.append({"query": f"id lookup, {count} id(s), SELECT *", "ms": ms, "rows": rows})

        def scan(_: int) -> pa.Table:
            return store.query_adql(
                f"SELECT COUNT(*) AS n, AVG(psFlux_i) AS f FROM {DB}.object WHERE psFlux_i > 0"
            )

        ms, rows = timed(scan, max(3, args.repeat // 3))
        results.append({"query": "full-scan aggregate (COUNT, AVG)", "ms": ms, "rows": rows})
        results += whole_table_plans(store, max(3, args.repeat // 3))
        stream = streamed_scan_memory(store_dir)

        summary = {
            "label": label,
            "machine": f"{platform.node()} {platform.machine()}, {platform.python_version()}",
            "rows": total_rows,
            "object_partitions": n_parts,
            "ingest_seconds": round(ingest_s, 2),
            "ingest_rows_per_second": round(total_rows / ingest_s),
            "queries": [{**r, "ms": round(float(r["ms"]), 2)} for r in results],
            "streamed_full_scan": stream,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(f"{label}: {total_rows} rows, {n_parts} object partitions")
        print(f"ingest: {ingest_s:.1f} s, {total_rows / ingest_s:,.0f} rows/s")
        print(f"{'query':44} {'median ms':>10} {'rows':>8}")
        for r in summary["queries"]:
            print(f"{r['query']:44} {r['ms']:>10.1f} {r['rows']:>8}")
        print(
            f"streamed SELECT * full scan: {stream['result_mb']:.0f} MB of rows, "
            f"peak memory +{stream['peak_mb'] - stream['before_mb']:.0f} MB"
        )
        out = Path(__file__).parent / "results"
        out.mkdir(exist_ok=True)
        name = f"catalog_queries-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
        (out / name).write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {out / name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
