"""Saving and loading: ``config.json`` + ``model.safetensors``, and the trainer state for resume.

Nothing a user loads is unpickled: weights are safetensors, the config is JSON, and the resume
state is read with ``torch.load(weights_only=True)``. Every file is written under a temporary name
in the target folder and renamed into place, so a crash never leaves a half-written file behind.
The SHA-256 of the weights is recorded in ``config.json`` so a tampered or truncated file is
detected before it is used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import safetensors
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "trainer_state.pt"
FORMAT_VERSION = 1


def library_version() -> str:
    from . import __version__

    return __version__


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename tmp_path to ``path`` (same folder, so the rename is atomic)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:   # name the file the user asked for, not the temporary one
        raise OSError(exc.errno, f"Cannot write there ({exc.strerror})", str(path)) from None
    os.close(fd)
    os.chmod(tmp, new_file_mode())   # mkstemp makes it private; the file gets the usual permissions
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@functools.lru_cache(maxsize=1)
def new_file_mode() -> int:
    """The permissions a new file gets under the process's umask (mkstemp's own are 0600); read once,
    since reading the umask means setting it for a moment."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``model.load_state_dict(state, strict=True)``; a mismatch raises CheckpointError(``what`` + its first detail)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:   # "Error(s) in loading state_dict for VAE:\n\tsize mismatch for ...: ..."
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0]) if lines else "mismatch"
        detail = detail if len(detail) <= 240 else detail[:237] + "..."
        raise CheckpointError(f"{what} ({detail.rstrip('.')}).") from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_pretrained(model: torch.nn.Module, directory: str | Path, **extra: Any) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` (unwrapped from DDP) into ``directory``."""
    from .registry import name_of

    model = getattr(model, "module", model)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"Cannot save a model into {str(directory)!r}: it is a file, not a folder.")
    directory.mkdir(parents=True, exist_ok=True)
    # safetensors needs contiguous tensors that share no memory.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    preprocessing = getattr(model, "preprocessing", None)
    meta = {
        "format_version": FORMAT_VERSION,
        "aekit_version": library_version(),
        "model_type": name_of(model),
        "config": model.config.to_dict(),
        "preprocessing": preprocessing.to_dict() if preprocessing is not None else None,
        "weights_sha256": sha256_of(directory / WEIGHTS_NAME),
        **extra,
    }
    atomic_write_text(directory / CONFIG_NAME, json.dumps(meta, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not directory.is_dir():
        raise CheckpointError(f"No saved model at {str(directory)!r}: the folder does not exist.")
    if not path.is_file():
        raise CheckpointError(f"{str(directory)!r} is not a saved aekit model: it has no {CONFIG_NAME}.")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).") from None
    if not isinstance(meta, dict) or "model_type" not in meta or "config" not in meta:
        raise CheckpointError(f"{str(path)!r} lacks the model_type and config of an aekit model.")
    return meta


def from_pretrained(directory: str | Path, map_location: str = "cpu", **overrides: Any) -> torch.nn.Module:
    """Rebuild a model through the registry from ``directory`` and load its weights strictly.

    ``overrides`` change fields of the saved config before the weights are loaded: a warm start with
    other options, e.g. ``from_pretrained(d, k=50)`` to fine-tune a saved IWAE with 50 samples. Only
    options that keep every weight's shape can change; one that does not is refused in one sentence."""
    from . import registry
    from .data import Preprocessing
    from .errors import AekitError, ConfigError

    directory = Path(directory)
    meta = read_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{str(directory)!r} has no {WEIGHTS_NAME}.")
    expected = meta.get("weights_sha256")
    if expected and sha256_of(weights) != expected:
        raise CheckpointError(
            f"{str(weights)!r} does not match the checksum recorded in {CONFIG_NAME}: it is corrupt, truncated or was modified."
        )
    try:
        model_cls, config_cls = registry.get(meta["model_type"])
        saved_config = config_cls.from_dict(meta["config"])
    except AekitError as exc:
        raise CheckpointError(f"{str(directory)!r} cannot be rebuilt: {exc}") from None
    if overrides:   # the user's options: their errors are the user's, not the checkpoint's
        config = saved_config.replace(**overrides)
        changed = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        what = f"The weights in {str(weights)!r} do not fit the model with {changed}: only options that keep every weight's shape can change"
    else:
        config, what = saved_config, f"The weights in {str(weights)!r} do not fit the saved config"
    try:
        model = model_cls(config)
    except AekitError as exc:
        if overrides:
            raise ConfigError(str(exc)) from None
        raise CheckpointError(f"{str(directory)!r} cannot be rebuilt: {exc}") from None
    try:
        state = load_file(str(weights), device=map_location)
    except (getattr(safetensors, "SafetensorError", ValueError), OSError, ValueError) as exc:
        raise CheckpointError(f"{str(weights)!r} is not a readable safetensors file ({exc}).") from None
    try:
        load_weights(model, state, what)
    except CheckpointError as exc:
        raise (ConfigError(str(exc)) if overrides else exc) from None
    if meta.get("preprocessing"):
        model.preprocessing = Preprocessing.from_dict(meta["preprocessing"])
    model.eval()
    return model


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Trainer state (optimizer, scheduler, epoch, RNG) for resume: tensors and plain values only."""
    atomic_write(Path(path), lambda p: torch.save(state, p))


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Cannot resume: {str(path)!r} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable state is the same user-facing error
        raise CheckpointError(f"Cannot resume: {str(path)!r} is not a readable trainer state ({type(exc).__name__}).") from None
