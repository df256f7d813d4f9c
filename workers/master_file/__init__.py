"""The master-file worker: KIS's fourteen symbol masters into ``instruments``, changes detected.

``observer master-file update`` is both the scheduled job (daily 06:00, forced Sunday 03:00)
and the operator's command; see `workers.master_file.cli`.
"""
