"""Vectorized readers for the file formats aekit loads.

- IDX (LeCun et al., "Gradient-based learning applied to document recognition", 1998): the gzip
  files of MNIST, Fashion-MNIST and KMNIST.
- Larochelle's ``.amat`` text files of statically binarized MNIST (Larochelle & Murray, "The Neural
  Autoregressive Distribution Estimator", AISTATS 2011).
- User files: ``.npy``, ``.npz``, CSV, Parquet and folders of images.

Every reader returns numpy arrays in the file's own scale; turning them into float tensors,
splitting and validating values is the job of :mod:`aekit.data.load`. Parsing is done on whole
buffers with numpy (no Python loop per item), and nothing is ever unpickled.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aekit.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".parquet", ".pq"})
ARRAY_SUFFIXES = frozenset({".npy", ".npz"})


@dataclass
class Arrays:
    """One split as read from a file: ``x`` (N, ...), optional integer or string labels ``y`` (N,)."""

    x: np.ndarray
    y: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    columns: tuple[str, ...] | None = None   # a table's feature column names


# --------------------------------------------------------------------------------------------- IDX


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzip-compressed (as published) or not, into a uint8 array
    of the declared shape."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            packed = raw.read(2) == b"\x1f\x8b"  # the gzip magic; an IDX header starts with two zero bytes
            raw.seek(0)
            if packed:
                with gzip.open(raw, "rb") as f:
                    data = bytearray(f.read())  # writable, so torch.from_numpy can share it without a warning
            else:
                data = bytearray(raw.read())
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut gzip is EOFError
        raise DataError(f"IDX file {path} could not be read ({exc}); expected a complete IDX file, gzip-compressed "
                        "or not.") from exc
    if len(data) < 4:
        raise DataError(f"IDX file {path} holds {len(data)} bytes; expected at least a 4-byte header.")
    magic = int(np.frombuffer(data, dtype=">u4", count=1)[0])
    # The magic is 0x0000TTDD: TT the element type (0x08 = unsigned byte), DD the number of dimensions.
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"IDX file {path} has magic number {magic:#010x}; expected {expected_magic:#010x}.")
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08 or not 1 <= magic & 0xFF <= 4:
        raise DataError(f"IDX file {path} has magic number {magic:#010x}; expected 0x0000080D with 1 <= D <= 4.")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(data)} bytes); expected {header}.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than declared"
        raise DataError(
            f"IDX file {path} is {what}: it holds {len(data)} bytes; expected {expected} for shape {shape}."
        )
    # frombuffer is a zero-copy view of the decompressed bytes; reshape keeps it a view.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array of 1 to 4 dimensions as a gzip IDX file (for tests and exports)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = np.array([0x0800 | array.ndim, *array.shape], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


# -------------------------------------------------------------------------------------------- amat


CIFAR_RECORD = 1 + 3 * 32 * 32   # a label byte, then the red, green and blue 32x32 planes row by row


def read_cifar_binary(path: str | Path, members: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) uint8 of each named member of CIFAR-10's binary
    archive (``cifar-10-binary.tar.gz``, Krizhevsky 2009), read in one pass over the archive without
    extracting it and without unpickling anything: each member is a run of 3073-byte records."""
    import tarfile

    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if member.name not in members or not member.isfile():
                    continue
                raw = np.frombuffer(archive.extractfile(member).read(), dtype=np.uint8)
                if raw.size == 0 or raw.size % CIFAR_RECORD:
                    raise DataError(f"{member.name} in {path} holds {raw.size} bytes, not a whole number of "
                                    f"{CIFAR_RECORD}-byte records.")
                records = raw.reshape(-1, CIFAR_RECORD)
                found[member.name] = (records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0])
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is not a readable CIFAR-10 archive ({exc}).") from None
    missing = [m for m in members if m not in found]
    if missing:
        raise DataError(f"{path} lacks {missing[0]}; expected CIFAR-10's binary archive.")
    return found


def read_amat(path: str | Path) -> np.ndarray:
    """Read a whitespace-separated ``.amat`` text file of numbers into a float32 array (N, D).

    Binarized MNIST lines are 784 single characters ``0``/``1`` separated by single spaces and
    ended by ``\\n``, so each line is exactly 1568 bytes: the values are the even bytes. That layout
    is checked and parsed in a few numpy operations; any other layout falls back to ``np.loadtxt``.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Text matrix {path} could not be read ({exc}); expected a readable .amat file.") from exc
    if not data.strip():
        raise DataError(f"Text matrix {path} is empty; expected at least one line of numbers.")
    fast = _parse_single_digit_lines(data)
    if fast is not None:
        return fast
    try:
        x = np.loadtxt(io.BytesIO(data), dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DataError(
            f"Text matrix {path} is malformed ({exc}); "
            "expected the same count of numbers on every line."
        ) from exc
    return x


def _parse_single_digit_lines(data: bytes) -> np.ndarray | None:
    """Parse lines of single digits separated by single spaces; None when the data has another layout."""
    first_newline = data.find(b"\n")
    if first_newline <= 0 or first_newline % 2 == 0:  # a line of D digits has 2*D - 1 bytes: odd
        return None
    width = first_newline + 1  # bytes per line including the newline
    if len(data) % width != 0:
        return None
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, width)  # (N, 2D) bytes
    values, separators = raw[:, 0::2], raw[:, 1::2]  # (N, D) digits, (N, D) spaces and a final newline
    if not (separators[:, :-1] == ord(" ")).all() or not (separators[:, -1] == ord("\n")).all():
        return None
    digits = values - np.uint8(ord("0"))  # wraps below '0' to large values, caught by the next check
    if (digits > 9).any():
        return None
    return digits.astype(np.float32)


# ------------------------------------------------------------------------------------ user arrays


def read_npy(path: str | Path, mmap: bool = False) -> Arrays:
    """Read a ``.npy`` array (no labels); with ``mmap`` map it copy-on-write instead (nothing is read
    until used, and writes to the array never reach the file)."""
    path = Path(path)
    try:
        x = np.load(path, allow_pickle=False, mmap_mode="c" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"Array file {path} could not be read ({exc}); expected a numeric .npy array.") from exc
    return Arrays(x=x)


_X_KEYS = ("x", "X", "data")
_Y_KEYS = ("y", "Y", "labels")


def read_npz(path: str | Path) -> dict[str, Arrays]:
    """Read a ``.npz`` archive into splits.

    Two layouts are understood: one array under ``x``/``X``/``data`` with optional labels under
    ``y``/``Y``/``labels`` (returned as ``{"all": ...}``), or ``x_train`` (+ ``y_train``) with
    optional ``x_val``/``x_test`` and their labels (returned as ``{"train": ..., "val": ..., "test": ...}``).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"Array archive {path} could not be read ({exc}); expected a .npz of numeric arrays.") from exc
    if "x_train" in arrays:
        out = {}
        for split in ("train", "val", "test"):
            if f"x_{split}" in arrays:
                out[split] = Arrays(x=arrays[f"x_{split}"], y=arrays.get(f"y_{split}"))
        return out
    x_key = next((k for k in _X_KEYS if k in arrays), None)
    if x_key is None:
        raise DataError(
            f"Array archive {path} holds keys {sorted(arrays)}; expected 'x' (or 'X', 'data') with optional "
            "'y', or 'x_train' with optional 'y_train', 'x_val', 'y_val', 'x_test', 'y_test'."
        )
    y_key = next((k for k in _Y_KEYS if k in arrays), None)
    return {"all": Arrays(x=arrays[x_key], y=arrays[y_key] if y_key else None)}


# ----------------------------------------------------------------------------------------- tables


def read_table(path: str | Path, label_column: str | None = None, require_label: bool = True) -> Arrays:
    """Read a CSV/TSV or Parquet table: every column but ``label_column`` must be numeric (a table without
    that column is refused, or with ``require_label=False`` read whole)."""
    try:
        import pandas as pd  # imported here: an optional dependency, slow to import, needed only for tables
    except ImportError as exc:
        raise DataError(
            f"Reading table {path} needs pandas; "
            "expected it installed (pip install 'aekit[tables]')."
        ) from exc

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        reason = " ".join(str(exc).split())   # pandas' messages span lines
        raise DataError(f"Table {path} could not be read ({reason}); expected a well-formed {suffix[1:]} file.") from exc
    y = None
    if label_column is not None and (require_label or label_column in frame.columns):
        if label_column not in frame.columns:
            raise DataError(
                f"Label column {label_column!r} is not in table {path}; "
                f"expected one of {list(map(str, frame.columns))}."
            )
        y = frame[label_column].to_numpy()
        frame = frame.drop(columns=[label_column])
    types = pd.api.types
    bad = [str(c) for c in frame.columns if not (types.is_numeric_dtype(frame[c]) or types.is_bool_dtype(frame[c]))]
    if bad:
        hint = "" if label_column else " (pass label_column= if one of them holds the labels)"
        raise DataError(f"Table {path} has non-numeric columns {bad}; expected only numeric feature columns{hint}.")
    if frame.shape[1] == 0:
        raise DataError(f"Table {path} has no feature columns; expected at least one numeric column.")
    return Arrays(x=frame.to_numpy(dtype=np.float64, na_value=np.nan), y=y, columns=tuple(map(str, frame.columns)))


# ---------------------------------------------------------------------------------- image folders


def read_image_folder(path: str | Path) -> Arrays:
    """Read a folder of same-sized images into uint8 (N, C, H, W); subfolders name the classes.

    Images directly in ``path`` give an unlabelled set; images in subfolders are labelled by the
    subfolder's name (classes sorted by name). All images are grayscale (C=1) unless one of them is
    in colour, in which case all are read as RGB (C=3).
    """
    try:
        from PIL import Image, UnidentifiedImageError  # optional dependency, needed only for image folders
    except ImportError as exc:
        raise DataError(
            f"Reading image folder {path} needs Pillow; "
            "expected it installed (pip install 'aekit[images]')."
        ) from exc

    root = Path(path)

    def images_in(folder: Path) -> list[Path]:
        return sorted(
            p for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )

    top = images_in(root)
    class_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".") and images_in(d)]
    if top and class_dirs:
        raise DataError(
            f"Image folder {root} has images both at its top level and in subfolders; expected one or the other."
        )
    if class_dirs:
        files, labels = [], []
        for label, folder in enumerate(class_dirs):
            found = images_in(folder)
            files += found
            labels += [label] * len(found)
        class_names = tuple(d.name for d in class_dirs)
        y = np.asarray(labels, dtype=np.int64)
    else:
        files, class_names, y = top, None, None
    if not files:
        raise DataError(f"Image folder {root} holds no images; expected files ending in {sorted(IMAGE_SUFFIXES)}.")

    # First pass reads headers only: decide the colour mode and check every size before decoding.
    grey_modes = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L"}
    size, colour = None, False
    for file in files:
        try:
            with Image.open(file) as img:
                if size is None:
                    size, first = img.size, file
                elif img.size != size:
                    raise DataError(
                        f"Image {file} is {img.size[0]}x{img.size[1]} pixels; "
                        f"expected {size[0]}x{size[1]} like {first}."
                    )
                colour = colour or img.mode not in grey_modes
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"Image {file} could not be read ({exc}); expected a valid image file.") from exc
    mode, channels = ("RGB", 3) if colour else ("L", 1)
    width, height = size
    x = np.empty((len(files), height, width, channels), dtype=np.uint8)  # (N, H, W, C) as PIL gives
    for i, file in enumerate(files):
        try:
            with Image.open(file) as img:
                if img.mode.startswith("I"):   # 16-bit grey: scaled to 8 bits (convert() would clip at 255)
                    grey = np.clip(np.rint(np.asarray(img, dtype=np.float64) * (255.0 / 65535.0)), 0, 255)
                    x[i] = grey.astype(np.uint8).reshape(height, width, 1)
                else:
                    x[i] = np.asarray(img.convert(mode), dtype=np.uint8).reshape(height, width, channels)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"Image {file} could not be decoded ({exc}); expected a valid image file.") from exc
    return Arrays(x=x.transpose(0, 3, 1, 2), y=y, class_names=class_names)  # (N, C, H, W)


def read_user_file(path: str | Path, label_column: str | None = None) -> dict[str, Arrays]:
    """Read any supported user file or folder into splits keyed ``all`` or ``train``/``val``/``test``."""
    path = Path(path)
    if path.is_dir():
        return {"all": read_image_folder(path)}
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return {"all": read_npy(path)}
    if suffix == ".npz":
        return read_npz(path)
    if suffix in TABLE_SUFFIXES:
        return {"all": read_table(path, label_column)}
    if suffix == ".amat":
        return {"all": Arrays(x=read_amat(path))}
    raise DataError(
        f"File {path} has an unsupported suffix {suffix!r}; "
        "expected .npy, .npz, .csv, .tsv, .parquet, .amat or an image folder."
    )
