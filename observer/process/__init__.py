"""What every process does for itself: logs, heartbeat, retry, state files, free space."""
