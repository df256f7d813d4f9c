"""Gap recovery: minute bars for what Track B's real-time data missed, and the day's report.

``observer gap-recovery run`` is the ``gap_recovery`` daemon (`workers.gap_recovery.worker`);
``observer gap-recovery report`` reads the day's gaps back (`workers.gap_recovery.report`).
"""

__all__ = ["SOURCE"]

# The bus source (the stored rows' ``source``, the recovered trades' too: the database's
# queries name it `observer.db.reconciliation_queries.RECOVERED_BY`); here, a literal, so that
# the command line is ready before it loads the database's modules
SOURCE = "gap_recovery"
