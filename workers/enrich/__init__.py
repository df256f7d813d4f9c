"""The ``enrich`` job: GICS sectors of the overseas stocks, from KIS's codes or a fallback."""
