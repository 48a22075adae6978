"""Pipeline execution benchmark: wall time and peak memory per step, -j 1 vs -j 2, and
quanta per minute through bps/Parsl vs pipetask.

Simulates raws (``dpzero sim images``), converts them once into a repository, then for
each ``-j`` runs the steps in order into a fresh copy of it with ``dpzero pipeline run``
(one process tree per step, its resident memory summed over all processes and sampled
every 0.2 s), and finally runs step1 again through ``dpzero pipeline run --bps``.

    python benchmarks/pipelines.py --size tiny --band g --band r --detector 0 --detector 1

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
DPZERO = str(Path(sys.executable).parent / "dpzero")
RESULTS = ROOT / "benchmarks" / "results"
_COUNTS = re.compile(r"(\d+) quanta succeeded, (\d+) failed, (\d+) blocked, of (\d+)")


def run_measured(command: list[str], cwd: Path) -> dict[str, object]:
    """Run ``command``; its wall time, peak summed RSS of its process tree, and output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    output = process.stdout.read() if process.stdout else ""
    seconds = time.perf_counter() - started
    counts = _COUNTS.findall(output)
    succeeded, failed, blocked, total = (int(v) for v in counts[-1]) if counts else (0, 0, 0, 0)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "status": process.returncode,
        "succeeded": succeeded,
        "failed": failed,
        "blocked": blocked,
        "total": total,
        "quanta_per_minute": round(60 * succeeded / seconds, 2) if seconds else 0.0,
        "tail": "" if process.returncode == 0 else output[-2000:],
    }


def prepare(args: argparse.Namespace, work: Path) -> Path:
    """Simulated raws converted into a repository (reused when present)."""
    legacy, template = work / "legacy", work / "repo-template"
    if not (legacy / "manifest.json").exists() and not legacy.exists():
        command = [
            DPZERO,
            "sim",
            "images",
            "--size",
            args.size,
            "--seed",
            "1",
            "--out",
            str(legacy),
        ]
        command += [f"--band={b}" for b in args.band]
        command += [f"--detector={d}" for d in args.detector]
        subprocess.run([*command, "--quiet"], check=True)
    if not template.exists():
        subprocess.run(
            [DPZERO, "repo", "convert", str(legacy), "--repo", str(template)], check=True
        )
    return template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    parser.add_argument("--band", action="append", default=[], help="Only this band.")
    parser.add_argument("--detector", action="append", type=int, default=[])
    parser.add_argument(
        "--steps", default="step1,step2,step3,step4,step5", help="Subsets, in order."
    )
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--bps-cores", type=int, default=2)
    parser.add_argument("--no-bps", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dpzero-bench-pipelines"))
    parser.add_argument(
        "--template", type=Path, default=None, help="An existing repository with raws instead."
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    template = args.template or prepare(args, args.work)
    rows: list[dict[str, object]] = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = RESULTS / f"pipelines_{args.size}-{stamp}.json"

    def record(row: dict[str, object]) -> None:
        """Keep a row; the JSON is rewritten after each, so a long run leaves its part."""
        rows.append(row)
        print(row, flush=True)
        meta = {
            "size": args.size,
            "bands": args.band,
            "detectors": args.detector,
            "cores": os.cpu_count(),
            "load_average": os.getloadavg(),
            "rows": rows,
        }
        out.write_text(json.dumps(meta, indent=1))

    for jobs in (int(j) for j in args.jobs.split(",") if j):
        repo = args.work / f"repo-j{jobs}"
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(template, repo)
        for i, step in enumerate(args.steps.split(",")):
            command = [DPZERO, "pipeline", "run", "--repo", str(repo), "--output", "u/bench/drp"]
            command += ["--subset", step, "-j", str(jobs), *(["--resume"] if i else [])]
            load_before = os.getloadavg()[0]
            row = {
                "executor": "pipetask",
                "step": step,
                "jobs": jobs,
                **run_measured(command, ROOT),
                "load_before": load_before,
                "load_after": os.getloadavg()[0],
            }
            record(row)
        shutil.rmtree(repo, ignore_errors=True)
    if not args.no_bps:
        repo = args.work / "repo-bps"
        shutil.rmtree(repo, ignore_errors=True)
        shutil.copytree(template, repo)
        workflow = args.work / "bps-workflow"
        shutil.rmtree(workflow, ignore_errors=True)
        step = args.steps.split(",")[0]
        command = [DPZERO, "pipeline", "run", "--bps", "--repo", str(repo)]
        command += ["--output", "u/bench/bps", "--subset", step, "-j", str(args.bps_cores)]
        command += ["--submit-dir", str(workflow)]
        row = {"executor": "bps+parsl", "step": step, "jobs": args.bps_cores}
        load_before = os.getloadavg()[0]
        row.update(run_measured(command, ROOT))
        row.update(load_before=load_before, load_after=os.getloadavg()[0])
        record(row)
        shutil.rmtree(repo, ignore_errors=True)
        shutil.rmtree(workflow, ignore_errors=True)

    header = f"{'executor':<10} {'step':<6} {'-j':>3} {'quanta':>7} {'wall s':>8} "
    header += f"{'peak MB':>8} {'quanta/min':>10} {'load':>11}"
    print(f"\nPipeline execution, {args.size} images, bands {args.band or 'all'}, "
          f"detectors {args.detector or 'all'} ({os.cpu_count()} cores)")  # fmt: skip
    print(header)
    for r in rows:
        quanta = f"{r['succeeded']}/{r['total']}"
        print(
            f"{r['executor']:<10} {r['step']:<6} {r['jobs']:>3} {quanta:>7} "
            f"{r['seconds']:>8.1f} {r['peak_rss_mb']:>8.0f} {r['quanta_per_minute']:>10.1f} "
            f"{r['load_before']:>5.1f}→{r['load_after']:<5.1f}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
