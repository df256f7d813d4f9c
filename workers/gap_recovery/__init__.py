"""Gap recovery: minute bars for what Track B's real-time data missed, and the day's report.

``observer gap-recovery run`` is the ``gap_recovery`` daemon (`workers.gap_recovery.worker`);
``observer gap-recovery report`` reads the day's gaps back (`workers.gap_recovery.report`).
"""

from observer.db.reconciliation_queries import RECOVERED_BY

__all__ = ["SOURCE"]

# The bus source (the stored rows' ``source``, the recovered trades' too); here so that the
# command line need not load the worker
SOURCE = RECOVERED_BY
