"""The supervisor: runs, watches and restarts the worker processes; the control socket."""
