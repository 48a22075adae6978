"""Point queries on a cold cache: what a query costs when its data is on disk.

Before each timed query the kernel's page cache is dropped (``sync; echo 1 >
/proc/sys/vm/drop_caches``, so run it as root on a machine of your own), then the query
runs once. Classes: 12 random objectIds, a 5″ cone and a 0.03° cone, SELECT * on the
object table. Pages a process has mapped stay cached (the kernel does not drop them),
so each query takes new random positions.

With ``--pg-db`` the same queries go to PostgreSQL + q3c (the database
``catalog_compare.py prepare`` loads) on a cold cache of its own: before each query the
server restarts (its shared buffers empty), a new connection plans a query of the same
shape (the catalog and statistics a session has after its first query, as dpzero's
``open_all`` has its footers and index fences), then the page cache is dropped.

    python benchmarks/catalog_cold.py --store STORE [--pg-db NAME] [--repeat 10]

Prints a table and writes ``benchmarks/results/catalog_cold-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_queries import OBJECT, Query, cone, id_lookup
from catalog_compare import PG_DSN, RESULTS


def drop_page_cache() -> None:
    """Empty the kernel's page cache (needs root)."""
    subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], check=True)


class ColdPostgres:
    """PostgreSQL + q3c, its shared buffers emptied by a restart before every query."""

    def __init__(self, dbname: str) -> None:
        self.dbname = dbname
        clusters = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
        ).stdout.split()
        self.version, self.cluster = clusters[0], clusters[1]

    def run_cold(self, query: Query, same_shape: Query) -> tuple[int, float]:
        import psycopg

        subprocess.run(["pg_ctlcluster", self.version, self.cluster, "restart"], check=True)
        with psycopg.connect(f"{PG_DSN} dbname={self.dbname}", autocommit=True) as con:
            con.execute("SET jit = off")
            con.execute(f"EXPLAIN {same_shape.postgres}")
            drop_page_cache()
            started = time.perf_counter()
            rows = 0
            with con.cursor() as cur, cur.copy(f"COPY ({query.postgres}) TO STDOUT") as copy:
                for data in copy:
                    rows += bytes(data).count(b"\n")
            return rows, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--pg-db", help="also PostgreSQL + q3c, this database")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    try:
        drop_page_cache()
    except (subprocess.CalledProcessError, OSError):
        sys.exit("dropping the page cache needs root (echo 1 > /proc/sys/vm/drop_caches)")

    from dpzero.catalog import open_store

    store = open_store(args.store)
    store.open_all()  # as a server does at start
    sample = store.query(f"SELECT objectId, ra, dec FROM {OBJECT} USING SAMPLE 5000 ROWS")
    rows = sample.to_pylist()
    rng = random.Random(args.seed)

    def ids() -> Query:
        return id_lookup([r["objectId"] for r in rng.sample(rows, 12)])

    def cone_of(radius: float) -> Callable[[], Query]:
        def make() -> Query:
            at = rng.choice(rows)
            return cone(at["ra"], at["dec"], radius, None)

        return make

    classes = {"12 ids": ids, 'cone 5"': cone_of(5 / 3600), "cone 0.03°": cone_of(0.03)}
    postgres = ColdPostgres(args.pg_db) if args.pg_db else None
    results: dict[str, dict[str, dict[str, object]]] = {}
    for name, make in classes.items():
        store.query_adql(make().adql)  # the shape known, as on a server
        queries = [make() for _ in range(args.repeat)]
        walls: dict[str, list[float]] = {"dpzero": []}
        counts: dict[str, list[int]] = {"dpzero": []}
        for query in queries:
            drop_page_cache()
            started = time.perf_counter()
            counts["dpzero"].append(store.query_adql(query.adql).num_rows)
            walls["dpzero"].append((time.perf_counter() - started) * 1000)
        if postgres is not None:
            walls["postgres+q3c"], counts["postgres+q3c"] = [], []
            for query in queries:
                n, ms = postgres.run_cold(query, make())
                counts["postgres+q3c"].append(n)
                walls["postgres+q3c"].append(ms)
        results[name] = {
            peer: {
                "median_ms": round(statistics.median(w), 2),
                "max_ms": round(max(w), 2),
                "ms": [round(x, 2) for x in w],
                "rows": counts[peer],
            }
            for peer, w in walls.items()
        }
        for peer, r in results[name].items():
            median, worst = r["median_ms"], r["max_ms"]
            print(f"{name:12} {peer:13} cold median {median:8.1f} ms  max {worst:8.1f}")
        if postgres is not None and counts["dpzero"] != counts["postgres+q3c"]:
            print(f"{name}: row counts differ: {counts}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"catalog_cold-{stamp}.json"
    report = {"store": str(args.store), "pg_db": args.pg_db, "repeat": args.repeat,
              "results": results}  # fmt: skip
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
