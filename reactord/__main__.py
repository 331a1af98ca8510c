"""``python -m reactord`` is the ``reactord`` command."""

from reactord.cli import main

main()
