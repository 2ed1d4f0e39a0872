"""`python -m cli` runs the `rag` command."""

from cli.main import main

main()
