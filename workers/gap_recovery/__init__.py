"""Gap recovery: minute bars for what Track B's real-time data missed, and the day's report.

``observer gap-recovery run`` is the ``gap_recovery`` daemon (`workers.gap_recovery.worker`);
``observer gap-recovery report`` reads the day's gaps back (`workers.gap_recovery.report`).
"""

__all__ = ["SOURCE"]

SOURCE = "gap_recovery"  # the bus source; here so that the command line need not load the worker
