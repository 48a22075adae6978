"""Running the pipeline: a thin wrapper over ``pipetask run`` (lsst-ctrl-mpexec).

`run_pipeline` builds the ``pipetask run`` command line a Rubin user would type and
runs it through ``pipetask``'s own click command, in this process (no second
start-up of the middleware), reading the executor's summary ("Executed N quanta
successfully, F failed and R remain out of total T quanta") from its log into a
`RunReport`. ``resume=True`` adds ``--extend-run --skip-existing --clobber-outputs``,
so only quanta whose outputs are missing (or that failed) run again; when nothing is
missing the report says 0 of 0.

`run_pipeline_bps` submits the same pipeline through lsst-ctrl-bps (Parsl on this
machine) from a workflow directory of its own; `restart_pipeline` reruns what failed.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpzero.errors import DpzeroUserError, InvalidInputError, OutputExistsError

if TYPE_CHECKING:
    from collections.abc import Callable

    from dpzero.pipelines.bps import BpsReport, WorkflowProgress

__all__ = [
    "DEFAULT_INPUTS",
    "PipelineRunError",
    "RunReport",
    "pipeline_path",
    "pipetask_command",
    "restart_pipeline",
    "run_pipeline",
    "run_pipeline_bps",
    "unprocessable_quanta",
]

DEFAULT_INPUTS: tuple[str, ...] = ("2.2i/raw/all", "2.2i/calib", "refcats/DP0.1", "skymaps")
"""Input collections of a run over a converted release: raws, calibrations, references."""

_SUMMARY = re.compile(
    r"Executed (\d+) quanta successfully, (\d+) failed and (\d+) remain out of total (\d+) quanta"
)


class PipelineRunError(DpzeroUserError):
    """``pipetask`` failed: a quantum raised, or the graph could not be built.

    ``report`` holds the quanta counts when the executor got as far as running them.
    """

    code = "pipeline_failed"
    status_code = 500

    def __init__(self, message: str, report: RunReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class RunReport:
    """What one ``pipetask run`` did.

    Attributes
    ----------
    output
        Output CHAINED collection.
    succeeded, failed, remaining, total
        Quanta executed successfully, failed, left unrun (blocked), and in the graph.
    command
        The command line run.
    log
        Its combined output.
    unprocessable
        Quanta of the run that ended without outputs on data they cannot process
        (Rubin's ``UnprocessableDataError``, caveat ``U``), each as ``label {data
        ID}: reason`` (see `unprocessable_quanta`).
    """

    output: str
    succeeded: int
    failed: int
    remaining: int
    total: int
    command: tuple[str, ...]
    log: str
    unprocessable: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for a terminal, and one per quantum left without outputs."""
        text = (
            f"{self.output}: {self.succeeded} quanta succeeded, {self.failed} failed, "
            f"{self.remaining} blocked, of {self.total}"
        )
        if self.unprocessable:
            text += f"; {len(self.unprocessable)} of the succeeded left their data out:"
            text += "".join(f"\n  {line}" for line in self.unprocessable)
        return text


def pipeline_path(name: str = "DRP") -> Path:
    """Path of a pipeline YAML shipped with dpzero (``DRP``).

    Raises
    ------
    InvalidInputError
        If dpzero ships no such pipeline.
    """
    path = Path(str(resources.files("dpzero.pipelines") / "pipelines" / f"{name}.yaml"))
    if not path.is_file():
        raise InvalidInputError(f"no pipeline {name!r}; dpzero ships DRP")
    return path


def pipetask_command(
    repo: str,
    output: str,
    *,
    pipeline: str,
    inputs: tuple[str, ...] = DEFAULT_INPUTS,
    jobs: int = 1,
    where: str | None = None,
    resume: bool = False,
) -> list[str]:
    """The ``pipetask run`` command line (``pipeline`` may carry ``#subset``)."""
    command = [
        str(Path(sys.executable).parent / "pipetask"),
        "run",
        "-b",
        repo,
        "-i",
        ",".join(inputs),
        "-o",
        output,
        "-p",
        pipeline,
        "--register-dataset-types",
        "-j",
        str(jobs),
    ]
    if where:
        command += ["-d", where]
    if resume:
        command += ["--extend-run", "--skip-existing", "--clobber-outputs"]
    return command


def _output_exists(repo: str, output: str) -> bool:
    from lsst.daf.butler import Butler, MissingCollectionError

    with Butler.from_config(repo) as butler:
        try:
            butler.collections.get_info(output)
        except MissingCollectionError:
            return False
        return True


def run_pipeline(
    repo: str,
    output: str,
    *,
    subset: str = "",
    jobs: int = 1,
    where: str | None = None,
    resume: bool = False,
    inputs: tuple[str, ...] = DEFAULT_INPUTS,
    pipeline: str | None = None,
) -> RunReport:
    """Run the DRP pipeline (or a subset of it) over a repository's raws.

    Parameters
    ----------
    repo
        Butler repository (path or config URI).
    output
        Output CHAINED collection (``u/<user>/<name>``); its runs are made below it.
    subset
        Pipeline subset (``step1``, ``step3``) or a task label; empty for the whole
        pipeline.
    jobs
        Processes executing quanta.
    where
        Data query restricting the data IDs (``"visit = 19268"``).
    resume
        Extend the output's last run, running only quanta without outputs.
    inputs
        Input collections.
    pipeline
        A pipeline YAML of one's own instead of dpzero's DRP.

    Returns
    -------
    RunReport
        Quanta run, failed and blocked.

    Raises
    ------
    InvalidInputError
        If the repository does not exist or ``jobs`` is not positive.
    OutputExistsError
        If ``output`` exists and ``resume`` is false.
    PipelineRunError
        If ``pipetask`` fails (a quantum raised, or no graph could be built).
    """
    _check_run_arguments(repo, jobs)
    exists = _output_exists(repo, output)
    if exists and not resume:
        raise OutputExistsError(
            f"collection {output} exists; resume it (--resume) or choose another --output"
        )
    path = pipeline or str(pipeline_path())
    if subset:
        path = f"{path}#{subset}"
    command = pipetask_command(
        repo, output, pipeline=path, inputs=inputs, jobs=jobs, where=where, resume=resume and exists
    )
    error, log = _pipetask(command[1:])
    counts = [tuple(int(v) for v in m.groups()) for m in _SUMMARY.finditer(log)]
    succeeded, failed, remaining, total = counts[-1] if counts else (0, 0, 0, 0)
    # The executor counts quanta skipped behind a failure as failed; report them blocked.
    blocked = min(log.count("Upstream job failed for task"), failed)
    failed, remaining = failed - blocked, remaining + blocked
    left_out = tuple(unprocessable_quanta(repo, output)) if succeeded else ()
    report = RunReport(output, succeeded, failed, remaining, total, tuple(command), log, left_out)
    if error is not None:
        if resume and exists and not counts and "QuantumGraph was empty" in f"{error}\n{log}":
            return report  # every quantum already has its outputs
        tail = "\n".join([*log.strip().splitlines()[-10:], error])
        raise PipelineRunError(f"pipetask failed ({report.summary()}):\n{tail}", report)
    return report


def unprocessable_quanta(repo: str, output: str) -> list[str]:
    """Quanta of ``output``'s newest run that ended on data they cannot process.

    The executor records them as succeeded with the caveat ``UNPROCESSABLE_DATA`` in
    their metadata (e.g. `calibrate` on a detector without reference stars); the
    reason is the message of the quantum's own log.

    Returns
    -------
    list of str
        ``label {data ID}: reason`` per quantum.
    """
    from lsst.daf.butler import Butler, MissingCollectionError
    from lsst.pipe.base import QuantumSuccessCaveats

    found: list[str] = []
    with Butler.from_config(repo) as butler:
        try:
            runs = butler.collections.get_info(output).children
        except MissingCollectionError:
            return found
        if not runs:
            return found
        run = runs[0]  # pipetask puts the newest run first in the chain
        names = [t.name for t in butler.registry.queryDatasetTypes("*_metadata")]
        for name in names:
            label = name.removesuffix("_metadata")
            for ref in butler.query_datasets(name, collections=run, explain=False):
                quantum = butler.get(ref).get("quantum")
                caveats = int(quantum.get("caveats", 0)) if quantum is not None else 0
                if not QuantumSuccessCaveats(caveats) & QuantumSuccessCaveats.UNPROCESSABLE_DATA:
                    continue
                data_id = {k: ref.dataId[k] for k in ref.dataId.required}
                found.append(f"{label} {data_id}: {_no_work_reason(butler, label, ref, run)}")
    return found


def _no_work_reason(butler: Any, label: str, ref: Any, run: str) -> str:
    """The message the executor logged when the quantum stopped with no work."""
    marker = "exited early with no work found: "
    try:
        records = butler.get(f"{label}_log", dataId=ref.dataId, collections=run)
    except LookupError:
        return "no usable data"
    for record in records:
        message = record.message
        if marker in message:
            return message.split(marker, 1)[1].rstrip(".")
    return "no usable data"


def _check_run_arguments(repo: str, jobs: int) -> None:
    if jobs < 1:
        raise InvalidInputError(f"jobs must be at least 1, not {jobs}")
    if "://" not in repo and not (Path(repo) / "butler.yaml").is_file():
        raise InvalidInputError(f"{repo} is not a Butler repository (no butler.yaml)")


def run_pipeline_bps(
    repo: str,
    output: str,
    *,
    workflow_dir: Path,
    subset: str = "",
    jobs: int = 2,
    where: str | None = None,
    inputs: tuple[str, ...] = DEFAULT_INPUTS,
    pipeline: str | None = None,
    on_progress: Callable[[WorkflowProgress], None] | None = None,
) -> BpsReport:
    """Run the DRP pipeline through ``bps submit`` with the Parsl plugin on this machine.

    Parameters are those of `run_pipeline`, plus:

    workflow_dir
        A new directory for this workflow (bps's ``submit/`` and Parsl's
        ``runinfo/``); `restart_pipeline` runs from it again.
    on_progress
        Called with job counts as the workflow advances.

    Returns
    -------
    BpsReport
        Quanta succeeded, failed and blocked (a failed quantum does not raise).

    Raises
    ------
    InvalidInputError
        If the repository does not exist, ``jobs`` is not positive, or
        ``workflow_dir`` is not empty.
    OutputExistsError
        If ``output`` exists (restart a workflow instead of resubmitting it).
    WorkflowError
        If bps fails before running quanta.
    """
    from dpzero.pipelines.bps import submit_workflow

    _check_run_arguments(repo, jobs)
    if _output_exists(repo, output):
        raise OutputExistsError(
            f"collection {output} exists; restart its workflow (dpzero pipeline restart) "
            "or choose another --output"
        )
    path = pipeline or str(pipeline_path())
    if subset:
        path = f"{path}#{subset}"
    return submit_workflow(
        repo,
        output,
        path,
        inputs,
        workflow_dir=workflow_dir,
        where=where,
        cores=jobs,
        on_progress=on_progress,
    )


def restart_pipeline(
    submit_dir: Path, *, on_progress: Callable[[WorkflowProgress], None] | None = None
) -> BpsReport:
    """Rerun the failed quanta of a bps workflow and those downstream of them.

    A thin wrapper over ``bps restart``, run from the workflow's own directory.

    Raises
    ------
    InvalidInputError
        If ``submit_dir`` is not the submit directory of a Parsl workflow.
    WorkflowError
        If bps fails to restart it.
    """
    from dpzero.pipelines.bps import restart_workflow

    return restart_workflow(submit_dir, on_progress=on_progress)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname}: {record.getMessage()}")


def _pipetask(arguments: list[str]) -> tuple[str | None, str]:
    """Run ``pipetask`` with ``arguments`` in this process: its error (or None) and log."""
    import click
    from lsst.ctrl.mpexec.cli.pipetask import cli

    collect = _Collect()
    logger = logging.getLogger("lsst")
    logger.addHandler(collect)
    error: str | None = None
    try:
        # A failure inside the command exits through click's context with status 1,
        # which click returns (not raises) when not in standalone mode.
        status = cli.main(arguments, prog_name="pipetask", standalone_mode=False)
        if isinstance(status, int) and status != 0:
            error = f"pipetask exited with status {status}"
    except click.ClickException as exc:
        error = exc.format_message()
    except SystemExit as exc:
        if exc.code not in (0, None):
            error = f"pipetask exited with status {exc.code}"
    except Exception as exc:  # a quantum's failure surfaces as the executor's error
        error = f"{type(exc).__name__}: {exc}"
    finally:
        logger.removeHandler(collect)
    return error, "\n".join(collect.lines)
