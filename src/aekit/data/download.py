"""Finding data files locally and downloading them, verified, into a cache.

Look-up order for ``<dataset>/<file>``: an explicit ``data_dir``, then every folder in the
``AEKIT_DATA`` environment variable (``os.pathsep``-separated), each as ``<dir>/<dataset>/<file>``
or ``<dir>/<file>``; then the cache ``$AEKIT_CACHE/<dataset>/`` (default ``~/.cache/aekit``).
A file found nowhere is downloaded from the dataset's mirrors into the cache: streamed to a
temporary file in the same folder, checked against its published SHA-256 (or MD5), and only then
renamed into place with ``os.replace``, so an interrupted or corrupt download never leaves a file
that looks complete. Local files are checked too, once per process.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aekit.errors import ChecksumError, DataError
from aekit.io import new_file_mode

logger = logging.getLogger("aekit.data")

_CHUNK = 1 << 20  # 1 MiB: streaming chunk for downloads and hashing
_TIMEOUT_S = 60
_STALE_PART_S = 3600  # a .part file untouched this long belongs to no running download

# (resolved path, size, mtime_ns, checksum) of files whose checksum already matched in this process: a
# file verified as one data set's is not thereby taken for another's of the same name and size.
_VERIFIED: set[tuple[str, int, int, tuple[str, str] | None]] = set()


@dataclass(frozen=True)
class FileSpec:
    """A published file: its name, size in bytes and checksums (any may be unknown). ``unpacked``
    describes the file's decompressed form (e.g. ``train-images-idx3-ubyte`` for the ``.gz``), which
    a local folder may hold instead; it is accepted in its place when it matches its own checksum."""

    name: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    unpacked: FileSpec | None = None

    @property
    def checksum(self) -> tuple[str, str] | None:
        """The strongest known checksum as ``(algorithm, hex digest)``."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None


def cache_root() -> Path:
    """The download cache: ``$AEKIT_CACHE``, else ``$XDG_CACHE_HOME/aekit``, else ``~/.cache/aekit``."""
    if os.environ.get("AEKIT_CACHE"):
        return Path(os.environ["AEKIT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "aekit"


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """The user folders searched before the cache: ``data_dir`` then each ``AEKIT_DATA`` entry."""
    dirs = [Path(data_dir).expanduser()] if data_dir is not None else []
    dirs += [Path(p).expanduser() for p in os.environ.get("AEKIT_DATA", "").split(os.pathsep) if p]
    return dirs


def candidates(dataset: str, filename: str, data_dir: str | Path | None = None) -> list[Path]:
    """Every path where ``filename`` of ``dataset`` may already be, in look-up order."""
    paths = []
    for d in search_dirs(data_dir):
        paths += [d / dataset / filename, d / filename]
    paths.append(cache_root() / dataset / filename)
    return paths


def local_copies(dataset: str, spec: FileSpec, data_dir: str | Path | None = None) -> list[tuple[Path, FileSpec]]:
    """Every place ``spec`` may already be, in look-up order, with the spec a file there must match:
    at each location the file itself, then its unpacked form when it has one."""
    forms = (spec,) if spec.unpacked is None else (spec, spec.unpacked)
    return [(path.with_name(form.name), form) for path in candidates(dataset, spec.name, data_dir) for form in forms]


def find_local(dataset: str, spec: FileSpec, data_dir: str | Path | None = None) -> Path | None:
    """The first existing local copy of ``spec`` of the published size, unhashed (a cheap look that
    passes over another data set's file of the same name), or of its unpacked form, hashed (MNIST's
    and Fashion-MNIST's unpacked files have the same sizes); None when there is none."""
    for path, form in local_copies(dataset, spec, data_dir):
        if not path.is_file() or (form.size is not None and path.stat().st_size != form.size):
            continue
        if form is spec:
            return path
        try:
            verify_file(path, form)
            return path
        except ChecksumError:
            continue
    return None


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks so that large files need little memory."""
    h = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, spec: FileSpec) -> None:
    """Raise ChecksumError when ``path`` does not have the published size and checksum of ``spec``."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.checksum)
    if key in _VERIFIED:
        return
    if spec.size is not None and stat.st_size != spec.size:
        raise ChecksumError(
            f"File {path} has {stat.st_size} bytes; "
            f"expected {spec.size}, so it is not the published {spec.name}."
        )
    if spec.checksum is not None:
        algorithm, expected = spec.checksum
        got = file_digest(path, algorithm)
        if got != expected:
            raise ChecksumError(
                f"File {path} has {algorithm.upper()} {got}; "
                f"expected {expected}, so it is not the published {spec.name}."
            )
    _VERIFIED.add(key)


def fetch_file(
    dataset: str,
    spec: FileSpec,
    mirrors: tuple[str, ...] | list[str],
    data_dir: str | Path | None = None,
    download: bool = True,
) -> Path:
    """Return a verified local path for ``spec``, downloading it into the cache when needed.

    Candidates are tried in look-up order; one that is not the published file (another data set's
    file of the same name in a flat folder, a truncated copy) is passed over, and a bad copy in the
    cache, which aekit owns, is downloaded again. When no good copy can be had, the error names the
    first bad one.
    """
    bad: ChecksumError | None = None
    for local, form in local_copies(dataset, spec, data_dir):
        if not local.is_file():
            continue
        try:
            verify_file(local, form)
            return local
        except ChecksumError as exc:
            bad = bad or exc
    looked = ", ".join(str(p) for p in candidates(dataset, spec.name, data_dir))
    names = spec.name if spec.unpacked is None else f"{spec.name} (or {spec.unpacked.name})"
    how = f"pass --data-dir DIR (data_dir=) or set AEKIT_DATA to a folder holding {names} or {dataset}/{spec.name}"
    if not download or not mirrors:
        if bad is not None:
            raise ChecksumError(f"{str(bad).rstrip('.')}; no other copy was found in {looked}; {how}.")
        reason = "downloading is off" if not download else "it has no download address"
        raise DataError(f"Data file {spec.name} of {dataset!r} was not found in {looked} and {reason}; {how}.")
    target = cache_root() / dataset / spec.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Cache folder {target.parent} could not be created ({exc}); expected a writable folder (set AEKIT_CACHE)."
        ) from exc
    for stale in target.parent.glob(f".{spec.name}.*.part"):   # left by a download that was killed
        try:
            if time.time() - stale.stat().st_mtime > _STALE_PART_S:   # a live download keeps writing to its file
                stale.unlink()
        except OSError:
            pass
    failures, mismatch = [], None
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + spec.name
        try:
            _download(url, target, spec)
            return target
        except ChecksumError as exc:  # a bad mirror: try the next one, report it if none is good
            mismatch = mismatch or exc
            failures.append(f"{url} (checksum mismatch)")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            failures.append(f"{url} ({exc})")
            logger.debug("Download of %s failed: %s", url, exc)   # every failure is in the error below
    if mismatch is not None:
        raise mismatch
    if bad is not None:
        raise ChecksumError(f"{str(bad).rstrip('.')}, and no published copy could be downloaded from "
                            f"{'; '.join(failures)}; {how}.")
    raise DataError(
        f"Data file {spec.name} of {dataset!r} was not found in {looked} "
        f"and could not be downloaded from {'; '.join(failures)}; {how}."
    )


def _download(url: str, target: Path, spec: FileSpec) -> None:
    """Stream ``url`` to a temporary file next to ``target``, verify it, then rename it into place."""
    logger.info("Downloading %s to %s", url, target)
    algorithm, expected = spec.checksum or ("sha256", None)
    h = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    os.chmod(tmp, new_file_mode())   # readable as any downloaded file is, not mkstemp's 0600
    try:
        size = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if spec.size is not None and size != spec.size:
            raise ChecksumError(f"Download of {spec.name} from {url} has {size} bytes; expected {spec.size}.")
        if expected is not None and got != expected:
            raise ChecksumError(
                f"Download of {spec.name} from {url} has {algorithm.upper()} {got}; "
                f"expected {expected}."
            )
        os.replace(tmp, target)  # atomic on one file system: readers see no file or the whole file
    finally:
        tmp.unlink(missing_ok=True)
    stat = target.stat()
    _VERIFIED.add((str(target.resolve()), stat.st_size, stat.st_mtime_ns, spec.checksum))


def resolve_file(dataset_name: str, filename: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Return a verified local path of ``filename`` from the catalog dataset ``dataset_name``."""
    from aekit.data.catalog import DATASETS, canonical_name  # the catalog imports this module: import it lazily

    spec = DATASETS.get(canonical_name(dataset_name) or dataset_name)
    if spec is None:
        raise DataError(f"Dataset {dataset_name!r} is not in the catalog; expected one of {sorted(DATASETS)}.")
    file = next((f for f in spec.files if f.name == filename), None)
    if file is None:
        raise DataError(
            f"File {filename!r} is not part of dataset {dataset_name!r}; "
            f"expected one of {[f.name for f in spec.files]}."
        )
    return fetch_file(spec.name, file, spec.mirrors, data_dir=data_dir, download=download)
