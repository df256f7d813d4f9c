"""Track B: the trigger engine and the slot manager for real-time collection.

The collecting worker (WebSocket sessions per account, context sync at 09:29:50, gap
detection) builds on `workers.track_b.triggers` and `workers.track_b.slots`.
"""

__all__ = ["SOURCE"]

SOURCE = "track_b"  # the bus source; here so that the command line need not load the worker
