"""Track B: the trigger engine and the slot manager for real-time collection (seed 004).

The collecting worker (WebSocket sessions per account, context sync at 09:29:50, gap
detection) builds on `workers.track_b.triggers` and `workers.track_b.slots`.
"""
