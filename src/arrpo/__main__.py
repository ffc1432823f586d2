"""``python -m arrpo`` runs the ``arrpo`` command."""

from arrpo.cli import main

main()
