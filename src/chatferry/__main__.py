"""``python -m chatferry`` runs the command line."""

from chatferry.cli.main import main

main()
