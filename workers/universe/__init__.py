"""The universe job: the day's stocks for Track A, built at 05:00 from masters and daily charts."""
