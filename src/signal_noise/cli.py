"""The ``signal-noise`` command. Each sub-command lives in its own module and registers itself here."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

# module name -> it defines ``register(subparsers)``, which adds a parser whose ``func(args) -> int`` runs it
COMMAND_MODULES = ("data", "train", "store", "sweep", "analyze", "wandb_io", "render")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, like every other bad input
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="signal-noise", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"signal_noise.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"signal-noise: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("signal-noise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
