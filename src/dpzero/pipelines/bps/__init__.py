"""bps submit configurations (package data) and the workflow runner over lsst-ctrl-bps.

``parsl-local.yaml`` runs on this machine through the Parsl plugin's local provider;
``parsl-slurm.yaml`` (Parsl on a Slurm cluster), ``htcondor.yaml`` and ``panda.yaml``
are what a site would start from.
"""

from dpzero.pipelines.bps._workflow import (
    SITE_CONFIGS,
    BpsReport,
    WorkflowError,
    WorkflowProgress,
    restart_workflow,
    site_config_path,
    submit_workflow,
)

__all__ = [
    "SITE_CONFIGS",
    "BpsReport",
    "WorkflowError",
    "WorkflowProgress",
    "restart_workflow",
    "site_config_path",
    "submit_workflow",
]
