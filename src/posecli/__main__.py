"""`python -m posecli` runs the command line."""

from posecli.cli import main

main()
