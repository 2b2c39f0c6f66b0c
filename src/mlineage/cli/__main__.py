"""``python -m mlineage.cli``: the same as the ``mlineage`` command."""

from mlineage.cli import main

main()
