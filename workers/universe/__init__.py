"""The universe job: the day's stocks for Track A, built after the morning master check."""

SOURCE = "universe"  # the bus source of every build, scheduled or by hand
