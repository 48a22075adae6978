"""The PipelineTasks of dpzero's DRP pipeline, one module each.

- `dpzero.pipelines.tasks.isr.IsrTask`: raw → ``postISRCCD`` (step1);
- `dpzero.pipelines.tasks.calibrate.CalibrateTask`: ``postISRCCD`` → ``calexp``,
  ``src``, ``calexpBackground`` (step1);
- `dpzero.pipelines.tasks.coadd.MakeWarpTask`: ``calexp`` → ``deepCoadd_directWarp``
  (step3);
- `dpzero.pipelines.tasks.coadd.AssembleCoaddTask`: warps → ``deepCoadd``,
  ``deepCoadd_nImage`` (step3);
- `dpzero.pipelines.tasks.measure_coadd.MeasureCoaddTask`: ``deepCoadd`` →
  ``deepCoadd_det``, ``deepCoadd_meas`` (step3).

Import the modules themselves (they import lsst-pipe-base and photutils).
"""
