"""Subcommands of the `lnlbench` command line, one module per group; each exposes `add_parsers(subparsers)`."""
