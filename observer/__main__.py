"""``python -m observer`` runs the ``observer`` command."""

from observer.cli.entry import main

main()
