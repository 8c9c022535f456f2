"""Checkpoints: safetensors + JSON, atomic, strict, and clear errors for damaged files."""

from __future__ import annotations

import json

import pytest
import torch

from aekit import CheckpointError, from_pretrained, registry
from aekit.data import Preprocessing
from aekit.io import load_state, save_state
from conftest import tiny_options


@pytest.fixture
def saved(tmp_path):
    model_cls, config_cls = registry.REGISTRY["vae"]
    m = model_cls(config_cls.from_dict(tiny_options(config_cls)))
    m.preprocessing = Preprocessing(input_shape=(1, 8, 8), flatten=False, scale="none")
    m.save_pretrained(tmp_path / "m")
    return m, tmp_path / "m"


def test_round_trip_keeps_preprocessing_and_writes_no_pickle(saved):
    m, path = saved
    meta = json.loads((path / "config.json").read_text())
    assert meta["model_type"] == "vae" and meta["preprocessing"]["input_shape"] == [1, 8, 8]
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = from_pretrained(path)
    assert loaded.preprocessing == m.preprocessing


def test_tampered_weights_are_detected(saved):
    _, path = saved
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        from_pretrained(path)


def test_truncated_weights_are_detected(saved):
    _, path = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        from_pretrained(path)


def test_truncated_weights_without_recorded_checksum(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    del meta["weights_sha256"]
    (path / "config.json").write_text(json.dumps(meta))
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="safetensors"):
        from_pretrained(path)


def test_saving_onto_a_file_is_refused(saved, tmp_path):
    model, _ = saved
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(CheckpointError, match="it is a file"):
        model.save_pretrained(tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "keep me"


def test_corrupt_config(saved):
    _, path = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        from_pretrained(path)


def test_unknown_model_type_and_bad_config(saved):
    _, path = saved
    meta = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**meta, "model_type": "nope"}))
    with pytest.raises(CheckpointError, match="Unknown model 'nope'"):
        from_pretrained(path)
    (path / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "latent_dim": 5}}))
    with pytest.raises(CheckpointError, match=r"do not fit the saved config \(size mismatch for ") as err:
        from_pretrained(path)
    assert "\n" not in str(err.value)


def test_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist"):
        from_pretrained(tmp_path / "absent")
    _, path = saved
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        from_pretrained(path)


def test_trainer_state_loads_with_weights_only(tmp_path):
    save_state(tmp_path / "s.pt", {"epoch": 3, "t": torch.ones(2)})
    assert load_state(tmp_path / "s.pt")["epoch"] == 3
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable trainer state"):
        load_state(tmp_path / "bad.pt")


def test_failed_save_leaves_previous_files(saved, monkeypatch):
    m, path = saved
    before = (path / "model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("aekit.io.save_file", boom)
    with pytest.raises(OSError):
        m.save_pretrained(path)
    assert (path / "model.safetensors").read_bytes() == before
    assert not [p for p in path.iterdir() if p.name.endswith(".tmp")]


def test_overrides_change_the_config_and_keep_the_weights(saved):
    from aekit import ConfigError

    m, path = saved
    loaded = from_pretrained(path, beta=4.0)
    assert loaded.config.beta == 4.0 and loaded.preprocessing == m.preprocessing
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ConfigError, match="only options that keep every weight's shape can change"):
        from_pretrained(path, latent_dim=m.config.latent_dim + 1)
    with pytest.raises(ConfigError, match="Unknown option 'nope'"):
        from_pretrained(path, nope=1)
