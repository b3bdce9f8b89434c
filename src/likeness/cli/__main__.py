"""``python -m likeness.cli``: the same command line as the installed ``likeness`` script."""

from likeness.cli import main

main()
