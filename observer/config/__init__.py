"""The settings tree: each wing's table assembled into one root, loaded and cross-checked."""
