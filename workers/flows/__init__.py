"""The flows job: a day's final investor flows and program trading, per stock and venue."""

SOURCE = "flows"
