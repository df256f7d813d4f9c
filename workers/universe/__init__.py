"""The universe job: the day's stocks for Track A, built after the morning master check."""
