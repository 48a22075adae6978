"""The PipelineTasks of dpzero's DRP pipeline, one module each.

- `dpzero.pipelines.tasks.isr.IsrTask`: raw → ``postISRCCD``;
- `dpzero.pipelines.tasks.calibrate.CalibrateTask`: ``postISRCCD`` → ``calexp``,
  ``src``, ``calexpBackground``.

Import the modules themselves (they import lsst-pipe-base and photutils).
"""
