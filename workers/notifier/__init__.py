"""Alert delivery: the ``notifier`` daemon and the operator's ``observer alerts``.

``observer notifier run`` follows alerts and sends them through apprise to the configured
channels (`workers.notifier.worker`); ``observer alerts`` lists alerts and what became of
them, ``observer alerts ack ID`` acknowledges one (`workers.notifier.cli`).
"""

__all__ = ["ACK_SOURCE", "SOURCE"]

SOURCE = "notifier"  # the daemon's bus source
ACK_SOURCE = "operator"  # the source of acknowledgements made with `observer alerts ack`
