"""The `lnlbench` command line: argument parsing and messages to people."""

from __future__ import annotations

import argparse
import importlib
import sys

from lnlbench.errors import LnlbenchError

# One module per group of subcommands; each exposes `add_parsers(subparsers)`.
COMMAND_MODULES = [
    "lnlbench.commands.run",
    "lnlbench.commands.demo",
    "lnlbench.commands.catalog",
    "lnlbench.commands.sweep",
    "lnlbench.commands.report",
    "lnlbench.commands.prepare",
    "lnlbench.commands.check_plugin",
    "lnlbench.commands.export",
]


class HelpWithDefaults(argparse.HelpFormatter):
    """Shows each option's default, unless its help names it already or there is none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or text == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def deprecated_alias(old: str, new: str) -> None:
    """Say on stderr that option `old` is an old spelling of `new`, accepted for one more release."""
    print(f"lnlbench: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    import lnlbench

    parser = argparse.ArgumentParser(
        prog="lnlbench", description="Benchmark learning with noisy labels on pre-trained models."
    )
    parser.add_argument("--version", action="version", version=f"lnlbench {lnlbench.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail on stderr")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    for choice in sub._choices_actions:  # every subcommand: its one-line help as description, defaults shown
        command = sub.choices[choice.dest]
        command.formatter_class = HelpWithDefaults
        if not command.description and choice.help:
            command.description = choice.help[0].upper() + choice.help[1:] + "."
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from lnlbench import log

    log.configure(args.verbose - args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from lnlbench.provenance import invoked_as

    try:
        with invoked_as(list(sys.argv[1:] if argv is None else argv)):
            return int(args.func(args) or 0)
    except LnlbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `lnlbench methods | head`: the reader left, nothing to report
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
