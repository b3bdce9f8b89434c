"""``python -m likeness``: the same command line as the installed ``likeness`` script."""

from likeness.cli import main

main()
