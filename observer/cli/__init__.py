"""The ``observer`` command's own verbs, and what every command shares."""
