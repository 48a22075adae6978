"""Benchmark ``dpzero sim catalogs``: rows/s, peak memory and output size per size.

Usage: ``python benchmarks/sim_catalogs.py --size small [--jobs 2] [--keep DIR]``.
Runs the simulation in a child process (so its peak memory is measured alone),
prints a table and writes ``benchmarks/results/sim_catalogs_<size>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def folder_bytes(folder: Path) -> dict[str, int]:
    """Bytes on disk per table folder."""
    return {
        p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        for p in sorted(folder.iterdir())
        if p.is_dir()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the survey here and keep it")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dpzero-bench-"))
    out = args.keep or work / "survey"
    cmd = [
        sys.executable, "-m", "dpzero.cli", "sim", "catalogs", "--size", args.size,
        "--seed", str(args.seed), "--out", str(out), "--jobs", str(args.jobs), "--quiet",
    ]  # fmt: skip
    start = time.monotonic()
    subprocess.run(cmd, check=True)
    elapsed = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    manifest = json.loads((out / "manifest.json").read_text())
    sizes = folder_bytes(out)
    objects = manifest["tables"]["object"]["rows"]
    all_rows = sum(t["rows"] for t in manifest["tables"].values()) + manifest["truth"]["rows"]
    result = {
        "size": args.size,
        "seed": args.seed,
        "jobs": args.jobs,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "area_deg2": manifest["area_deg2"],
        "objects": objects,
        "rows_all_tables": all_rows,
        "seconds": round(elapsed, 1),
        "objects_per_second": round(objects / elapsed),
        "rows_per_second": round(all_rows / elapsed),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "output_bytes": sum(sizes.values()),
        "output_bytes_per_table": sizes,
        "rows_per_table": {k: v["rows"] for k, v in manifest["tables"].items()},
    }
    if not args.keep:
        shutil.rmtree(work)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"sim_catalogs_{args.size}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'size':<8}{'jobs':>5}{'objects':>12}{'seconds':>10}{'objects/s':>12}"
          f"{'rows/s':>10}{'peak MB':>9}{'output GB':>11}")  # fmt: skip
    print(
        f"{args.size:<8}{args.jobs:>5}{objects:>12,}{elapsed:>10.1f}"
        f"{result['objects_per_second']:>12,}{result['rows_per_second']:>10,}"
        f"{result['peak_rss_mb']:>9,}{result['output_bytes'] / 1e9:>11.2f}"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
