"""``python -m minion``: run the minion daemon (``reactord minion`` runs exactly this)."""

from minion.cli import main

main()
