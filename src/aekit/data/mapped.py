"""Memory-mapped ``.npy`` data: a data set larger than memory, trained on without reading it whole.

A float32 ``.npy`` file is mapped copy-on-write (``numpy.load(mmap_mode="c")``) and wrapped by
``torch.from_numpy`` without a copy, so its splits are ordinary CPU tensors whose pages the
operating system reads when a batch gathers them and may drop again under memory pressure. The
checks (finite values, binary values) and the statistics (data mean, scaling) read it a block of
rows at a time (:mod:`aekit.data.chunked`).

Because a random split would have to gather (copy) its rows, the splits of a mapped file are
contiguous: the last ``test_fraction`` of the rows are the test split and the validation rows come
just before them, as in the MNIST convention. Shuffle the file once beforehand if its order is not
random. The batches of an epoch are still a fresh random permutation of the training rows. The
mapping is advised for random reads, and the block-wise checks prefetch each block
(:mod:`aekit.data.pages`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from aekit.data.chunked import check_finite
from aekit.data.formats import read_npy
from aekit.data.pages import register
from aekit.data.splits import DatasetSplits, Split, is_binary, validation_count
from aekit.errors import ConfigError, DataError

AUTO_FRACTION = 0.5  # mmap=None maps a .npy whose float32 copy would need more than this share of the memory


def usable_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, or less where its cgroup (a container,
    a batch job) sets a limit; None where the system says neither."""
    try:
        limits = [int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))]
    except (AttributeError, OSError, ValueError):
        limits = []
    for path in cgroup_limit_files():
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" (v2) or a huge number (v1): no limit
            limits.append(int(text))
    return min(limits) if limits else None


def cgroup_limit_files() -> list[Path]:
    """The memory-limit files (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) of this process's
    cgroups and their ancestors. /proc/self/cgroup names a group from the host's root, while a
    container mounts its own group as /sys/fs/cgroup, so every tail of that path is tried as well."""
    root = Path("/sys/fs/cgroup")
    files = [root / "memory.max", root / "memory" / "memory.limit_in_bytes"]
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return files
    for line in lines:
        _, controllers, where = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in where.split("/") if p]
        for start in range(len(parts)):  # the path seen from each possible mount root
            for stop in range(start + 1, len(parts) + 1):  # the group and its ancestors below that root
                files.append(base.joinpath(*parts[start:stop], name))
    return list(dict.fromkeys(files))


def should_map(path: Path, mmap: bool | None) -> bool:
    """Whether to map ``path``: as asked, or (``mmap=None``) when it is a ``.npy`` too large to read.

    A ``.npy`` that is too large to read and is not float32 cannot be mapped for training; it is
    refused here with the conversion that makes it mappable, before anything is read.
    """
    if mmap is not None and not isinstance(mmap, bool):
        raise ConfigError(f"mmap={mmap!r} is invalid; expected True, False or None (map files too large for memory).")
    is_npy = path.is_file() and path.suffix.lower() == ".npy"
    if mmap and not is_npy:
        raise DataError(f"mmap=True maps a .npy file, but {path} is not one; save the array with numpy.save "
                        "(float32) to train on it without reading it into memory.")
    if mmap is not None or not is_npy:
        return bool(mmap)
    memory = usable_memory()
    header = read_npy(path, mmap=True).x  # the header only: nothing else is read
    need = int(np.prod(header.shape, dtype=np.int64)) * 4
    if memory is None or need <= AUTO_FRACTION * memory:
        return False
    if header.dtype != np.dtype("=f4"):
        raise DataError(
            f"Array file {path} would need {need / 2**30:.1f} GiB as float32, more than half of the "
            f"{memory / 2**30:.1f} GiB of memory this process may use, and its dtype {header.dtype} cannot be "
            "memory-mapped for training; save it as float32 (numpy.lib.format.open_memmap, filled a block at a time; 8-bit images divided by 255).")
    return True


def mapped_splits(path: Path, *, validation: int | float | None, test_fraction: float,
                  missing_values: bool = False, nan_hint: str | None = None) -> DatasetSplits:
    """Map a float32 ``.npy`` and split its rows contiguously: train, then validation, then test (with
    ``missing_values``, NaN is kept as a missing value)."""
    x = read_npy(path, mmap=True).x
    if x.dtype != np.dtype("=f4"):
        what = "big-endian float32" if x.dtype == np.dtype(">f4") else str(x.dtype)
        raise DataError(
            f"Array file {path} holds {what} values; memory mapping needs float32 in this machine's byte order (the "
            "dtype models train in). Save it so (8-bit images divided by 255), or read it with mmap=False "
            "(--no-mmap) to convert it in memory.")
    if x.ndim > 1 and not x.flags.c_contiguous:
        raise DataError(f"Array file {path} is stored in Fortran (column) order, so every row is spread over the whole "
                        "file; save it in C order (numpy.save(path, numpy.ascontiguousarray(x))) to map it.")
    if x.ndim < 2 or x.ndim > 4 or x.shape[0] < 1 or x[0].size < 1:
        raise DataError(f"Array file {path} has an array of shape {x.shape}; expected at least one row, "
                        "N x D, N x H x W or N x C x H x W.")
    register(x)  # random-read advice, and block prefetch for the checks
    t = torch.from_numpy(x)  # shares the mapping: no copy
    if t.ndim == 4 and t.shape[1] not in (1, 3, 4) and t.shape[-1] in (1, 3, 4):
        t = t.permute(0, 3, 1, 2)  # channels-last -> (N, C, H, W), a view
    elif t.ndim == 3:
        t = t.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W), a view
    check_finite(t, str(path), missing_values, nan_hint)
    n = int(t.shape[0])
    pool = n - int(round(test_fraction * n))
    n_val = int(round(0.1 * pool)) if validation is None else validation_count(validation, pool, str(path))
    if pool - n_val < 1:
        raise DataError(f"Data file {path} has {n} rows; expected enough rows to leave at least one for training.")
    train, val, test = (Split(t[a:b]) if b > a else None for a, b in ((0, pool - n_val), (pool - n_val, pool), (pool, n)))
    return DatasetSplits(
        name=path.stem, train=train, val=val, test=test, shape=tuple(int(d) for d in t.shape[1:]),
        num_classes=None, class_names=None, is_binary=is_binary(train, val, test), memory_mapped=True,
    )

