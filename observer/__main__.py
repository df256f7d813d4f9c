"""``python -m observer`` runs the ``observer`` command."""

from observer.entry import main

main()
