"""The investor job: the universe's intraday investor estimates after each posting."""

SOURCE = "investor"
