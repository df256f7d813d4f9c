"""The ``enrich`` job: GICS sectors of the overseas stocks, from KIS's codes or a fallback."""

SOURCE = "enrich"  # the bus source of every run, scheduled or by hand
