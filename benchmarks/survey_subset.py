"""A `dpzero sim catalogs` folder holding some tables and tracts of another one (hard links).

Usage::

    python benchmarks/survey_subset.py SURVEY OUT --tables object,position \\
        --tracts 3446,3447 --box RA_MIN,RA_MAX,DEC_MIN,DEC_MAX

SURVEY may be a finished survey or the ``.NAME.partial-PID`` folder of one still being
simulated: a tract file counts once its Parquet footer is readable. The new manifest's
region is ``--box`` (where the benchmarks draw random positions; it must lie inside the
chosen tracts). Files are hard links, so OUT costs no disk and survives the
simulation's final rename.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("survey", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--tables", default="object,position")
    parser.add_argument("--tracts", required=True, help="comma-separated tract numbers")
    parser.add_argument("--box", required=True, help="RA_MIN,RA_MAX,DEC_MIN,DEC_MAX in degrees")
    args = parser.parse_args()

    tracts = {int(t) for t in args.tracts.split(",")}
    ra_min, ra_max, dec_min, dec_max = (float(v) for v in args.box.split(","))
    manifest: dict[str, object] = {
        "schema": "dp01_dc2",
        "database": "dp01_dc2_catalogs",
        "size": f"subset of {args.survey.name}: tracts {sorted(tracts)}",
        "region": {
            "ra_center": (ra_min + ra_max) / 2,
            "ra_half_width": (ra_max - ra_min) / 2,
            "dec_min": dec_min,
            "dec_max": dec_max,
            "half_width": (dec_max - dec_min) / 2,
        },
        "tables": {},
    }
    source = json.loads((args.survey / "manifest.json").read_text()) if (
        args.survey / "manifest.json"
    ).exists() else None  # fmt: skip
    if source is not None:
        manifest["schema_version"] = source.get("schema_version")
    for table in args.tables.split(","):
        (args.out / table).mkdir(parents=True, exist_ok=True)
        files, rows = [], 0
        for path in sorted((args.survey / table).glob(f"{table}_tract*.parquet")):
            match = re.search(r"tract(\d+)", path.name)
            if match is None or int(match.group(1)) not in tracts:
                continue
            meta = pq.read_metadata(path)  # fails for a file still being written
            rel = f"{table}/{path.name}"
            target = args.out / rel
            if not target.exists():
                os.link(path, target)
            files.append(rel)
            rows += meta.num_rows
        missing = tracts - {int(re.search(r"tract(\d+)", f).group(1)) for f in files}  # type: ignore[union-attr]
        if missing:
            raise SystemExit(f"{table}: no finished file for tracts {sorted(missing)}")
        manifest["tables"][table] = {"files": files, "rows": rows}  # type: ignore[index]
        print(f"{table}: {len(files)} files, {rows:,} rows")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
