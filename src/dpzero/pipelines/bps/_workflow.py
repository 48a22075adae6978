"""Submitting the pipeline through lsst-ctrl-bps and restarting a workflow.

`submit_workflow` writes a small submit YAML into a workflow directory of its own
(including one of the site configurations shipped here and filling in the
repository, collections, data query and pipeline), runs ``bps submit`` there as a
subprocess, follows the Parsl log to show progress, and reports quanta succeeded,
failed and blocked from the Butler with lsst-pipe-base's `QuantumProvenanceGraph`.
`restart_workflow` runs ``bps restart`` from the same directory (Parsl reads
``./runinfo`` there to restore the jobs that finished), so only failed jobs and
their downstream ones run again.

``bps submit`` exits 0 even when quanta fail and registers outputs only in its
final job, so the counts come from the Butler, never from the exit status.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from dpzero.errors import DpzeroUserError, InvalidInputError, OutputExistsError

__all__ = [
    "SITE_CONFIGS",
    "BpsReport",
    "WorkflowError",
    "WorkflowProgress",
    "restart_workflow",
    "site_config_path",
    "submit_workflow",
]

SITE_CONFIGS: dict[str, str] = {
    "local": "parsl-local.yaml",
    "slurm": "parsl-slurm.yaml",
    "htcondor": "htcondor.yaml",
    "panda": "panda.yaml",
}
"""Submit configurations shipped with dpzero, by site name."""

PARSL_SERVICE = "lsst.ctrl.bps.parsl.ParslService"

# Jobs bps adds around the quanta: they are not quanta and are not counted as such.
_SERVICE_JOBS = frozenset({"pipetaskInit", "finalJob"})
# Lines of Parsl's data-flow kernel log (written to bps's stderr) that show progress.
_SUBMITTED = re.compile(r"Task (\d+) submitted for App (\S+?),")
_DONE = re.compile(r"Task (\d+) changing state from \w+ to exec_done")
_FAILED = re.compile(r"Task (\d+) changing state from \w+ to failed")
_BLOCKED = re.compile(r"Task (\d+) failed due to dependency failure$")
_RESTORED = re.compile(r"Task (\d+) changing state from \w+ to memo_done")
_SUBMIT_DIR = re.compile(r"Submit dir: (\S+)")


class WorkflowError(DpzeroUserError):
    """``bps`` could not build or run the workflow (not a quantum's failure)."""

    code = "workflow_failed"
    status_code = 500


@dataclass
class WorkflowProgress:
    """Jobs of a running workflow by state, from the Parsl log (pipetaskInit included)."""

    jobs: dict[int, str] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    restored: set[int] = field(default_factory=set)

    def feed(self, line: str) -> bool:
        """Update from one log line; whether it changed anything."""
        for pattern, target in (
            (_DONE, self.done),
            (_FAILED, self.failed),
            (_BLOCKED, self.blocked),
            (_RESTORED, self.restored),
        ):
            if m := pattern.search(line):
                target.add(int(m.group(1)))
                return True
        if m := _SUBMITTED.search(line):
            self.jobs[int(m.group(1))] = m.group(2)
            return True
        return False

    def executed_quanta(self) -> int:
        """Quantum jobs that ran to completion in this process (not restored ones)."""
        return sum(1 for t in self.done if self.jobs.get(t) not in _SERVICE_JOBS)

    def line(self) -> str:
        """One progress line for a terminal."""
        return (
            f"jobs: {len(self.done)} done, {len(self.restored)} restored, "
            f"{len(self.failed)} failed, {len(self.blocked)} blocked, of {len(self.jobs)}"
        )


@dataclass(frozen=True)
class BpsReport:
    """What a ``bps submit`` or ``bps restart`` did.

    Attributes
    ----------
    output
        Output CHAINED collection.
    run
        The workflow's RUN collection.
    submit_dir
        bps's submit directory (give it to ``dpzero pipeline restart``).
    workflow_dir
        Directory bps ran in (holds Parsl's ``runinfo``).
    succeeded, failed, blocked, total
        Quanta of the workflow's graph by final state, from the Butler.
    executed
        Quanta run by this submission (a restart runs only failed and blocked ones).
    log
        bps's standard error (the Parsl log).
    """

    output: str
    run: str
    submit_dir: Path
    workflow_dir: Path
    succeeded: int
    failed: int
    blocked: int
    total: int
    executed: int
    log: str

    def summary(self) -> str:
        """A few lines for a terminal."""
        text = (
            f"{self.output}: {self.succeeded} quanta succeeded, {self.failed} failed, "
            f"{self.blocked} blocked, of {self.total} ({self.executed} run now)\n"
            f"submit directory: {self.submit_dir}"
        )
        if self.failed or self.blocked:
            text += f"\nfix the cause, then: dpzero pipeline restart {self.submit_dir}"
        return text


def site_config_path(site: str) -> Path:
    """Path of a shipped submit configuration (``local``, ``slurm``, ``htcondor``, ``panda``).

    Raises
    ------
    InvalidInputError
        If dpzero ships no configuration for ``site``.
    """
    if site not in SITE_CONFIGS:
        raise InvalidInputError(
            f"no bps configuration for site {site!r}; known: {', '.join(SITE_CONFIGS)}"
        )
    return Path(str(resources.files("dpzero.pipelines.bps") / SITE_CONFIGS[site]))


def _environment() -> dict[str, str]:
    """The environment of bps: the venv's bin/ first (bps runs ``pipetask`` by name)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run_bps(
    arguments: list[str], cwd: Path, on_progress: Callable[[WorkflowProgress], None] | None
) -> tuple[int, str, str, WorkflowProgress]:
    """Run ``bps`` in ``cwd``, following its log; exit status, stdout, stderr, progress."""
    bps = str(Path(sys.executable).parent / "bps")
    progress = WorkflowProgress()
    lines: list[str] = []
    with subprocess.Popen(
        [bps, *arguments],
        cwd=cwd,
        # bps puts its submit directory under ${PWD}, which a shell, not cwd=, sets.
        env={**_environment(), "PWD": str(cwd)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        for line in process.stderr:
            lines.append(line)
            if progress.feed(line.rstrip()) and on_progress is not None:
                on_progress(progress)
        out = process.stdout.read()
        status = process.wait()
    return status, out, "".join(lines), progress


def _count_quanta(qgraph: Path) -> tuple[str, str, str, tuple[int, int, int, int]]:
    """Repository, output, run and (succeeded, failed, blocked, total) quanta of a graph."""
    from lsst.daf.butler import Butler
    from lsst.pipe.base import QuantumGraph
    from lsst.pipe.base.quantum_provenance_graph import QuantumProvenanceGraph

    graph = QuantumGraph.loadUri(str(qgraph))
    meta = graph.metadata
    repo, output, run = str(meta["butler_argument"]), str(meta["output"]), str(meta["output_run"])
    with Butler.from_config(repo) as butler:
        provenance = QuantumProvenanceGraph(butler, [graph], read_caveats=None)
        summary = provenance.to_summary(butler)
    tasks = summary.tasks.values()
    counts = (
        sum(t.n_successful for t in tasks),
        sum(t.n_failed + t.n_wonky for t in tasks),
        sum(t.n_blocked + t.n_unknown for t in tasks),
        sum(t.n_expected for t in tasks),
    )
    return repo, output, run, counts


def _report(
    submit_dir: Path, workflow_dir: Path, stderr: str, progress: WorkflowProgress
) -> BpsReport:
    qgraphs = sorted(submit_dir.glob("*.qg"))
    if not qgraphs:
        raise WorkflowError(f"{submit_dir} holds no quantum graph")
    _, output, run, (succeeded, failed, blocked, total) = _count_quanta(qgraphs[0])
    return BpsReport(
        output=output,
        run=run,
        submit_dir=submit_dir,
        workflow_dir=workflow_dir,
        succeeded=succeeded,
        failed=failed,
        blocked=blocked,
        total=total,
        executed=progress.executed_quanta(),
        log=stderr,
    )


def _failure(what: str, stderr: str) -> WorkflowError:
    tail = "\n".join(line for line in stderr.strip().splitlines()[-15:])
    return WorkflowError(f"{what} failed:\n{tail}")


def submit_workflow(
    repo: str,
    output: str,
    pipeline: str,
    inputs: tuple[str, ...],
    *,
    workflow_dir: Path,
    where: str | None = None,
    cores: int = 2,
    site: str = "local",
    on_progress: Callable[[WorkflowProgress], None] | None = None,
) -> BpsReport:
    """Submit ``pipeline`` through bps from ``workflow_dir`` and wait for it.

    Parameters
    ----------
    repo
        Butler repository.
    output
        Output CHAINED collection; must not exist yet.
    pipeline
        Pipeline YAML, optionally with ``#subset``.
    inputs
        Input collections.
    workflow_dir
        A new or empty directory for this workflow alone (bps's ``submit/`` and
        Parsl's ``runinfo/`` go there).
    where
        Data query; by default every data ID of the instrument.
    cores
        Cores of the local Parsl provider.
    site
        Shipped site configuration to include (only ``local`` runs on this machine).
    on_progress
        Called with the job counts whenever the Parsl log shows a change.

    Returns
    -------
    BpsReport
        Quanta succeeded, failed and blocked.

    Raises
    ------
    InvalidInputError
        If ``workflow_dir`` holds files or ``cores`` is not positive.
    WorkflowError
        If bps fails before running the workflow (an empty graph, a bad config).
    """
    if cores < 1:
        raise InvalidInputError(f"cores must be at least 1, not {cores}")
    if workflow_dir.exists() and any(workflow_dir.iterdir()):
        raise OutputExistsError(
            f"{workflow_dir} is not empty; each workflow needs a directory of its own"
        )
    workflow_dir.mkdir(parents=True, exist_ok=True)
    query = "instrument = 'LSSTCam-imSim'" + (f" AND ({where})" if where else "")
    submit = {
        "includeConfigs": [str(site_config_path(site))],
        "pipelineYaml": pipeline,
        "payload": {
            "butlerConfig": repo,
            "inCollection": ",".join(inputs),
            "output": output,
            "dataQuery": query,
        },
    }
    if site == "local":
        submit["site"] = {"local": {"cores": cores}}
    (workflow_dir / "submit.yaml").write_text(yaml.safe_dump(submit, sort_keys=False))
    status, out, err, progress = _run_bps(["submit", "submit.yaml"], workflow_dir, on_progress)
    found = _SUBMIT_DIR.search(out)
    if status != 0 or found is None or not progress.jobs:
        raise _failure("bps submit", err)
    return _report(Path(found.group(1)), workflow_dir, err, progress)


def _locate(path: Path) -> tuple[Path, Path]:
    """(bps submit directory, workflow directory) from either of them."""
    path = path.resolve()
    if (path / "runinfo").is_dir():
        configs = sorted(path.glob("submit/**/*_config.yaml"), key=lambda p: p.stat().st_mtime)
        if configs:
            return configs[-1].parent, path
    elif any(path.glob("*_config.yaml")):
        for parent in path.parents:
            if (parent / "runinfo").is_dir():
                return path, parent
    raise InvalidInputError(
        f"{path} is not a bps submit directory of a Parsl workflow (no runinfo/ above it)"
    )


def restart_workflow(
    submit_dir: Path, *, on_progress: Callable[[WorkflowProgress], None] | None = None
) -> BpsReport:
    """``bps restart`` a Parsl workflow: rerun only its failed jobs and their downstream.

    Parameters
    ----------
    submit_dir
        bps's submit directory (printed by ``dpzero pipeline run --bps``) or the
        workflow directory above it.
    on_progress
        Called with the job counts whenever the Parsl log shows a change.

    Raises
    ------
    InvalidInputError
        If ``submit_dir`` is not the submit directory of a Parsl workflow.
    WorkflowError
        If bps fails to restart it.
    """
    submit, workflow = _locate(submit_dir)
    arguments = ["restart", "--wms-service-class", PARSL_SERVICE, "--id", str(submit)]
    started = time.time()
    status, _, err, progress = _run_bps(arguments, workflow, on_progress)
    if status != 0 or not progress.jobs:
        raise _failure(f"bps restart (after {time.time() - started:.0f} s)", err)
    return _report(submit, workflow, err, progress)
