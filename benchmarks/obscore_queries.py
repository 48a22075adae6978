"""Region queries on an ObsCore-shaped table: CONTAINS/INTERSECTS with s_region.

A synthetic ``ivoa.ObsCore`` of N detector footprints (13.7′ squares, random position
and rotation over the DC2 area, STC-S ``s_region`` as ``build_obscore`` writes it) is
queried with the ADQL the tutorials use, translated by dpzero's ADQL layer and run on
DuckDB as the TAP service runs it (the table in memory). Prints a table and writes JSON
to benchmarks/results/.

    .venv/bin/python benchmarks/obscore_queries.py --rows 20000 --repeat 7
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from dpzero.adql import (
    ColumnInfo,
    TableCatalog,
    parse_adql,
    register_adql_functions,
    resolve,
    to_duckdb,
)

SIDE_DEG = 13.7 / 60
RA_RANGE, DEC_RANGE = (50.0, 73.0), (-44.0, -28.0)


def footprint(ra: float, dec: float, angle: float) -> str:
    """A square of side SIDE_DEG centred on (ra, dec), rotated by ``angle``."""
    half = math.radians(SIDE_DEG / 2 * math.sqrt(2))
    d0 = math.radians(dec)
    vertices = []
    for k in range(4):
        a = angle + k * math.pi / 2
        d = math.asin(math.sin(d0) * math.cos(half) + math.cos(d0) * math.sin(half) * math.cos(a))
        dra = math.atan2(
            math.sin(a) * math.sin(half) * math.cos(d0), math.cos(half) - math.sin(d0) * math.sin(d)
        )
        vertices.append(((ra + math.degrees(dra)) % 360, math.degrees(d)))
    return "POLYGON ICRS " + " ".join(f"{x:.10f}" for v in vertices for x in v)


def synthetic_obscore(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ra = rng.uniform(*RA_RANGE, rows)
    dec = np.degrees(np.arcsin(rng.uniform(*np.sin(np.radians(DEC_RANGE)), rows)))
    angle = rng.uniform(0, math.pi / 2, rows)
    return pa.table(
        {
            "obs_publisher_did": [f"butler://dp01/{i:032x}" for i in range(rows)],
            "dataproduct_subtype": rng.choice(["lsst.calexp", "lsst.deepCoadd_calexp"], rows),
            "lsst_band": rng.choice(list("ugrizy"), rows),
            "s_ra": ra,
            "s_dec": dec,
            "s_region": [footprint(*v) for v in zip(ra, dec, angle, strict=True)],
        }
    )


CATALOG = TableCatalog(
    {
        "ivoa.obscore": (
            ColumnInfo("obs_publisher_did", "char"),
            ColumnInfo("dataproduct_subtype", "char"),
            ColumnInfo("lsst_band", "char"),
            ColumnInfo("s_ra", "double", "deg"),
            ColumnInfo("s_dec", "double", "deg"),
            ColumnInfo("s_region", "char"),
        )
    }
)

QUERIES = {
    "contains_point": "SELECT * FROM ivoa.ObsCore "
    "WHERE CONTAINS(POINT('ICRS', {ra}, {dec}), s_region) = 1",
    "intersects_circle_0.1": "SELECT * FROM ivoa.ObsCore "
    "WHERE INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, 0.1), s_region) = 1",
    "intersects_circle_1.0": "SELECT * FROM ivoa.ObsCore "
    "WHERE INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, 1.0), s_region) = 1",
    "subtype_and_band": "SELECT * FROM ivoa.ObsCore "
    "WHERE dataproduct_subtype = 'lsst.calexp' AND lsst_band = 'i'",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()

    start = time.perf_counter()
    table = synthetic_obscore(args.rows, args.seed)
    made = time.perf_counter() - start
    con = duckdb.connect()
    register_adql_functions(con)
    con.register("obscore", table)
    rng = np.random.default_rng(args.seed + 1)
    results = []
    print(f"{args.rows} footprints made in {made:.1f} s; median of {args.repeat} runs, cold first")
    print(f"{'query':<24} {'first ms':>9} {'median ms':>10} {'rows':>8}")
    for name, template in QUERIES.items():
        times, counts = [], []
        for _ in range(args.repeat):
            ra, dec = rng.uniform(52, 71), rng.uniform(-42, -30)
            adql = template.format(ra=ra, dec=dec)
            t0 = time.perf_counter()
            sql = to_duckdb(
                resolve(parse_adql(adql), CATALOG), table_names={"ivoa.obscore": "obscore"}
            )
            counts.append(con.sql(sql).to_arrow_table().num_rows)
            times.append((time.perf_counter() - t0) * 1000)
        median = statistics.median(times)
        rows = int(statistics.median(counts))
        print(f"{name:<24} {times[0]:>9.1f} {median:>10.1f} {rows:>8}")
        results.append(
            {"query": name, "first_ms": times[0], "median_ms": median, "median_rows": rows}
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = args.out / f"obscore_queries-{args.rows}-{stamp}.json"
    path.write_text(json.dumps({"rows": args.rows, "repeat": args.repeat, "results": results}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
