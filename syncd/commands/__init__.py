"""The ``syncd`` commands, one module per noun; ``syncd.cli`` adds them all to one parser.

Each module's ``add_commands(sub)`` adds its subcommands and names the function that runs each
with ``set_defaults(handler=...)``. A handler is called with the parsed arguments and an open
``Runtime`` (closed after it); a command added with ``runtime=False`` (check-config, db, demo,
web) gets the arguments alone.
"""

EXIT_PROBLEM, EXIT_USAGE, EXIT_TEMPORARY = 1, 2, 3
