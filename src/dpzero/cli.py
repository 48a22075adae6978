"""The ``dpzero`` command: thin wrappers that parse options and call one part each."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from dpzero.errors import DpzeroUserError

__all__ = ["main"]


def user_errors[F: Callable[..., Any]](func: F) -> F:
    """Turn a `DpzeroUserError` into a one-line message and exit status 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DpzeroUserError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="dpzero")
def main() -> None:
    """dpzero: a self-hostable data preview platform for astronomical surveys."""


@main.group()
def sim() -> None:
    """Simulate a DC2-like survey."""


@sim.command("catalogs")
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "medium", "large"]),
    required=True,
    help="tiny ≈ 10 k objects, small ≈ 1 M, medium ≈ 10 M, large ≈ the whole DC2 WFD.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder; must not exist or be empty.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; the output does not depend on it.",
)
@click.option(
    "--tables",
    default=None,
    help="Comma-separated tables to write (default: all five), e.g. object,position; "
    "the truth is always written.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def sim_catalogs(
    size: str, seed: int, out: Path, jobs: int, tables: str | None, quiet: bool
) -> None:
    """Write the truth and the five DP0.1 catalogs as DESC-style Parquet."""
    from dpzero.sim import simulate_catalogs

    chosen = None if tables is None else [t.strip() for t in tables.split(",") if t.strip()]
    manifest = simulate_catalogs(
        size=size, seed=seed, out=out, progress=not quiet, jobs=jobs, tables=chosen
    )
    click.echo(manifest.summary())


@sim.command("images")
@click.option(
    "--size",
    type=click.Choice(["tiny", "small", "medium"]),
    required=True,
    help="tiny: 9 detectors of 512² px, one visit per band (seconds); small: a full "
    "patch in six bands (minutes); medium: full-size detectors.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder (the legacy layout); must not exist or be empty.",
)
@click.option("--band", "bands", multiple=True, help="Only this band (repeatable).")
@click.option(
    "--detector", "detectors", type=int, multiple=True, help="Only this detector (repeatable)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def sim_images(
    size: str, seed: int, out: Path, bands: tuple[str, ...], detectors: tuple[int, ...],
    quiet: bool,
) -> None:  # fmt: skip
    """Render raws, calibrations and the processed release in the legacy layout."""
    from dpzero.sim.images import simulate_images

    manifest = simulate_images(
        size=size,
        seed=seed,
        out=out,
        progress=not quiet,
        bands=bands or None,
        detectors=detectors or None,
    )
    click.echo(manifest.summary())


@sim.command("plots")
@click.argument("survey", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=Path("docs/sim"), show_default=True)
@user_errors
def sim_plots(survey: Path, out: Path) -> None:
    """Plot number counts, colours, sky density, errors and completeness of a survey."""
    from dpzero.sim.plots import make_survey_plots

    for path in make_survey_plots(survey, out):
        click.echo(f"wrote {path}")


@main.command()
@click.option("--store", type=click.Path(path_type=Path), required=True, help="Catalog store.")
@click.option("--repo", help="Butler repository (images).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("dpzero-state"),
    show_default=True,
    help="Async job database and results.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes answering requests (e.g. the number of cores); one of them "
    "also runs the async jobs. Rate limits apply per process.",
)
@user_errors
def serve(
    store: Path, repo: str | None, host: str, port: int, state_dir: Path, workers: int
) -> None:
    """Serve the platform (TAP at /api/tap)."""
    _serve(store=store, repo=repo, host=host, port=port, state_dir=state_dir, workers=workers)


def _serve(workers: int = 1, **options: Any) -> None:
    import uvicorn

    from dpzero.app import (
        NoDelayHttpProtocol,
        check_bind,
        create_app,
        prepare_state,
        settings_to_environment,
    )
    from dpzero.config import Settings

    settings = Settings(**options)
    check_bind(settings)
    from dpzero.catalog import read_manifest

    read_manifest(Path(settings.store))  # type: ignore[arg-type]  # a clear error if not a store
    app: Any
    if workers > 1:
        # Sync queries hold the GIL for much of their time: more processes, more cores.
        prepare_state(settings)
        settings_to_environment(settings)
        app = "dpzero.app:create_app_from_environment"
    else:
        app = create_app(settings)
    url = settings.public_url
    if settings.auth.enabled:
        mode = "login through " + ("OpenID Connect" if settings.auth.oidc else "GitHub")
    else:
        mode = "single-user open mode: no login configured"
    click.echo(f"dpzero serving on {url} (TAP at {url}/api/tap, portal at {url}/portal; {mode})")
    # Keep idle connections open longer than clients keep them pooled: with uvicorn's
    # 5 s, a client that reuses a pooled connection just as the server closes it gets a
    # read error (the likely cause of 1 failed request in 2,476 of the 50-user run).
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_keep_alive=75,
        workers=workers if workers > 1 else None,
        factory=workers > 1,
        http=NoDelayHttpProtocol,
    )


@main.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Folder for the simulated survey and its catalog store.",
)
@click.option("--size", type=click.Choice(["tiny", "small"]), default="small", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True)
@user_errors
def demo(data: Path, size: str, seed: int, port: int, jobs: int) -> None:
    """From nothing to a running platform on a small simulated survey.

    Each step is skipped when its output already exists, so a second run starts
    serving at once.
    """
    from dpzero.catalog import ingest_catalogs, read_manifest
    from dpzero.errors import InvalidInputError
    from dpzero.sim import simulate_catalogs

    catalogs = data / f"catalogs-{size}-{seed}"
    store = data / f"store-{size}-{seed}"
    if (catalogs / "manifest.json").exists():
        click.echo(f"using the survey already simulated in {catalogs}")
    else:
        click.echo(f"simulating the {size} survey into {catalogs} …")
        manifest = simulate_catalogs(size=size, seed=seed, out=catalogs, progress=True, jobs=jobs)
        click.echo(manifest.summary())
    try:
        read_manifest(store)
        click.echo(f"using the catalog store already built in {store}")
    except InvalidInputError:
        click.echo(f"building the catalog store {store} …")
        click.echo(ingest_catalogs(catalogs, store, progress=True).summary())
    _serve(store=store, host="127.0.0.1", port=port, state_dir=data / "state")


@main.group()
def catalog() -> None:
    """Build and query the catalog store."""


@catalog.command("ingest")
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--store", type=click.Path(path_type=Path), required=True, help="Catalog store folder."
)
@click.option("--database", default=None, help="Database name [default: the schema's name].")
@click.option(
    "--partition-rows",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Target maximum rows per HEALPix partition.",
)
@click.option(
    "--highest-order",
    type=click.IntRange(0, 19),
    default=None,
    help="Finest HEALPix order of a partition (raised where one cell holds more than "
    "--partition-rows) [default: 8].",
)
@click.option(
    "--compression-level",
    type=click.IntRange(1, 22),
    default=None,
    help="Write the partition files with zstd at this level instead of lz4 (smaller "
    "files, slower point queries and scans).",
)
@click.option(
    "--no-row-copies",
    is_flag=True,
    help="Do not write the row-major copies that make id lookups and small cones fast "
    "(saves ~1.2x the disk of the tables with an objectId index).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@user_errors
def catalog_ingest(
    source: Path,
    store: Path,
    database: str | None,
    partition_rows: int,
    highest_order: int | None,
    compression_level: int | None,
    no_row_copies: bool,
    quiet: bool,
) -> None:
    """Validate the catalogs in SOURCE and publish them in the store, all or nothing."""
    from dpzero.catalog import IngestOptions, ingest_catalogs

    tuning: dict[str, int | str | bool] = {
        "partition_rows": partition_rows,
        "row_copies": not no_row_copies,
    }
    if highest_order is not None:
        tuning["highest_order"] = highest_order
    if compression_level is not None:
        tuning["compression"] = "zstd"
        tuning["compression_level"] = compression_level
    report = ingest_catalogs(
        source,
        store,
        database=database,
        options=IngestOptions(**tuning),
        progress=not quiet,
    )
    click.echo(report.summary())


@catalog.command("publish")
@click.argument("repo")
@click.option("--collection", required=True, help="Collection of the pipeline's tables.")
@click.option(
    "--database", default="dp02_dc2_catalogs", show_default=True, help="Database name in ADQL."
)
@click.option(
    "--store", type=click.Path(path_type=Path), required=True, help="Catalog store folder."
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@user_errors
def catalog_publish(repo: str, collection: str, database: str, store: Path, quiet: bool) -> None:
    """Publish the DP0.2 tables of a pipeline run in REPO in the catalog store."""
    from dpzero.pipelines.publish import publish_catalogs

    report = publish_catalogs(repo, collection, store, database=database, progress=not quiet)
    click.echo(report.summary())


@catalog.command("query")
@click.argument("adql")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Catalog store folder.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv", "votable", "parquet"]),
    default=None,
    help="Output format [default: text on a terminal, else CSV].",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout."
)
@user_errors
def catalog_query(adql: str, store: Path, fmt: str | None, output: Path | None) -> None:
    """Answer the ADQL query ADQL on the store."""
    from dpzero.catalog import describe_columns, format_text, open_store

    catalogs = open_store(store)
    if fmt is None:
        fmt = "text" if output is None and sys.stdout.isatty() else "csv"
    if fmt == "text":
        text = format_text(catalogs.query_adql(adql)) + "\n"
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text)
        return
    from dpzero.tap.formats import columns_for_schema, parse_format, write_result

    # Machine-readable results stream from the store to the output batch by batch.
    rows = catalogs.stream_adql(adql)
    columns = columns_for_schema(rows.schema, describe_columns(catalogs, rows.schema))
    chunks = write_result(parse_format(fmt), rows, rows.schema, columns)
    if output is None:
        out = click.get_binary_stream("stdout")
        for chunk in chunks:
            out.write(chunk)
        out.flush()
    else:
        with open(output, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)


@main.group()
def adql() -> None:
    """Work with ADQL queries."""


@adql.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def adql_check(files: tuple[Path, ...]) -> None:
    """Check that each FILE holds one valid ADQL 2.1 query (no catalog needed).

    Prints "FILE: OK" or the error with its line and column; exits 1 if any is invalid.
    """
    from dpzero.adql import check_query_file

    results = [check_query_file(path) for path in files]
    for path, error in zip(files, results, strict=True):
        click.echo(f"{path}: {error or 'OK'}")
    sys.exit(1 if any(results) else 0)


@main.group()
def repo() -> None:
    """Butler repositories: create one, convert a legacy release into one."""


def _repo_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--registry",
            default=None,
            help="Registry database URL, e.g. postgresql://postgres@127.0.0.1:5432/dp01 "
            "(default: an SQLite file in the repository).",
        ),
        click.option(
            "--namespace",
            default=None,
            help="PostgreSQL schema for the registry tables (several repositories per database).",
        ),
        click.option(
            "--datastore",
            default=None,
            help="Datastore root, e.g. s3://bucket/dp01 (default: files in the repository); "
            "S3 needs S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@repo.command("create")
@click.argument("root")
@_repo_options
@user_errors
def repo_create(
    root: str, registry: str | None, namespace: str | None, datastore: str | None
) -> None:
    """Create an empty repository at ROOT with LSSTCam-imSim, the DC2 sky map and DP0.1's
    dataset types (an existing one is completed, not replaced)."""
    from dpzero.repo.repository import RepoSpec, create_repo

    spec = RepoSpec(root, registry=registry, namespace=namespace, datastore=datastore)
    with create_repo(spec):
        pass
    click.echo(f"repository ready at {root}")


@repo.command("convert")
@click.argument("legacy", type=click.Path(path_type=Path))
@click.option("--repo", "root", required=True, help="Repository root (created when absent).")
@_repo_options
@click.option(
    "--transfer",
    type=click.Choice(["copy", "symlink", "relsymlink", "hardlink", "direct", "move", "auto"]),
    default="copy",
    show_default=True,
    help="How files reach the datastore; 'direct' leaves them in the legacy folder.",
)
@user_errors
def repo_convert(
    legacy: Path,
    root: str,
    registry: str | None,
    namespace: str | None,
    datastore: str | None,
    transfer: str,
) -> None:
    """Convert the legacy release in LEGACY into the repository (idempotent: rerun to
    finish an interrupted conversion)."""
    from dpzero.repo.convert import convert_legacy
    from dpzero.repo.repository import RepoSpec

    spec = RepoSpec(root, registry=registry, namespace=namespace, datastore=datastore)
    report = convert_legacy(legacy, spec, transfer=transfer)
    click.echo(report.summary())


@repo.command("grant-read")
@click.argument("root")
@click.option("--role", required=True, help="PostgreSQL role to create or update (LOGIN).")
@click.option("--password", default=None, help="Password to set for the role.")
@user_errors
def repo_grant_read(root: str, role: str, password: str | None) -> None:
    """Let ROLE read, and only read, the PostgreSQL registry of the repository at ROOT;
    print the registry settings users put in their butler.yaml."""
    from dpzero.repo.access import grant_read

    grant = grant_read(root, role, password=password)
    click.echo(f"role {role} {'created' if grant.created else 'updated'}: SELECT only")
    click.echo(grant.butler_config(), nl=False)


@repo.command("info")
@click.argument("root")
@user_errors
def repo_info(root: str) -> None:
    """Show what the repository at ROOT holds: collections, datasets, visits, tracts."""
    from dpzero.repo.info import repo_info as summarise

    click.echo(summarise(root).summary())


@repo.command("obscore")
@click.argument("root")
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Parquet file to write."
)
@click.option(
    "--url",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Public URL of the service (access_url points at its /api/datalink).",
)
@user_errors
def repo_obscore(root: str, out: Path, url: str) -> None:
    """Write the ivoa.ObsCore table of the images of the repository at ROOT (what
    `dpzero serve --repo` publishes; written to STATE/obscore.parquet it is reused)."""
    from dpzero.images.obscore import build_obscore

    click.echo(build_obscore(root, out, url.rstrip("/")).summary())


@repo.command("merge")
@click.argument("source")
@click.option("--repo", "target", required=True, help="Main repository to merge into.")
@click.option(
    "--run",
    "runs",
    multiple=True,
    help="RUN collection to merge (repeatable); default: every output run of SOURCE.",
)
@click.option("--chain", default=None, help="CHAINED collection to put the runs first in.")
@click.option("--transfer", default="copy", show_default=True, help="How files are copied.")
@user_errors
def repo_merge(
    source: str, target: str, runs: tuple[str, ...], chain: str | None, transfer: str
) -> None:
    """Merge the runs of the repository SOURCE (a pipeline's own) into the main one."""
    from dpzero.repo.merge import merge_runs

    report = merge_runs(source, target, runs or None, chain=chain, transfer=transfer)
    click.echo(report.summary())


@main.group()
def pipeline() -> None:
    """Reprocess a repository's raws with the DRP pipeline (pipetask or bps)."""


@pipeline.command("validate")
@click.option("--repo", required=True, help="Butler repository of the run.")
@click.option("--collection", required=True, help="The run's output collection.")
@click.option(
    "--truth", "truth_file", default=None, help="Truth Parquet (ra, dec, truth_type, flux_<band>)."
)
@click.option("--truth-size", default=None, help="Or the simulated survey's size (tiny, small, …).")
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Seed of the simulated survey."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for plots and validation.json.",
)
@user_errors
def pipeline_validate(
    repo: str,
    collection: str,
    truth_file: str | None,
    truth_size: str | None,
    seed: int,
    out: Path | None,
) -> None:
    """Compare a run's Object table with the simulation's truth (astrometry, photometry, …)."""
    from dpzero.pipelines.validate import load_truth_table, validate_run

    truth = load_truth_table(truth_file, truth_size, seed)
    click.echo(validate_run(repo, collection, truth, out=out).table())


@pipeline.command("run")
@click.option("--repo", required=True, help="Butler repository holding raws and calibrations.")
@click.option("--output", required=True, help="Output CHAINED collection, e.g. u/me/drp.")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Processes.")
@click.option("--subset", default="", help="Pipeline subset (step1, step3) or task; default all.")
@click.option("-d", "--where", default=None, help='Data query, e.g. "visit = 19268".')
@click.option("--resume", is_flag=True, help="Extend OUTPUT, running only missing quanta.")
@click.option("--bps", "use_bps", is_flag=True, help="Submit through bps and Parsl (local).")
@click.option(
    "--submit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Workflow directory for --bps [default: ./bps/<output>-<time>].",
)
@user_errors
def pipeline_run(
    repo: str,
    output: str,
    jobs: int,
    subset: str,
    where: str | None,
    resume: bool,
    use_bps: bool,
    submit_dir: Path | None,
) -> None:
    """Run the DRP pipeline over the raws of REPO into OUTPUT (pipetask run, or bps)."""
    from dpzero.pipelines import run_pipeline

    if not use_bps:
        report = run_pipeline(repo, output, subset=subset, jobs=jobs, where=where, resume=resume)
        click.echo(report.summary())
        return
    from datetime import UTC, datetime

    from dpzero.errors import InvalidInputError
    from dpzero.pipelines import run_pipeline_bps

    if resume:
        raise InvalidInputError("--resume is for pipetask runs; use dpzero pipeline restart")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    workflow = submit_dir or Path("bps") / f"{output.replace('/', '_')}-{stamp}"
    bps_report = run_pipeline_bps(
        repo, output, workflow_dir=workflow.resolve(), subset=subset, jobs=jobs, where=where,
        on_progress=_show_progress,
    )  # fmt: skip
    click.echo("", err=True)
    click.echo(bps_report.summary())
    if bps_report.failed or bps_report.blocked:
        sys.exit(1)


def _show_progress(progress: Any) -> None:
    """One progress line, rewritten in place on a terminal."""
    end = "\r" if sys.stderr.isatty() else "\n"
    click.echo(progress.line() + end, nl=False, err=True)


@pipeline.command("restart")
@click.argument("submit_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@user_errors
def pipeline_restart(submit_dir: Path) -> None:
    """Rerun the failed quanta of the bps workflow in SUBMIT_DIR and their downstream."""
    from dpzero.pipelines import restart_pipeline

    report = restart_pipeline(submit_dir, on_progress=_show_progress)
    click.echo("", err=True)
    click.echo(report.summary())
    if report.failed or report.blocked:
        sys.exit(1)


if __name__ == "__main__":
    main()
