"""`python -m posecli` runs the command line."""

from .cli import main

main()
