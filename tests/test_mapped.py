"""Memory-mapped data (a .npy larger than memory) and the block-wise checks and statistics it needs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit import registry
from aekit.cli import main
from aekit.config import TrainConfig
from aekit.data import Preprocessing, load_dataset
from aekit.data import chunked, mapped
from aekit.data.splits import Split, is_binary
from aekit.errors import ConfigError, DataError
from aekit.io import from_pretrained
from aekit.train import fit


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of a few rows, so that every block-wise reduction runs over many blocks."""
    monkeypatch.setattr(chunked, "BLOCK_BYTES", 40)


def test_mapped_splits_are_contiguous_views_of_one_mapping_and_never_write_the_file(tmp_path):
    x = np.random.default_rng(0).random((100, 8), dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    d = load_dataset(str(path), mmap=True, validation=10, test_fraction=0.2)
    assert d.memory_mapped and "memory_mapped=True" in repr(d)
    assert (len(d.train), len(d.val), len(d.test)) == (70, 10, 20)
    for split, rows in ((d.train, x[:70]), (d.val, x[70:80]), (d.test, x[80:])):
        assert np.array_equal(split.x.numpy(), rows)
    # one buffer holds all three: the splits are views of the mapped array, not copies
    assert d.train.x.untyped_storage().data_ptr() == d.test.x.untyped_storage().data_ptr()
    assert d.test.x.data_ptr() - d.train.x.data_ptr() == 80 * 8 * 4
    d.train.x[0] = 7.0  # copy-on-write: the file keeps its values
    assert np.array_equal(np.load(path), x)


def test_mapped_image_layouts_are_views(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "hw.npy", rng.random((12, 5, 6), dtype=np.float32))
    np.save(tmp_path / "hwc.npy", rng.random((12, 5, 6, 3), dtype=np.float32))
    hw = load_dataset(str(tmp_path / "hw.npy"), mmap=True, validation=0, test_fraction=0.0)
    hwc = load_dataset(str(tmp_path / "hwc.npy"), mmap=True, validation=0, test_fraction=0.0)
    assert hw.shape == (1, 5, 6) and hwc.shape == (3, 5, 6)
    assert torch.equal(hwc.train.x, torch.from_numpy(np.load(tmp_path / "hwc.npy")).permute(0, 3, 1, 2))
    assert hw.val is None and hw.test is None


def test_training_on_mapped_data_equals_training_in_memory(tmp_path):
    x = np.random.default_rng(2).random((64, 10), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    d = load_dataset(str(tmp_path / "x.npy"), mmap=True, validation=0, test_fraction=0.0)
    model_cls, config_cls = registry.get("vae")
    weights = []
    for data in (d.train.x, torch.from_numpy(x.copy())):
        torch.manual_seed(0)
        model = model_cls(config_cls(input_shape=(10,), latent_dim=2, hidden_dims=(8,), output_bias="data"))
        fit(model, data, config=TrainConfig(epochs=2, batch_size=16, progress=False))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_mapping_is_chosen_by_size_and_refused_where_it_cannot_work(tmp_path, monkeypatch):
    np.save(tmp_path / "f.npy", np.zeros((50, 4), dtype=np.float32))
    np.save(tmp_path / "u8.npy", np.zeros((50, 4), dtype=np.uint8))
    np.savez(tmp_path / "a.npz", x=np.zeros((50, 4), dtype=np.float32))
    assert not load_dataset(str(tmp_path / "f.npy")).memory_mapped  # small: read into memory
    monkeypatch.setattr(mapped, "usable_memory", lambda: 1000)  # 800 bytes as float32 > half of 1000
    assert load_dataset(str(tmp_path / "f.npy")).memory_mapped
    assert not load_dataset(str(tmp_path / "f.npy"), mmap=False).memory_mapped
    with pytest.raises(DataError, match="cannot be memory-mapped for training; save it as float32"):
        load_dataset(str(tmp_path / "u8.npy"))
    assert load_dataset(str(tmp_path / "u8.npy"), mmap=False).train.x.dtype == torch.float32
    with pytest.raises(DataError, match="memory mapping needs float32"):
        load_dataset(str(tmp_path / "u8.npy"), mmap=True)
    with pytest.raises(DataError, match="is not one"):
        load_dataset(str(tmp_path / "a.npz"), mmap=True)
    with pytest.raises(DataError, match="named data set 'digits'"):
        load_dataset("digits", mmap=True)
    with pytest.raises(ConfigError, match="mmap='yes'"):
        load_dataset(str(tmp_path / "f.npy"), mmap="yes")
    bad = np.zeros((50, 4), dtype=np.float32)
    bad[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="1 NaN or infinite"):
        load_dataset(str(tmp_path / "nan.npy"), mmap=True)


def test_blockwise_statistics_match_whole_tensor_ones(tiny_blocks):
    x = torch.randn(37, 3, 2, dtype=torch.float32) * 3 + 1
    flat = x.reshape(37, -1).double()
    pre = Preprocessing(input_shape=(3, 2), scale="standardize").fit(x)
    assert torch.allclose(torch.tensor(pre.mean, dtype=torch.float64), flat.mean(0), atol=1e-12)
    assert torch.allclose(torch.tensor(pre.std, dtype=torch.float64), flat.std(0, correction=0), atol=1e-12)
    pre = Preprocessing(input_shape=(3, 2), scale="minmax").fit(x)
    assert torch.allclose(torch.tensor(pre.mean, dtype=torch.float64), flat.amin(0))
    assert torch.allclose(torch.tensor(pre.std, dtype=torch.float64), flat.amax(0) - flat.amin(0))
    assert chunked.value_range(x) == (float(x.min()), float(x.max()))
    y = x.clone()
    y[5, 1, 0], y[30, 0, 1] = float("inf"), float("nan")
    assert chunked.count_nonfinite(y) == 2 and chunked.count_nonfinite(x) == 0
    b = (x > 1).float()
    assert is_binary(Split(b)) and not is_binary(Split(b), Split(x))
    b[36, 2, 1] = 0.5  # the last row of the last block counts too
    assert not is_binary(Split(b))


def test_cli_records_the_mapping_and_evaluate_reads_the_same_split(tmp_path, capsys):
    x = np.random.default_rng(3).random((200, 6), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "run"
    assert main(["train", "--model", "ae", "--data", str(tmp_path / "x.npy"), "--mmap", "--epochs", "1",
                 "--latent-dim", "2", "--hidden-dims", "8", "--likelihood", "gaussian", "--out", str(out),
                 "--no-progress"]) == 0
    assert "(memory-mapped)" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    assert info["memory_mapped"] is True and (info["n_train"], info["n_val"]) == (144, 16)
    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev"), "--no-figures"]) == 0
    metrics = json.loads((tmp_path / "ev" / "evaluation.json").read_text())["metrics"]
    model = from_pretrained(out / "best").eval()
    with torch.no_grad():  # the test split is the last 40 rows, as in training (a random split would differ)
        recon = model.reconstruct(torch.from_numpy(x[160:]))
    assert metrics["n"] == 40
    assert metrics["mse"] == pytest.approx(float((recon - torch.from_numpy(x[160:])).square().mean()), rel=1e-5)
    # a test share given to train is the one evaluate and --resume use (the random split of a file read whole)
    out = tmp_path / "half"
    assert main(["train", "--model", "ae", "--data", str(tmp_path / "x.npy"), "--test-fraction", "0.5", "--epochs", "1",
                 "--latent-dim", "2", "--hidden-dims", "8", "--likelihood", "gaussian", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["memory_mapped"] is False
    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev2"), "--no-figures"]) == 0
    assert json.loads((tmp_path / "ev2" / "evaluation.json").read_text())["metrics"]["n"] == 100
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    assert ": 90 train, 10 validation" in capsys.readouterr().out  # 100 test rows held out, as in the first sitting


def test_run_data_is_read_as_recorded_and_resume_refuses_another_split(tmp_path, capsys, monkeypatch):
    x = np.random.default_rng(4).random((200, 6), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.chdir(tmp_path)
    common = ["--epochs", "1", "--latent-dim", "2", "--hidden-dims", "8", "--likelihood", "gaussian", "--no-progress"]
    assert main(["train", "--model", "ae", "--data", "x.npy", "--mmap", "--test-fraction", "0.3", "--validation",
                 "0.5", "--out", "run", *common]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["memory_mapped"], info["test_fraction"], info["validation"]) == (True, 0.3, 0.5)
    # the same file named by another path is the run's data: read and split as recorded (the last 60 rows)
    for data in ("./x.npy", str(tmp_path / "x.npy")):
        out = tmp_path / f"ev{len(data)}"
        assert main(["evaluate", "run", "--data", data, "--out", str(out), "--no-figures"]) == 0
        assert json.loads((out / "evaluation.json").read_text())["metrics"]["n"] == 60
    assert main(["evaluate", "run", "--split", "val", "--out", "evv", "--no-figures"]) == 0
    assert json.loads((tmp_path / "evv" / "evaluation.json").read_text())["metrics"]["n"] == 70
    capsys.readouterr()
    for flag in (["--no-mmap"], ["--test-fraction", "0.2"], ["--validation", "0.1"]):
        assert main(["train", "--resume", "--out", "run", "--epochs", "2", *flag]) == 2
        err = capsys.readouterr().err.strip()
        assert "would split it otherwise" in err and "\n" not in err, err
    # a run recorded before the mapping was: its data was read whole, and stays so on any machine
    del info["memory_mapped"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(info))
    monkeypatch.setattr(mapped, "usable_memory", lambda: 1000)
    assert main(["train", "--resume", "--out", "run", "--epochs", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ": 70 train, 70 validation" in out and "memory-mapped" not in out


def test_mapping_refuses_fortran_order_and_foreign_byte_order(tmp_path):
    x = np.random.default_rng(5).random((30, 4)).astype(np.float32)
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    with pytest.raises(DataError, match="Fortran"):
        load_dataset(str(tmp_path / "f.npy"), mmap=True)
    np.save(tmp_path / "be.npy", x.astype(">f4"))
    with pytest.raises(DataError, match="big-endian float32"):
        load_dataset(str(tmp_path / "be.npy"), mmap=True)
    d = load_dataset(str(tmp_path / "be.npy"), mmap=False, validation=0, test_fraction=0.0)  # converted in memory
    assert torch.equal(d.train.x, torch.from_numpy(x))
    with pytest.raises(DataError, match="got no rows"):
        Preprocessing(input_shape=(4,), scale="minmax").fit(torch.zeros(0, 4))


def test_memory_limit_of_a_container_counts(tmp_path, monkeypatch):
    (tmp_path / "v2").write_text("max\n")
    (tmp_path / "v1").write_text("9223372036854771712\n")
    (tmp_path / "job").write_text("1000\n")
    monkeypatch.setattr(mapped, "cgroup_limit_files", lambda: [tmp_path / "v2", tmp_path / "v1", tmp_path / "gone"])
    machine = mapped.usable_memory()
    assert machine is not None and machine > 10**6  # no limit set: the machine's memory
    monkeypatch.setattr(mapped, "cgroup_limit_files", lambda: [tmp_path / "v2", tmp_path / "job"])
    assert mapped.usable_memory() == 1000
    np.save(tmp_path / "f.npy", np.zeros((50, 4), dtype=np.float32))  # 800 bytes > half of the 1000 allowed
    assert load_dataset(str(tmp_path / "f.npy")).memory_mapped


def test_mapped_blocks_are_prefetched_in_one_request_each(tmp_path, monkeypatch, tiny_blocks):
    from aekit.data import pages

    np.save(tmp_path / "x.npy", np.ones((8, 1024), dtype=np.float32))  # rows of one 4 KiB page after a 128-byte header
    calls = []
    monkeypatch.setattr(pages, "_advise", lambda handle, option, start, length: calls.append((option, start, length)))
    d = load_dataset(str(tmp_path / "x.npy"), mmap=True, validation=0, test_fraction=0.0)
    assert calls[0][0] == getattr(__import__("mmap"), "MADV_RANDOM", None)  # the whole mapping, advised once
    calls.clear()
    monkeypatch.setattr(chunked, "BLOCK_BYTES", 3 * 4096)  # three rows per block
    assert chunked.count_nonfinite(d.train.x) == 0
    header = 128
    want = [(header + a * 4096 - (header + a * 4096) % 4096, header + b * 4096) for a, b in ((0, 3), (3, 6), (6, 8))]
    assert [(s, s + n) for _, s, n in calls] == want
    pages.prefetch(torch.ones(5, 3))  # memory that is not a mapping: nothing asked
    assert len(calls) == 3
