"""`python -m baton_server` runs the CLI."""

from baton_server.cli import main

main()
