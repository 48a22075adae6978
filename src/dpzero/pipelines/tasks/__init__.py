"""The PipelineTasks of dpzero's DRP pipeline, one module per stage.

- `dpzero.pipelines.tasks.isr.IsrTask`: raw → ``postISRCCD`` (step1);
- `dpzero.pipelines.tasks.calibrate.CalibrateTask`: ``postISRCCD`` → ``calexp``,
  ``src``, ``calexpBackground`` (step1);
- `dpzero.pipelines.tasks.tables`: ``sourceTable_visit``, ``visitTable``,
  ``ccdVisitTable`` (step2), ``objectTable_tract`` (step3), ``forced_src`` (step4),
  ``forcedSourceTable_tract`` (step5) — the DP0.2 tables;
- `dpzero.pipelines.tasks.coadd`: ``calexp`` → ``deepCoadd_directWarp`` →
  ``deepCoadd``, ``deepCoadd_nImage`` (step3);
- `dpzero.pipelines.tasks.measure_coadd`: ``deepCoadd`` → ``deepCoadd_det`` →
  ``deepCoadd_mergeDet`` → ``deepCoadd_deblendedCatalog`` → ``deepCoadd_meas`` →
  ``deepCoadd_ref`` → ``deepCoadd_forced_src`` (step3).

Import the modules themselves (they import lsst-pipe-base and photutils).
"""
