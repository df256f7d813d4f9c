"""Time: the one clock, KRX's trading days and sessions, the day's phases and timeline."""
