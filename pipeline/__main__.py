"""``python -m pipeline`` runs the ``pipeline`` command."""
from pipeline.cli import main

main()
