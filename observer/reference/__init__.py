"""Reference data: the KIS master files' catalogue, the sector map and GICS."""
