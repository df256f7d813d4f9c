"""Track A: the current price of every universe stock, every 10 minutes from 09:00 to the close.

``observer track-a run`` is the ``track_a`` session worker; see `workers.track_a.worker`.
"""

__all__ = ["SOURCE"]

SOURCE = "track_a"  # the bus source; here so that the command line need not load the worker
