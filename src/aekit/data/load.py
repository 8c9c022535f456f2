"""``load_dataset``: one entry point for named data sets and user files.

User data (``.npy``, ``.npz``, CSV/TSV, Parquet, ``.amat``, a folder of images) is checked
(at least one row, finite values, 2-D tables or image arrays, integer labels), turned into float32
tensors and split with a seeded permutation: ``test_fraction`` of it as the test split when the
file has none, then ``validation`` of what is left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aekit.data.catalog import DATASETS, canonical_name
from aekit.data.chunked import check_finite
from aekit.data.formats import TABLE_SUFFIXES, Arrays, read_table, read_user_file
from aekit.data.mapped import mapped_splits, should_map
from aekit.data.splits import (
    DatasetSplits,
    Split,
    check_fraction,
    check_validation,
    concat,
    is_binary,
    random_partition,
    take,
    validation_count,
)
from aekit.errors import ConfigError, DataError

DEFAULT_TEST_FRACTION = 0.2  # the share held out as test split by data that has none of its own


def load_dataset(
    name_or_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    validation: int | float | None = None,
    test_fraction: float | None = None,
    label_column: str | None = None,
    seed: int = 0,
    mmap: bool | None = None,
    missing_values: bool = False,
    nan_hint: str | None = None,
) -> DatasetSplits:
    """Load a named data set (see ``DATASETS``) or a user file/folder into train/val/test splits.

    ``validation``: None for the data set's default (the last 10,000 training images for the
    MNIST-likes, the published split for binarized MNIST, 10% otherwise), an int count (taken from
    the end of the training set for the MNIST-likes, at random otherwise), a float fraction of
    the training pool, or 0 for no validation split. ``test_fraction`` (default 0.2) and ``seed``
    govern the random splits of data that has no fixed test split; a data set or file that has one
    refuses a ``test_fraction``, which it would not use.

    ``mmap=True`` maps a float32 ``.npy`` file instead of reading it (for data larger than memory;
    its splits are then contiguous, see :mod:`aekit.data.mapped`); ``None`` maps a ``.npy`` whose
    float32 copy would fill more than half of the memory this process may use (the machine's, or its
    cgroup's limit); ``False`` always reads.

    ``missing_values=True`` reads NaN in a user's float file as a missing value (for models trained with
    ``missing_values=True``); otherwise NaN is refused, with ``nan_hint`` (a phrase) as the advice.
    Infinite values are always refused.
    """
    # numpy scalars (e.g. from a parameter grid) as the Python numbers they stand for
    validation = float(validation) if isinstance(validation, np.floating) else validation
    fraction_given = test_fraction is not None  # a given fraction must not be ignored
    test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else (
        float(test_fraction) if isinstance(test_fraction, np.floating) else test_fraction)
    check_validation(validation)
    check_fraction("test_fraction", test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed={seed!r} must be a whole number from 0 to 2**63 - 1.")
    name = canonical_name(str(name_or_path)) if isinstance(name_or_path, str) else None
    if name is not None and label_column is not None:
        raise DataError(f"label_column={label_column!r} was given for the named data set {name!r}, which has its own "
                        "labels; expected it only with a CSV, TSV or Parquet table.")
    if name is not None and mmap:
        raise DataError(f"mmap=True maps a .npy file; the named data set {name!r} is small and is read into memory.")
    if name is not None:
        spec = DATASETS[name]
        if fraction_given and spec.fixed_test:
            raise DataError(f"test_fraction={test_fraction!r} (--test-fraction) was given for {name!r}, which has a "
                            "fixed test split; "
                            "expected it only for data without one (digits, or a file of a single array).")
        return spec.loader(spec, data_dir=data_dir, download=download, validation=validation,
                           test_fraction=test_fraction, seed=seed)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise DataError(
            f"Data set {str(name_or_path)!r} is neither a known name nor an existing file; expected one of "
            f"{sorted(DATASETS)} or a path to a .npy, .npz, .csv, .parquet file or an image folder."
        )
    if label_column is not None and (path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES):
        raise DataError(
            f"label_column={label_column!r} was given for {path}; "
            "expected it only with a CSV, TSV or Parquet table."
        )
    if should_map(path, mmap):
        return mapped_splits(path, validation=validation, test_fraction=test_fraction, missing_values=missing_values,
                             nan_hint=nan_hint)
    raw = read_user_file(path, label_column)
    if fraction_given and "all" not in raw:
        raise DataError(f"test_fraction={test_fraction!r} (--test-fraction) was given for {path}, which has its own "
                        f"splits ({', '.join('x_' + k for k in raw)}); expected it only for a file of a single array.")
    return _user_splits(path, raw, validation=validation, test_fraction=test_fraction, seed=seed,
                        missing_values=missing_values, nan_hint=nan_hint)


def _user_splits(path: Path, raw: dict[str, Arrays], *, validation, test_fraction, seed,
                 missing_values: bool = False, nan_hint: str | None = None) -> DatasetSplits:
    """Check, convert and split the arrays read from a user file."""
    label_sets = [a.y for a in raw.values()]
    if any(y is None for y in label_sets) and any(y is not None for y in label_sets):
        raise DataError(f"Data file {path} has labels for some splits only; expected labels for every split or none.")
    codes, class_names = _label_codes(path, [a.y for a in raw.values()], next(iter(raw.values())).class_names)
    parts = {}
    for (key, arrays), y in zip(raw.items(), codes):
        if y is not None and len(y) != len(arrays.x):
            raise DataError(
                f"Data file {path} has {len(arrays.x)} rows but {len(y)} labels; "
                "expected one label per row."
            )
        parts[key] = Split(feature_tensor(path, arrays.x, key, missing_values, nan_hint), y)
    shapes = {tuple(s.x.shape[1:]) for s in parts.values()}
    if len(shapes) > 1:
        raise DataError(
            f"Data file {path} has splits of item shapes {sorted(shapes)}; "
            "expected one shape for all splits."
        )

    if "all" in parts:
        full = parts["all"]
        n = len(full)
        n_test = int(round(test_fraction * n))
        pool = n - n_test
        n_val = _user_val(validation, pool, path)
        if pool - n_val < 1:
            raise DataError(f"Data file {path} has {n} rows; expected enough rows to leave at least one for training.")
        test_idx, val_idx, train_idx = random_partition(n, [n_test, n_val], seed)
        train, val, test = take(full, train_idx), take(full, val_idx), take(full, test_idx)
    else:
        train, val, test = parts["train"], parts.get("val"), parts.get("test")
        if validation is not None or val is None:
            # No validation split in the file, or an explicit request: draw it from train (+ val).
            pool = concat(train, val)
            n_val = _user_val(validation, len(pool), path)
            val_idx, train_idx = random_partition(len(pool), [n_val], seed)
            train, val = take(pool, train_idx), take(pool, val_idx)

    ys = [s.y for s in (train, val, test) if s is not None and s.y is not None]
    num_classes = len(class_names) if class_names else (int(max(int(y.max()) for y in ys)) + 1 if ys else None)
    return DatasetSplits(
        name=path.stem if path.is_file() else path.name,
        train=train,
        val=val,
        test=test,
        shape=tuple(int(d) for d in train.x.shape[1:]),
        num_classes=num_classes,
        class_names=class_names,
        is_binary=is_binary(train, val, test),
        columns=next(iter(raw.values())).columns,
    )


def _user_val(validation, pool: int, path: Path) -> int:
    """Validation count for user data: 10% of the training pool by default."""
    if validation is None:
        return int(round(0.1 * pool))
    return validation_count(validation, pool, str(path))


def read_rows(path: str | Path, label_column: str | None = None, missing_values: bool = False,
              nan_hint: str | None = None) -> tuple[torch.Tensor, Arrays]:
    """The rows of one user file or image folder, in the file's order, as ``--data`` reads them (a tensor
    as ``feature_tensor`` makes it), with the arrays as read (labels, a table's column names and the
    values in their own type, scale and layout). A table's ``label_column`` is taken as labels where it has
    one. A file of several splits is refused: its rows have no one order."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"The input file {str(path)!r} does not exist.")
    if path.suffix.lower() in TABLE_SUFFIXES:
        parts = {"all": read_table(path, label_column, require_label=False)}
    else:
        parts = read_user_file(path)
    if "all" not in parts:
        raise DataError(f"{path} holds the splits {', '.join(parts)}; expected the rows of one array (name it "
                        "with --data and --split instead).")
    arrays = parts["all"]
    return feature_tensor(path, arrays.x, "all", missing_values, nan_hint), arrays


def file_layout(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Undo ``feature_tensor``'s layout for an array of ``shape`` as read: (N, C, H, W) back to (N, H, W)
    or channels-last."""
    if _channels_last(shape):
        return t.permute(0, 2, 3, 1).reshape(shape)
    return t.reshape(shape)


def _channels_last(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[1] not in (1, 3, 4) and shape[-1] in (1, 3, 4)


def feature_tensor(path: Path, x: np.ndarray, split: str, missing_values: bool = False,
                   nan_hint: str | None = None) -> torch.Tensor:
    """Check a feature array and return it as float32: (N, D) tables or (N, C, H, W) images; with
    ``missing_values`` NaN (a missing value) is kept."""
    where = f"{path}" if split == "all" else f"{path} ({split} split)"
    if x.dtype.kind not in "biuf":
        raise DataError(f"Data file {where} has arrays of dtype {x.dtype}; expected numbers (bool, integer or float).")
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(
            f"Data file {where} has an array of shape {x.shape}; "
            "expected N x D, N x H x W or N x C x H x W."
        )
    if x.shape[0] < 1 or x[0].size < 1:
        raise DataError(
            f"Data file {where} has an array of shape {x.shape}; "
            "expected at least one row and one value per row."
        )
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))  # big-endian numbers (e.g. '>f4') in this machine's order
    if _channels_last(x.shape):
        x = x.transpose(0, 3, 1, 2)  # channels-last (N, H, W, C), as PIL and TensorFlow write it -> (N, C, H, W)
    pixels = x.dtype == np.uint8  # 8-bit arrays are grey levels: scale to [0, 1] like the named images
    t = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    if pixels:
        t = t.div_(255.0)
    elif x.dtype.kind == "f":
        check_finite(t, str(where), missing_values, nan_hint)
    if t.ndim == 3:
        t = t.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    return t


def _label_codes(path: Path, label_sets: list, class_names: tuple[str, ...] | None):
    """Integer label tensors for every split; string labels become codes of sorted class names."""
    if all(y is None for y in label_sets):
        return [None] * len(label_sets), None
    arrays = [np.asarray(y) for y in label_sets]
    for y in arrays:
        if y.ndim != 1:
            raise DataError(f"Labels in {path} have shape {y.shape}; expected one label per row (N,).")
    joined = np.concatenate(arrays)
    if joined.dtype.kind in "OUS" and class_names is None:
        if joined.dtype.kind == "O" and _has_missing(joined):
            raise DataError(f"Labels in {path} have missing values; expected a label on every row.")
        names, codes = np.unique(joined.astype(str), return_inverse=True)  # sorted class names, (N,) codes
        class_names = tuple(str(v) for v in names)
    elif joined.dtype.kind in "biuf":
        if joined.dtype.kind == "f" and (not np.isfinite(joined).all() or (joined != np.round(joined)).any()):
            raise DataError(f"Labels in {path} include non-integer or missing values; expected integer class labels.")
        codes = joined.astype(np.int64)
        if codes.min() < 0:
            raise DataError(f"Labels in {path} include {codes.min()}; expected class labels >= 0.")
    else:
        raise DataError(f"Labels in {path} have dtype {joined.dtype}; expected integers or strings.")
    out, start = [], 0
    for y in arrays:
        out.append(torch.from_numpy(codes[start : start + len(y)].astype(np.int64)))
        start += len(y)
    return out, class_names


def _has_missing(values: np.ndarray) -> bool:
    """True when an object array (labels from a pandas table) holds None or NaN."""
    import pandas as pd  # object arrays only come from pandas tables, so pandas is installed

    return bool(pd.isna(values).any())
