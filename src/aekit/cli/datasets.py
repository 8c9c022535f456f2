"""``aekit datasets``: the named data sets, and whether their files are present here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .common import print_table


def register(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list the known data sets and where their files are")
    p.add_argument("--data-dir", help="also look in this folder")
    p.set_defaults(func=run_datasets)


def run_datasets(args: argparse.Namespace) -> int:
    from ..data import list_datasets

    if args.data_dir and not Path(args.data_dir).is_dir():
        raise ConfigError(f"--data-dir {args.data_dir!r} is not a folder.")
    rows = list_datasets(args.data_dir)
    for r in rows:
        r["present"] = "yes" if r.get("present") else "no"
        r["shape"] = "x".join(str(d) for d in r.get("shape") or ())
    keys = [k for k in ("name", "shape", "splits", "present", "location", "description") if any(k in r for r in rows)]
    print_table(rows, keys)
    return 0
