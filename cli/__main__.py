"""``python -m breachflow.cli``: the ``breach`` command, for a child process started by one."""

from breachflow.cli.app import main

main()
