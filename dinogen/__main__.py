"""`python -m dinogen` runs the command-line interface."""

from dinogen.cli import main

main()
