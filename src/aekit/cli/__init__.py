"""The ``aekit`` command.

Each command group is a module of this package with ``register(subparsers)``; it adds its
sub-parser(s) and sets ``func`` to a function taking the parsed args and returning an exit code.
A user error (any ``AekitError``, a missing file, bad options) prints one line on stderr and exits
with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import AekitError

COMMAND_MODULES = [
    "train", "evaluate", "generate", "datasets",   # train, evaluate, sample / reconstruct / encode, datasets
    "denoise", "impute", "stacked",                # denoise; impute; pretrain / finetune
    "study", "analogy", "compare",                 # study latent-dim / latent-space; analogy; compare
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and status 2, like every other user error
        self.exit(2, f"aekit: error: {message} (see '{self.prog} --help').\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="aekit", description="Train, evaluate and use autoencoders (AE, VAE and relatives).")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AekitError as exc:
        print(f"aekit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:   # a path the user gave that cannot be read or written
        where = f": {exc.filename!r}" if exc.filename else ""
        print(f"aekit: error: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aekit: interrupted; the last completed checkpoint is kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
