"""Point queries, dpzero against PostgreSQL + q3c query by query, taking turns.

`catalog_compare.py run` times each peer's whole class before the next peer starts;
on a shared machine whose speed drifts by 1.5× within minutes, sub-millisecond classes
(12 ids, a 5″ cone) then compare the machine at two moments as much as the peers. Here
every query of a class runs on each peer in turn (the order swapped every round), after
one untimed pass of the class on both (data in memory, as `--warm`), so drift falls on
both alike. Same query classes, positions and SQL as `catalog_compare.py`.

    python benchmarks/catalog_paired.py --survey SURVEY --store STORE \\
        --pg-db dpzero_bench_medium [--rounds 5] [--repeat 10] [--only "12 ids *,..."]

Prints a table and writes ``benchmarks/results/catalog_paired-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_queries import Footprint, build_classes
from catalog_compare import RESULTS, DpzeroPeer, PostgresPeer, id_pool, machine_state

POINT_CLASSES = (
    'cone 5" *',
    "cones 0.01–0.05° *",
    "polygon 0.1° *",
    "12 ids *",
    "join cone 0.05°",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--pg-db", default="dpzero_bench_catalog")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", help="comma-separated class names")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else set(POINT_CLASSES)
    footprint = Footprint.from_survey(args.survey)
    classes = build_classes(footprint, id_pool(args.store), args.repeat, 1, args.seed, wanted)
    peers = {"dpzero": DpzeroPeer(args.store), "postgres+q3c": PostgresPeer(args.pg_db)}
    before = machine_state()
    report: dict[str, dict[str, object]] = {}
    for cls in classes:
        for query in cls.queries:  # untimed: every query's data in memory on both
            for peer in peers.values():
                peer.run(query)
        times: dict[str, list[float]] = {name: [] for name in peers}
        rows: dict[str, list[int]] = {name: [] for name in peers}
        for round_number in range(args.rounds):
            order = list(peers.items())
            if round_number % 2:
                order.reverse()
            for query in cls.queries:
                for name, peer in order:
                    started = time.perf_counter()
                    n, _ = peer.run(query)
                    times[name].append((time.perf_counter() - started) * 1000)
                    rows[name].append(n)
        medians = {name: round(statistics.median(t), 3) for name, t in times.items()}
        # Per round: which peer's median was lower (drift between rounds cancels out).
        per_round = len(cls.queries)
        wins = sum(
            statistics.median(times["dpzero"][r * per_round : (r + 1) * per_round])
            <= statistics.median(times["postgres+q3c"][r * per_round : (r + 1) * per_round])
            for r in range(args.rounds)
        )
        same = rows["dpzero"] == rows["postgres+q3c"]
        report[cls.name] = {"median_ms": medians, "dpzero_faster_rounds": wins,
                            "rounds": args.rounds, "same_rows": same, "ms": times}  # fmt: skip
        print(f"{cls.name:22} dpzero {medians['dpzero']:8.3f} ms  postgres+q3c "
              f"{medians['postgres+q3c']:8.3f} ms  dpzero faster in {wins}/{args.rounds} "
              f"rounds  rows {'same' if same else 'DIFFER'}", flush=True)  # fmt: skip
    for peer in peers.values():
        peer.close()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"catalog_paired-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    summary = {"what": "point queries, dpzero and PostgreSQL + q3c taking turns query by query",
               "survey": str(args.survey), "store": str(args.store), "repeat": args.repeat,
               "rounds": args.rounds, "seed": args.seed, "classes": report,
               "machine_before": before, "machine_after": machine_state(),
               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
