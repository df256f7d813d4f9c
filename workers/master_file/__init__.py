"""The master-file worker: KIS's fourteen symbol masters into ``instruments``, changes detected.

``observer master-file update`` is both the scheduled job (daily 06:00, forced Sunday 03:00)
and the operator's command; see `workers.master_file.cli`. `SOURCE` lives here, below every
module of the package, so the CLI imports the work and never the reverse.
"""

SOURCE = "master_file"  # the bus source of every master-file run, scheduled or by hand
