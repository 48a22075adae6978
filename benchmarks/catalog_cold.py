"""Point queries on a cold page cache: what a query costs when its data is on disk.

Before each timed query the kernel's page cache is dropped (``sync; echo 1 >
/proc/sys/vm/drop_caches``, so run it as root on a machine of your own), then the query
runs once through ``LocalCatalogStore.query_adql``. Classes: 12 random objectIds, a 5″
cone and a 0.03° cone, SELECT * on the object table. Pages a process has mapped stay
cached (the kernel does not drop them), so each query takes new random positions.

    python benchmarks/catalog_cold.py --store STORE [--repeat 10]

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
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
OBJECT = "dp01_dc2_catalogs.object"


def drop_page_cache() -> None:
    """Empty the kernel's page cache (needs root)."""
    subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
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

    def ids() -> str:
        listed = ", ".join(str(r["objectId"]) for r in rng.sample(rows, 12))
        return f"SELECT * FROM {OBJECT} WHERE objectId IN ({listed})"

    def cone(radius: float) -> str:
        at = rng.choice(rows)
        return (
            f"SELECT * FROM {OBJECT} WHERE CONTAINS(POINT('ICRS', ra, dec), "
            f"CIRCLE('ICRS', {at['ra']!r}, {at['dec']!r}, {radius!r})) = 1"
        )

    classes = {"12 ids": ids, 'cone 5"': lambda: cone(5 / 3600), "cone 0.03°": lambda: cone(0.03)}
    results = {}
    for name, make in classes.items():
        store.query_adql(make())  # the shape known, as on a server
        walls, counts = [], []
        for _ in range(args.repeat):
            text = make()
            drop_page_cache()
            started = time.perf_counter()
            counts.append(store.query_adql(text).num_rows)
            walls.append((time.perf_counter() - started) * 1000)
        results[name] = {
            "median_ms": round(statistics.median(walls), 2),
            "max_ms": round(max(walls), 2),
            "ms": [round(w, 2) for w in walls],
            "rows": counts,
        }
        print(f"{name:12} cold median {results[name]['median_ms']:8.1f} ms  max {max(walls):8.1f}")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"catalog_cold-{stamp}.json"
    report = {"store": str(args.store), "repeat": args.repeat, "results": results}
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
