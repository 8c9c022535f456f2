"""Shared fixtures: tiny data, the shared MNIST folder, and a small config for any registered model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"verified MNIST files are not present in {SHARED_DATA}")
    return SHARED_DATA


def tiny_options(config_cls, input_shape=(1, 8, 8), latent_dim=2) -> dict:
    """Small options valid for any registered config: only fields the config has are set."""
    fields = config_cls.__dataclass_fields__
    opts = {"input_shape": list(input_shape), "latent_dim": latent_dim, "hidden_dims": [32]}
    if "num_classes" in fields:
        opts["num_classes"] = 10
    return {k: v for k, v in opts.items() if k in fields}


@pytest.fixture
def digits_batch():
    """64 real digits images (1, 8, 8) in [0, 1] with labels."""
    from aekit.data import load_dataset

    d = load_dataset("digits")
    return d.train.x[:64], d.train.y[:64]


@pytest.fixture(autouse=True)
def _one_thread():
    # Every model in the suite is small: one thread avoids OpenMP fork/join and spin-waiting, which
    # cost several times the work itself on these shapes (and far more on a busy 2-core machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def abort_lines(stderr: str) -> str:
    """The lines of a failed torchrun's output that say why a rank died (they scroll out of its tail)."""
    keys = ("what()", "terminate called", "Error", "error:")
    return "\n".join(line for line in stderr.splitlines() if any(k in line for k in keys))[:2000] + "\n...\n"
