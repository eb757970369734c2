"""``python -m meddata.cli``: the same as the ``meddata`` command."""

from meddata.cli.main import main

main()
