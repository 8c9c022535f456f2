"""Helpers shared by the CLI commands: options, run folders, loading a model and its data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DataError
from ..io import CONFIG_NAME, atomic_write


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """``["beta=4", "hidden_dims=[200,200]"]`` -> {"beta": 4, "hidden_dims": [200, 200]} (values parsed as JSON when they can be)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{what} option {item!r} must look like key=value.")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def add_data_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--data", required=required, help="data set name (digits, mnist, fashion-mnist, kmnist, binarized-mnist) or a path (.npy, .npz, .csv, .parquet, image folder)")
    p.add_argument("--data-dir", help="folder holding data set files (looked at before AEKIT_DATA and the cache)")
    p.add_argument("--no-download", action="store_true", help="never download; fail if the files are not present")
    p.add_argument("--validation", type=float, default=None, help="validation size: a count, a fraction, or 0 for none (default: the data set's own)")
    p.add_argument("--label-column", help="label column of a CSV/Parquet table")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="share of a file without a test split held out as test (default 0.2; digits too)")
    p.add_argument("--mmap", action=argparse.BooleanOptionalAction, default=None,
                   help="memory-map a float32 .npy instead of reading it (for data larger than memory; its splits are "
                        "then contiguous); default: map a .npy only when it would fill more than half of memory")


def add_model_data_args(p: argparse.ArgumentParser) -> None:
    """A command that reads a trained model and a split of data: the model, the data options, --split."""
    p.add_argument("model", help="run folder or saved model folder")
    add_data_args(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"])


def takes_missing(model: Any) -> bool:
    """Whether ``model`` was trained to take NaN as a missing value (``missing_values=True``)."""
    return getattr(getattr(model, "config", None), "missing_values", False) is True


def model_data(args: argparse.Namespace, model: Any) -> Any:
    """The data of a command that applies a trained ``model``: NaN read as missing values where the model
    takes them, else refused with a word on why."""
    return load_data(args, missing_values=takes_missing(model),
                     nan_hint=f"this {type(model).__name__} was trained without -o missing_values=true")


def load_data(args: argparse.Namespace, name: str | None = None, missing_values: bool = False,
              nan_hint: str | None = None) -> Any:
    """The data named by --data (or ``name``), read and split as the data options say; ``missing_values``
    reads NaN in a user's file as a missing value (for a model that takes them), else refuses it with
    ``nan_hint`` as the advice (default: which models take them)."""
    from ..data import load_dataset

    name = name or args.data
    if not name:
        raise ConfigError("No data given; pass --data NAME_OR_PATH.")
    validation = args.validation
    if validation is not None and float(validation).is_integer() and validation >= 1:
        validation = int(validation)
    return load_dataset(name, data_dir=args.data_dir, download=not args.no_download,
                        validation=validation, label_column=getattr(args, "label_column", None),
                        mmap=getattr(args, "mmap", None), test_fraction=getattr(args, "test_fraction", None),
                        missing_values=missing_values, nan_hint=nan_hint)


def resolve_model_dir(path: str | Path) -> Path:
    """A saved model folder, or a run folder (its best/ then last/ model)."""
    p = Path(path)
    for candidate in (p, p / "best", p / "last"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    if not p.exists():
        raise CheckpointError(f"No model or run folder at {str(p)!r}.")
    raise CheckpointError(f"{str(p)!r} holds no saved model (no {CONFIG_NAME} in it, best/ or last/).")


def load_model(path: str | Path) -> Any:
    from ..io import from_pretrained

    return from_pretrained(resolve_model_dir(path))


def run_info(path: str | Path) -> dict[str, Any]:
    """The run.json a training run wrote next to its checkpoints, or {}."""
    p = Path(path)
    for candidate in (p / "run.json", p.parent / "run.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except json.JSONDecodeError:
                return {}
    return {}


# How a run read and split its data: run.json key, CLI attribute, flag (restored by use_run_data).
DATA_READING = (("memory_mapped", "mmap", "--mmap/--no-mmap"), ("test_fraction", "test_fraction", "--test-fraction"),
                ("validation", "validation", "--validation"), ("label_column", "label_column", "--label-column"))


def data_record(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    """The run.json entries that let a later command read and split the run's data the same way."""
    return {"data": str(args.data), "data_dir": args.data_dir, "memory_mapped": data.memory_mapped,
            "test_fraction": args.test_fraction, "validation": args.validation, "label_column": args.label_column,
            "class_names": list(data.class_names) if data.class_names else None,
            "columns": list(data.columns) if data.columns else None}


def use_run_data(args: argparse.Namespace, info: dict[str, Any], *, resume: bool = False) -> None:
    """Read the data a run was trained on (without ``--data``, or with the same data named another
    way) as its run.json says it was read: its folder, memory-mapped or not (a mapped file is split
    differently), its test share, validation split and label column. With ``resume`` an option that
    would split the data otherwise is refused: the run's test rows would become training rows."""
    args.data = args.data or info.get("data")
    if not args.data or not _same_data(args.data, info.get("data")):
        return
    args.data_dir = args.data_dir or info.get("data_dir")
    for saved, key, flag in DATA_READING:
        recorded = info.get(saved, False if saved == "memory_mapped" else None)  # runs before the record: read whole
        given = getattr(args, key, None)
        if given is None:
            setattr(args, key, recorded)
        elif resume and given != recorded:
            raise ConfigError(f"--resume reads the data as the first sitting did ({saved}={recorded!r}); {flag} "
                              f"{given!r} would split it otherwise (start a new run for another split).")


def _same_data(a: Any, b: Any) -> bool:
    """Whether two --data values name the same data set or file (a relative and an absolute path alike)."""
    from ..data.catalog import canonical_name

    if b is None:
        return False
    name_a, name_b = canonical_name(str(a)), canonical_name(str(b))
    if name_a or name_b:
        return name_a == name_b
    return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()


def model_inputs(model: Any, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Raw items -> what the model was trained on: its recorded preprocessing, and one fixed
    Bernoulli draw for models trained with dynamic binarization."""
    pre = getattr(model, "preprocessing", None)
    if pre is None:
        expected = tuple(model.config.input_shape)
        if tuple(x.shape[1:]) != expected and x[0].numel() != int(np.prod(expected)):
            raise DataError(f"Inputs have shape {tuple(x.shape[1:])}; this model expects {expected}.")
        return x.reshape(x.shape[0], *expected)
    xin = pre.apply(x)
    if pre.binarize == "dynamic":
        xin = torch.bernoulli(xin, generator=torch.Generator().manual_seed(seed))
    return xin


def split_of(data: Any, name: str) -> Any:
    split = getattr(data, name, None)
    if split is None:
        raise DataError(f"The data set {data.name!r} has no {name} split.")
    return split


def check_new_file(path: str | Path, force: bool, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` as a Path when it may be written: not there already (unless ``force``), and ending in one
    of ``suffixes`` when they are given."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise ConfigError(f"Output {str(p)!r} must end in {' or '.join(suffixes)}.")
    if p.exists() and not force:
        raise ConfigError(f"{str(p)!r} already exists; pass --force to replace it or choose another --out.")
    return p


ARRAY_SUFFIXES = (".npy", ".csv", ".txt")


def save_array(path: Path, array: np.ndarray, column: str = "z", fmt: str = "%.7g") -> None:
    """Write .npy or .csv atomically; a CSV's columns are named ``column``0, ``column``1, ... and its
    numbers written with ``fmt``."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        def write(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, array, allow_pickle=False)

        atomic_write(path, write)
    elif suffix in (".csv", ".txt"):
        header = ",".join(f"{column}{i}" for i in range(array.shape[1])) if array.ndim == 2 else ""
        atomic_write(path, lambda p: np.savetxt(p, array, delimiter=",", header=header, comments="", fmt=fmt))
    else:
        raise ConfigError(f"Output {str(path)!r} must end in .npy or .csv.")


def csv_field(name: str) -> str:
    """A column name as a CSV header field (quoted where it holds a comma or a quote)."""
    return '"' + name.replace('"', '""') + '"' if any(c in name for c in ',"\n') else name


def print_table(rows: list[dict[str, Any]], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(_fmt(r.get(k)).ljust(widths[k]) for k in keys))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def load_input(path: str, model: Any = None, info: dict[str, Any] | None = None,
               label_column: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """The rows of a user's file or image folder in its order, read as ``--data`` reads one (8-bit arrays
    scaled to [0, 1], N x H x W images given a channel; NaN kept as missing values for a ``model`` that
    takes them, else refused): the tensor, the labels as the run's class codes where the file has them
    (a table's ``label_column``, by default the run's), and the arrays as read (``aekit.data.Arrays``)."""
    from ..data.load import read_rows

    info = info or {}
    hint = None if model is None else f"this {type(model).__name__} was trained without -o missing_values=true"
    x, arrays = read_rows(path, label_column or info.get("label_column"), model is not None and takes_missing(model),
                          hint)
    trained_on = info.get("columns")
    if trained_on and arrays.columns and list(arrays.columns) != list(trained_on):
        differ = next(i for i, (a, b) in enumerate(zip([*arrays.columns, None], [*trained_on, None])) if a != b)
        raise DataError(f"{path} has the columns {list(arrays.columns)[differ:differ + 3]} from column {differ + 1} on, "
                        f"where the model was trained on {list(trained_on)[differ:differ + 3]}; expected the same "
                        "columns in the same order.")
    return x, (None if arrays.y is None else _class_codes(arrays.y, path, info.get("class_names"))), arrays


def _class_codes(labels: np.ndarray, path: str, names: list[str] | None) -> torch.Tensor:
    """A file's labels as the class codes a run was trained with: names looked up in the run's class names,
    numbers used as they are."""
    a = np.asarray(labels)
    if a.dtype.kind in "OUS":
        if not names:
            raise DataError(f"The labels in {path} are names, and the run does not record the class names it was "
                            "trained on; give them as class numbers.")
        index = {str(n): i for i, n in enumerate(names)}
        unknown = sorted({str(v) for v in a} - set(index))
        if unknown:
            raise DataError(f"{path} has labels {unknown[:3]} the model was not trained on; expected {list(index)}.")
        return torch.tensor([index[str(v)] for v in a], dtype=torch.long)
    if a.dtype.kind not in "biuf" or (a.dtype.kind == "f" and (not np.isfinite(a).all() or (a != np.round(a)).any())):
        raise DataError(f"The labels in {path} are not whole class numbers or names.")
    return torch.from_numpy(a.astype(np.int64))
