"""dpzero's catalog store against raw DuckDB, PostgreSQL + q3c and LSDB, same data, same queries.

Usage::

    # once: one Parquet file per table for DuckDB, and the tables in PostgreSQL + q3c
    python benchmarks/catalog_compare.py prepare --survey SURVEY --work DIR [--pg-db NAME]
    # the benchmark (every peer, every query class of benchmarks/bench_queries.py)
    python benchmarks/catalog_compare.py run --survey SURVEY --store STORE --work DIR
    # partition codec and row-group size: DuckDB scan vs single row-group reads
    python benchmarks/catalog_compare.py layout --store STORE --work DIR [--partitions 12]
    # drop the PostgreSQL database and the Parquet copies
    python benchmarks/catalog_compare.py clean --work DIR [--pg-db NAME]

SURVEY is a `dpzero sim catalogs` folder, STORE its `dpzero catalog ingest` store (at
least the object and position tables). PostgreSQL runs at 127.0.0.1:5432 (user
postgres) with the q3c extension (`make benchmarks-setup` installs Debian's
postgresql-15-q3c). Each query class runs one warm-up query and then ``--repeat``
others at different random positions (the same ones for every peer); medians and p95
are of those. Prints a table and writes ``benchmarks/results/catalog_compare-<time>.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from bench_queries import (
    DB,
    FIVE_COLUMNS,
    MAG_CUT,
    Footprint,
    Query,
    QueryClass,
    build_classes,
    cpu_seconds,
    summarise,
)

RESULTS = Path(__file__).parent / "results"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres"
PG_TIMEOUT_S = 120
TABLES = ("object", "position")
PG_TYPES = {
    "double": "double precision",
    "float": "real",
    "int64": "bigint",
    "int32": "integer",
    "int16": "smallint",
    "int8": "smallint",
    "bool": "boolean",
    "string": "text",
    "large_string": "text",
}


def machine_state() -> dict[str, Any]:
    """Load average and the busiest other processes, to say what else was running."""
    top = subprocess.run(
        ["ps", "-eo", "pcpu,rss,args", "--sort=-pcpu"], capture_output=True, text=True
    ).stdout.splitlines()[1:6]
    return {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "top_processes": [
            " ".join([*line.split()[:2], line.split(None, 2)[2][:90]]) for line in top
        ],
    }


def survey_files(survey: Path, table: str) -> list[Path]:
    """The Parquet files of one table of a simulated survey."""
    manifest = json.loads((survey / "manifest.json").read_text())
    return [survey / f for f in manifest["tables"][table]["files"]]


# ---------------------------------------------------------------- prepare


def write_single_parquet(survey: Path, work: Path) -> dict[str, float]:
    """One Parquet file per table, in the survey's own row order (DuckDB COPY)."""
    import duckdb

    seconds = {}
    work.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        target = work / f"{table}.parquet"
        files = ", ".join(f"'{f}'" for f in survey_files(survey, table))
        start = time.perf_counter()
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(
            f"COPY (SELECT * FROM read_parquet([{files}])) TO '{target}.part' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        con.close()
        os.replace(f"{target}.part", target)
        seconds[table] = round(time.perf_counter() - start, 1)
        print(f"wrote {target} ({target.stat().st_size / 1e9:.2f} GB) in {seconds[table]} s")
    return seconds


PG_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
BINARY_CODES = {
    "double": ">f8", "float": ">f4", "int64": ">i8", "int32": ">i4", "int16": ">i2",
    "int8": ">i2", "bool": "?",
}  # fmt: skip


def pg_binary_rows(table: pa.Table) -> bytes:
    """Rows in PostgreSQL's binary COPY format, built column-wise with numpy.

    Python CSV encoding and PostgreSQL's float parsing made a text COPY of the object
    table take ~30 min here; the binary form is a single structured-array copy. Works
    for tables without nulls whose strings all have one length (as the simulated ones).
    """
    fields: list[tuple[str, str]] = [("ncols", ">i2")]
    values = []
    for i, f in enumerate(table.schema):
        col = table.column(i)
        if col.null_count:
            raise SystemExit(f"column {f.name} has nulls: binary COPY needs none")
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            arr = np.asarray(col.to_pylist(), dtype="S")
            if len({len(v) for v in col.to_pylist()}) > 1:
                raise SystemExit(f"column {f.name} has strings of several lengths")
            code, width = arr.dtype.str, arr.dtype.itemsize
        else:
            code = BINARY_CODES[str(f.type)]
            arr = col.to_numpy().astype(code)
            width = np.dtype(code).itemsize
        fields += [(f"len{i}", ">i4"), (f"val{i}", code)]
        values.append((i, width, arr))
    rows = np.empty(table.num_rows, dtype=np.dtype(fields))
    rows["ncols"] = table.num_columns
    for i, width, arr in values:
        rows[f"len{i}"] = width
        rows[f"val{i}"] = arr
    return rows.tobytes()


def _pg_type(t: pa.DataType) -> str:
    name = str(t)
    if name not in PG_TYPES:
        raise SystemExit(f"no PostgreSQL type for Arrow type {t}")
    return PG_TYPES[name]


def load_postgres(work: Path, dbname: str, cluster: bool) -> dict[str, Any]:
    """Load the Parquet copies into PostgreSQL with COPY, index with q3c, CLUSTER, ANALYZE."""
    import psycopg

    timings: dict[str, Any] = {}
    with psycopg.connect(PG_DSN + " dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(f"{PG_DSN} dbname={dbname}", autocommit=True) as con:
        con.execute("CREATE EXTENSION q3c")
        con.execute("SET maintenance_work_mem = '1GB'")
        for table in TABLES:
            path = work / f"{table}.parquet"
            schema = pq.read_schema(path)
            cols = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in schema)
            # UNLOGGED: no WAL to write (half the disk); queries read it like any table.
            con.execute(f"CREATE UNLOGGED TABLE {table} ({cols})")
            start = time.perf_counter()
            pf = pq.ParquetFile(path)
            with con.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                copy.write(PG_BINARY_HEADER)
                for batch in pf.iter_batches(batch_size=50_000):
                    copy.write(pg_binary_rows(pa.Table.from_batches([batch])))
                copy.write(b"\xff\xff")
            timings[f"{table}_copy_s"] = round(time.perf_counter() - start, 1)
            print(f"{table}: COPY {pf.metadata.num_rows} rows in {timings[f'{table}_copy_s']} s")
            start = time.perf_counter()
            con.execute(f'CREATE INDEX {table}_id ON {table} ("objectId")')
            if table == "object":
                con.execute(f"CREATE INDEX {table}_q3c ON {table} (q3c_ang2ipix(ra, dec))")
                free = shutil.disk_usage(work).free
                size = con.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()[0]
                if cluster and free > 1.3 * size:
                    con.execute(f"CLUSTER {table} USING {table}_q3c")
                    timings["clustered"] = True
                else:
                    timings["clustered"] = False
                    print(f"CLUSTER skipped: {free / 1e9:.1f} GB free, table {size / 1e9:.1f} GB")
            con.execute(f"ANALYZE {table}")
            timings[f"{table}_index_s"] = round(time.perf_counter() - start, 1)
            print(f"{table}: indexes, CLUSTER, ANALYZE in {timings[f'{table}_index_s']} s")
        size = con.execute(f"SELECT pg_database_size('{dbname}')").fetchone()[0]
        timings["database_bytes"] = size
    return timings


# ---------------------------------------------------------------- peers


class Peer:
    """One system under test: runs a `Query`, returns the number of rows it got."""

    name = ""

    def cpu(self) -> float:
        """CPU seconds used so far by this process (every thread), for the peers that
        work in it: one `getrusage` call. Reading every thread's schedstat instead (what
        `cpu_seconds` does for another process) touched ~30 files around each query of
        the in-process peers only, and slowed their next query (12 ids: ~0.07 ms)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def supports(self, query: Query) -> bool:
        return True

    def run(self, query: Query) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class DpzeroPeer(Peer):
    name = "dpzero"

    def __init__(self, store: Path) -> None:
        from dpzero.catalog import open_store

        self.store = open_store(store)
        # As `dpzero serve` does at start: footers, row copies and indexes opened once.
        started = time.perf_counter()
        self.store.open_all()
        self.open_seconds = round(time.perf_counter() - started, 2)
        print(f"dpzero: store opened in {self.open_seconds} s")

    def run(self, query: Query) -> tuple[int, Any]:
        table = self.store.query_adql(query.adql)
        return table.num_rows, table


class DuckdbPeer(Peer):
    name = "duckdb"

    def __init__(self, work: Path) -> None:
        import duckdb

        self.con = duckdb.connect()
        for table in TABLES:
            self.con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{work / table}.parquet')"
            )

    def run(self, query: Query) -> tuple[int, Any]:
        table = self.con.sql(query.duckdb).to_arrow_table()
        return table.num_rows, table


class PostgresPeer(Peer):
    name = "postgres+q3c"

    def __init__(self, dbname: str) -> None:
        import psycopg

        self.con = psycopg.connect(f"{PG_DSN} dbname={dbname}", autocommit=True)
        self.con.execute("SET jit = off")
        # A plan that runs for minutes (q3c's pair join picked one on 10 M rows) ends as
        # this peer's error for the class instead of stalling the benchmark.
        self.con.execute(f"SET statement_timeout = '{PG_TIMEOUT_S}s'")
        row = self.con.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        self.backend = int(row[0])

    def cpu(self) -> float:
        # The server backend's CPU (parallel scan workers are other processes: not counted).
        return cpu_seconds(self.backend)

    def run(self, query: Query) -> tuple[int, Any]:
        # The whole result as COPY text: the server's work and the transfer, without
        # building Python objects row by row (rows are counted by their newlines).
        rows = 0
        chunks = []
        with self.con.cursor() as cur, cur.copy(f"COPY ({query.postgres}) TO STDOUT") as copy:
            for data in copy:
                rows += bytes(data).count(b"\n")
                chunks.append(data)
        return rows, b"".join(bytes(c) for c in chunks)

    def close(self) -> None:
        self.con.close()


class LsdbPeer(Peer):
    name = "lsdb"

    def __init__(self, store: Path) -> None:
        import lsdb

        self.lsdb = lsdb
        self.path = store / DB / "object"
        self.object = lsdb.open_catalog(self.path)
        self.object5 = lsdb.open_catalog(self.path, columns=FIVE_COLUMNS)
        self.position = lsdb.open_catalog(store / DB / "position")
        self.scan = lsdb.open_catalog(self.path, columns=["tract", "mag_i_cModel"])

    def supports(self, query: Query) -> bool:
        return query.lsdb is not None and query.lsdb[0] != "ids"

    def run(self, query: Query) -> tuple[int, Any]:
        assert query.lsdb is not None
        kind, a = query.lsdb
        if kind == "cone":
            cat = self.object if a["columns"] is None else self.object5
            df = cat.cone_search(a["ra"], a["dec"], a["radius_arcsec"]).compute()
        elif kind == "polygon":
            df = self.object.polygon_search(a["vertices"]).compute()
        elif kind == "join":
            cone = self.object.cone_search(a["ra"], a["dec"], a["radius_arcsec"])
            df = cone.join(
                self.position, left_on="objectId", right_on="objectId", suffixes=("", "_p")
            ).compute()
        elif kind == "scan":
            df = self.scan.query(f"mag_i_cModel < {MAG_CUT}").compute()
            if a["group_by"] is None:
                return 1, (len(df), float(df["mag_i_cModel"].mean()))
            g = df.groupby("tract")["mag_i_cModel"].agg(["count", "mean"])
            return len(g), g
        else:
            raise ValueError(kind)
        return len(df), df


def time_peer(
    peer: Peer, cls: QueryClass, budget_s: float, warm: bool = False
) -> dict[str, Any] | None:
    """Warm-up then timed repetitions of one class on one peer (None if unsupported).

    With ``warm``, every query of the class runs once untimed first: the timed ones
    then find their data in memory, as on a server whose store fits in RAM.
    """
    if not peer.supports(cls.queries[0]):
        return None
    if warm and not cls.scan:
        try:
            for query in cls.queries:
                peer.run(query)
        except Exception as exc:  # reported by the timed loop below
            return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    rows: list[int] = []
    times: list[float] = []
    cpu: list[float] = []
    first_ms = 0.0
    value: Any = None
    started = time.perf_counter()
    try:
        for i, query in enumerate(cls.queries):
            c = peer.cpu()
            t = time.perf_counter()
            n, result = peer.run(query)
            ms = (time.perf_counter() - t) * 1000
            cpu_ms = (peer.cpu() - c) * 1000
            if i == 0:
                first_ms = ms
                value = _scan_value(result) if cls.scan else None
                continue
            rows.append(n)
            times.append(ms)
            cpu.append(cpu_ms)
            if time.perf_counter() - started > budget_s and len(times) >= 3:
                break
    except Exception as exc:  # a peer that cannot run a class is reported, not fatal
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return {
        **summarise(times),
        "cpu_median_ms": round(float(np.median(cpu)), 2),
        "first_ms": round(first_ms, 2),
        "repeats": len(times),
        "rows": rows,
        "value": value,
    }


def _scan_value(result: Any) -> Any:
    """The answer of a scan query, to compare between peers."""
    if isinstance(result, pa.Table):
        return [[_round(v) for v in row.values()] for row in result.to_pylist()]
    if isinstance(result, bytes):
        return [
            [_round(_num(v)) for v in line.split("\t")] for line in result.decode().splitlines()
        ]
    if isinstance(result, tuple):
        return [[_round(v) for v in result]]
    if hasattr(result, "reset_index"):
        return [[_round(v) for v in row] for row in result.reset_index().itertuples(index=False)]
    return None


def _num(text: str) -> float:
    return float(text)


def _round(v: Any) -> Any:
    return round(float(v), 6) if v is not None else None


def compare_rows(report: dict[str, Any]) -> dict[str, str]:
    """For every class: do the peers' row counts (or scan answers) equal dpzero's?"""
    verdicts = {}
    for name, by_peer in report.items():
        ref = by_peer.get("dpzero")
        if not ref or "error" in ref:
            continue
        diffs = []
        for peer, r in by_peer.items():
            if peer == "dpzero" or r is None or "error" in r:
                continue
            k = min(len(r["rows"]), len(ref["rows"]))
            if r["rows"][:k] != ref["rows"][:k]:
                diffs.append(f"{peer} rows differ")
            values = ref.get("value"), r.get("value")
            if None not in values and not _close(*values):
                diffs.append(f"{peer} answer differs")
        verdicts[name] = "; ".join(diffs) if diffs else "same"
    return verdicts


def _close(a: Any, b: Any) -> bool:
    try:
        return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-6)
    except (ValueError, TypeError):
        return False


def goals(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals: cones and id lookups ≥ 5× faster than DuckDB and ≤ q3c; scans ≤ 1.2×."""
    out: dict[str, Any] = {}
    for name, by_peer in report.items():
        d = by_peer.get("dpzero") or {}
        if "median_ms" not in d:
            continue
        entry: dict[str, Any] = {}
        duck = by_peer.get("duckdb") or {}
        pg = by_peer.get("postgres+q3c") or {}
        if "median_ms" in duck:
            entry["duckdb_over_dpzero"] = round(duck["median_ms"] / d["median_ms"], 2)
        if "median_ms" in pg:
            entry["q3c_over_dpzero"] = round(pg["median_ms"] / d["median_ms"], 2)
        if name.startswith(("cone", "12 ids", "polygon")):
            entry["goal"] = "≥ 5× faster than DuckDB and ≥ 1× q3c"
            entry["met"] = (
                entry.get("duckdb_over_dpzero", 0) >= 5 and entry.get("q3c_over_dpzero", 0) >= 1
            )
        elif name.startswith("scan"):
            entry["goal"] = "dpzero ≤ 1.2× DuckDB"
            entry["met"] = entry.get("duckdb_over_dpzero", 0) >= 1 / 1.2
        out[name] = entry
    return out


def planning_share(store: Path, classes: list[QueryClass]) -> dict[str, Any]:
    """How much of dpzero's time is ADQL parsing and planning (no data read), per class.

    Profiling evidence for the docs: the engine's parse, validate, translate and prune
    step (for a plain selection: parse, resolve and the row tests, no SQL).
    """
    from dpzero.catalog import open_store

    try:  # what query_adql runs: a plain selection's plan, else the SQL plan
        from dpzero.catalog._adql import plan_or_selection as adql_plan
    except ImportError:  # dpzero before plain selections
        from dpzero.catalog._adql import adql_plan

    opened = open_store(store)
    out = {}
    for cls in classes:
        if cls.scan:
            continue
        # As query_adql plans (a query of a known shape skips the front end), and the
        # first query of a shape (every step).
        ways: list[tuple[str, dict[str, bool]]] = [("", {})]
        if "by_shape" in inspect.signature(adql_plan).parameters:  # dpzero with shapes
            ways.append((" first of its shape", {"by_shape": False}))
        for label, kwargs in ways:
            times = []
            for query in cls.queries[1:]:
                t = time.perf_counter()
                adql_plan(opened, query.adql, **kwargs)
                times.append((time.perf_counter() - t) * 1000)
            out[cls.name + label] = summarise(times)
    return out


def id_pool(store: Path) -> np.ndarray:
    """A fixed sample of objectIds present in the object table."""
    from dpzero.catalog import open_store

    table = open_store(store).query(
        f"SELECT objectId FROM {DB}.object USING SAMPLE reservoir(20000 ROWS) REPEATABLE (1)"
    )
    return np.sort(table.column(0).to_numpy())


def run(args: argparse.Namespace) -> None:
    footprint = Footprint.from_survey(args.survey)
    pool = id_pool(args.store)
    only = set(args.only.split(",")) if args.only else None
    classes = build_classes(footprint, pool, args.repeat, args.scan_repeat, args.seed, only)
    wanted = args.peers.split(",")
    makers: dict[str, Callable[[], Peer]] = {
        "dpzero": lambda: DpzeroPeer(args.store),
        "duckdb": lambda: DuckdbPeer(args.work),
        "postgres+q3c": lambda: PostgresPeer(args.pg_db),
        "lsdb": lambda: LsdbPeer(args.store),
    }
    state_before = machine_state()
    report: dict[str, dict[str, Any]] = {c.name: {} for c in classes}
    # Every peer runs a class before the next class starts: a shared machine's speed
    # drifts over minutes, and the comparison is per class.
    peers = {name: makers[name]() for name in wanted}
    for cls in classes:
        for peer_name, peer in peers.items():
            budget = args.scan_budget if cls.scan else args.budget
            result = time_peer(peer, cls, budget, args.warm)
            report[cls.name][peer_name] = result
            shown = "n/a" if result is None else result.get("error") or (
                f"median {result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, "
                f"cpu {result['cpu_median_ms']:.1f} ms, "
                f"first {result['first_ms']:.1f} ms, rows {result['rows'][:3]}"
            )  # fmt: skip
            print(f"{peer_name:13} {cls.name:22} {shown}", flush=True)
    for peer in peers.values():
        peer.close()
    verdicts = compare_rows(report)
    planning = planning_share(args.store, classes) if "dpzero" in wanted else {}
    for name, r in planning.items():
        print(f"dpzero ADQL parse+plan only  {name:22} median {r['median_ms']:.1f} ms")
    summary = {
        "what": "catalog store vs raw DuckDB (one Parquet file), PostgreSQL 15 + q3c, LSDB",
        "survey": str(args.survey),
        "store": str(args.store),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "repeat": args.repeat,
        "scan_repeat": args.scan_repeat,
        "seed": args.seed,
        "cpu_note": "cpu_median_ms: CPU time of the working process (dpzero, DuckDB and "
        "LSDB in this process, all threads; PostgreSQL: its backend, not parallel workers)",
        "warm": args.warm,
        "cache": "hot: every query of a class ran once untimed before the timed pass (data "
        "in memory, as on a server whose store fits in RAM)"
        if args.warm
        else "one warm-up query per class (first_ms); repetitions use other positions, so "
        "their data is in memory only if the page cache (shared by every peer) kept it",
        "classes": {c.name: c.description for c in classes},
        "example_queries": {c.name: c.queries[1].__dict__ for c in classes},
        "results": report,
        "same_answers": verdicts,
        "goals": goals(report),
        "dpzero_planning_ms": planning,
        "machine_before": state_before,
        "machine_after": machine_state(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    print_table(report, wanted, verdicts)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"catalog_compare-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"wrote {path}")


def print_table(report: dict[str, Any], peers: list[str], verdicts: dict[str, str]) -> None:
    """Median / p95 in ms per class and peer."""
    head = f"{'query class':22}" + "".join(f"{p:>22}" for p in peers) + "  rows"
    print(head)
    print("-" * len(head))
    for name, by_peer in report.items():
        cells = []
        for p in peers:
            r = by_peer.get(p)
            if r is None:
                cells.append(f"{'n/a':>22}")
            elif "error" in r:
                cells.append(f"{'error':>22}")
            else:
                cells.append(f"{r['median_ms']:>11.1f} /{r['p95_ms']:>9.1f}")
        print(f"{name:22}" + "".join(cells) + f"  {verdicts.get(name, '')}")
    print("cells: median / p95 ms (wall)")
    print(f"{'CPU ms, median':22}" + "".join(f"{p:>22}" for p in peers))
    for name, by_peer in report.items():
        cells = []
        for p in peers:
            r = by_peer.get(p)
            ok = r is not None and "cpu_median_ms" in r
            cells.append(f"{r['cpu_median_ms']:>22.1f}" if ok else f"{'':>22}")  # type: ignore[index]
        print(f"{name:22}" + "".join(cells))


def clean(args: argparse.Namespace) -> None:
    import psycopg

    with psycopg.connect(PG_DSN + " dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.pg_db}"')
    for table in TABLES:
        (args.work / f"{table}.parquet").unlink(missing_ok=True)
    print(f"dropped database {args.pg_db} and the Parquet copies in {args.work}")


# ---------------------------------------------------------------- layout


LAYOUTS = [("zstd", 2000), ("lz4", 2000), ("lz4", 4000), ("lz4", 8000), ("lz4", 16000),
           ("zstd", 8000)]  # fmt: skip


def layout(args: argparse.Namespace) -> None:
    """Codec and row-group size against scan and point-read cost, on some partitions.

    The first ``--partitions`` object partitions of the store are written again with
    hats' encodings in each (codec, rows per group); DuckDB scans them (COUNT/AVG with a
    cut, footers cached) and pyarrow reads single row groups of every column (what a
    small SELECT * cone or one id decodes). CPU medians.
    """
    import duckdb
    from hats.io import file_io

    from dpzero.catalog import open_store

    files = sorted(p.path for p in open_store(args.store)._table(f"{DB}.object").partitions)
    tables = [pq.ParquetFile(path).read() for path in files[: args.partitions]]
    rows = sum(t.num_rows for t in tables)
    state = machine_state()
    results = []
    for codec, group in LAYOUTS:
        folder = args.work / f"layout-{codec}-{group}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i, table in enumerate(tables):
            kwargs = file_io.get_parquet_write_table_kwargs(
                table.schema,
                write_table_kwargs={
                    "compression": codec,
                    "compression_level": 3 if codec == "zstd" else None,
                },
            )
            kwargs.pop("row_group_size", None)
            with pq.ParquetWriter(folder / f"{i}.parquet", table.schema, **kwargs) as writer:
                for start in range(0, table.num_rows, group):
                    writer.write_table(table.slice(start, group))
        con = duckdb.connect()
        con.execute("SET GLOBAL parquet_metadata_cache = true")
        scan = (
            f"SELECT COUNT(*), AVG(mag_i_cModel) FROM read_parquet('{folder}/*.parquet') "
            f"WHERE mag_i_cModel < {MAG_CUT}"
        )
        readers = [pq.ParquetFile(folder / f"{i}.parquet") for i in range(len(tables))]
        rng = np.random.default_rng(args.seed)
        picks = [(r, int(rng.integers(r.metadata.num_row_groups))) for r in readers] * 2
        scan_ms = _cpu_median(lambda: con.sql(scan).fetchall(), 9)  # noqa: B023
        read_ms = _cpu_median(lambda: [r.read_row_group(g) for r, g in picks], 5) / len(picks)  # noqa: B023
        size = sum(f.stat().st_size for f in folder.iterdir())
        results.append({"codec": codec, "rows_per_group": group, "scan_cpu_ms": round(scan_ms, 2),
                        "row_group_read_cpu_ms": round(read_ms, 3), "bytes": size})  # fmt: skip
        print(f"{codec:5} {group:6} rows/group: scan {scan_ms:6.1f} ms, one row group of "
              f"{tables[0].num_columns} columns {read_ms:5.2f} ms, {size / 1e6:6.1f} MB",
              flush=True)  # fmt: skip
        shutil.rmtree(folder)
    # The same rows as one file written by DuckDB (the raw-DuckDB peer's layout).
    single = args.work / "layout-duckdb-copy.parquet"
    listed = ", ".join(f"'{path}'" for path in files[: args.partitions])
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet([{listed}], hive_partitioning = false)) "
        f"TO '{single}' (FORMAT parquet, COMPRESSION zstd)"
    )
    scan = f"SELECT COUNT(*), AVG(mag_i_cModel) FROM '{single}' WHERE mag_i_cModel < {MAG_CUT}"
    scan_ms = _cpu_median(lambda: con.sql(scan).fetchall(), 9)
    groups = pq.read_metadata(single).num_row_groups
    results.append({"codec": "zstd (DuckDB COPY, one file)", "rows_per_group": rows // groups,
                    "scan_cpu_ms": round(scan_ms, 2), "bytes": single.stat().st_size})  # fmt: skip
    print(f"one DuckDB COPY file, {groups} row groups: scan {scan_ms:6.1f} ms")
    single.unlink()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"catalog_layout-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    summary = {"what": "partition codec and row-group size: scan vs point-read CPU",
               "store": str(args.store), "partitions": len(tables), "rows": rows,
               "results": results, "machine_before": state, "machine_after": machine_state(),
               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {path}")


def _cpu_median(run: Callable[[], object], repeat: int) -> float:
    """Median CPU milliseconds of ``run`` (this process, all threads) after one warm-up."""
    run()
    times = []
    for _ in range(repeat):
        start = cpu_seconds(os.getpid())
        run()
        times.append((cpu_seconds(os.getpid()) - start) * 1000)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write the Parquet copies and load PostgreSQL")
    prep.add_argument("--survey", type=Path, required=True)
    prep.add_argument("--work", type=Path, required=True)
    prep.add_argument("--pg-db", default="dpzero_bench_catalog")
    prep.add_argument("--skip-parquet", action="store_true")
    prep.add_argument("--skip-postgres", action="store_true")
    prep.add_argument("--no-cluster", action="store_true")
    bench = sub.add_parser("run", help="run the benchmark")
    bench.add_argument("--survey", type=Path, required=True)
    bench.add_argument("--store", type=Path, required=True)
    bench.add_argument("--work", type=Path, required=True)
    bench.add_argument("--pg-db", default="dpzero_bench_catalog")
    bench.add_argument("--peers", default="dpzero,duckdb,postgres+q3c,lsdb")
    bench.add_argument("--only", help="comma-separated class names")
    bench.add_argument(
        "--warm", action="store_true", help="run each class's queries once untimed first"
    )
    bench.add_argument("--repeat", type=int, default=10)
    bench.add_argument("--scan-repeat", type=int, default=10)
    bench.add_argument("--budget", type=float, default=120.0, help="seconds per class and peer")
    bench.add_argument("--scan-budget", type=float, default=240.0)
    bench.add_argument("--seed", type=int, default=1)
    lay = sub.add_parser("layout", help="codec and row-group size: scan vs point reads")
    lay.add_argument("--store", type=Path, required=True)
    lay.add_argument("--work", type=Path, required=True, help="scratch folder")
    lay.add_argument("--partitions", type=int, default=12)
    lay.add_argument("--seed", type=int, default=1)
    cl = sub.add_parser("clean", help="drop the database and the Parquet copies")
    cl.add_argument("--work", type=Path, required=True)
    cl.add_argument("--pg-db", default="dpzero_bench_catalog")
    args = parser.parse_args()
    if args.command == "prepare":
        timings: dict[str, Any] = {"machine": machine_state()}
        if not args.skip_parquet:
            timings["parquet_s"] = write_single_parquet(args.survey, args.work)
        if not args.skip_postgres:
            timings["postgres"] = load_postgres(args.work, args.pg_db, not args.no_cluster)
        (args.work / "prepare.json").write_text(json.dumps(timings, indent=1) + "\n")
        print(json.dumps(timings, indent=1))
    elif args.command == "run":
        run(args)
    elif args.command == "layout":
        layout(args)
    else:
        clean(args)


if __name__ == "__main__":
    main()
