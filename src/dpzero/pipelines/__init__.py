"""Reprocessing pipelines: PipelineTasks, the DRP pipeline YAML and its runner.

The tasks (`dpzero.pipelines.tasks`) are lsst-pipe-base ``PipelineTask``s, so the
pipeline runs with Rubin's own executors::

    pipetask run -b REPO -i 2.2i/raw/all,2.2i/calib,refcats/DP0.1 -o u/me/drp \\
        -p $(python -c "import dpzero.pipelines as p; print(p.pipeline_path())")#step1

or through ``dpzero pipeline run --repo REPO --output u/me/drp``. Importing this
package is cheap; the tasks import the middleware and photutils when imported.
"""

from dpzero.pipelines.run import (
    DEFAULT_INPUTS,
    PipelineRunError,
    RunReport,
    pipeline_path,
    restart_pipeline,
    run_pipeline,
    run_pipeline_bps,
)

__all__ = [
    "DEFAULT_INPUTS",
    "PipelineRunError",
    "RunReport",
    "pipeline_path",
    "restart_pipeline",
    "run_pipeline",
    "run_pipeline_bps",
]
