"""``python -m observer`` runs the ``observer`` command."""

from observer.cli import main

main()
