"""Tests of aekit.data: readers, look-up and download, splits, preprocessing and batches.

Everything runs on small synthetic files in tmp_path; the real MNIST files are used when the
development checkout has them in ../shared/data and skipped otherwise.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.data import DATASETS, Preprocessing, batches, list_datasets, load_dataset, num_batches, resolve_file
from aekit.data import download as dl
from aekit.data.download import FileSpec, fetch_file
from aekit.data.formats import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_amat, read_idx, write_idx
from aekit.errors import ChecksumError, ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Keep the user's cache and AEKIT_DATA out of every test."""
    monkeypatch.setenv("AEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AEKIT_DATA", raising=False)
    dl._VERIFIED.clear()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------ digits


def test_digits_shapes_splits_and_determinism():
    d = load_dataset("digits")
    assert (len(d.train), len(d.val), len(d.test)) == (1258, 180, 359)
    assert d.shape == (1, 8, 8) and d.train.x.shape == (1258, 1, 8, 8)
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) == 1.0
    assert d.num_classes == 10 and set(d.train.y.tolist()) == set(range(10))
    assert not d.is_binary
    again = load_dataset("digits")
    assert torch.equal(d.train.x, again.train.x) and torch.equal(d.test.y, again.test.y)
    no_val = load_dataset("digits", validation=0)
    assert no_val.val is None and len(no_val.train) == 1438 and torch.equal(no_val.test.x, d.test.x)
    assert len(load_dataset("Digits", seed=1).train) == 1258


# --------------------------------------------------------------------------------------------- IDX


def test_idx_round_trip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", labels)
    assert np.array_equal(read_idx(tmp_path / "i.gz", IDX_IMAGES_MAGIC), images)
    assert np.array_equal(read_idx(tmp_path / "l.gz", IDX_LABELS_MAGIC), labels)


def test_idx_bad_magic_and_truncation(tmp_path):
    write_idx(tmp_path / "l.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="magic number"):
        read_idx(tmp_path / "l.gz", IDX_IMAGES_MAGIC)
    # Header declares 10 images of 4x4 but only 3 follow.
    header = np.array([IDX_IMAGES_MAGIC, 10, 4, 4], dtype=">u4").tobytes()
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(header + bytes(3 * 16))
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.gz", IDX_IMAGES_MAGIC)
    # A gzip stream cut in the middle.
    write_idx(tmp_path / "full.gz", np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8))
    (tmp_path / "cut.gz").write_bytes((tmp_path / "full.gz").read_bytes()[:2000])
    with pytest.raises(DataError):
        read_idx(tmp_path / "cut.gz", IDX_IMAGES_MAGIC)
    (tmp_path / "junk.gz").write_bytes(b"not a gzip file at all")
    with pytest.raises(DataError):
        read_idx(tmp_path / "junk.gz")


def _fake_idx_dataset(folder: Path, n_train=30, n_test=10) -> tuple[FileSpec, ...]:
    """Write MNIST-named IDX files and return their FileSpecs (size and SHA-256)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    return tuple(FileSpec(p.name, p.stat().st_size, sha256=sha256(p.read_bytes())) for p in sorted(folder.iterdir()))


def test_idx_dataset_validation_from_end(tmp_path, monkeypatch):
    files = _fake_idx_dataset(tmp_path / "data" / "mnist")
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], files=files, mirrors=()))
    d = load_dataset("mnist", data_dir=tmp_path / "data", download=False, validation=5)
    assert (len(d.train), len(d.val), len(d.test)) == (25, 5, 10)
    assert d.val.y.tolist() == [(25 + i) % 10 for i in range(5)]  # the LAST 5 training items
    assert 0.0 <= float(d.train.x.min()) and float(d.train.x.max()) <= 1.0
    assert d.class_names == tuple(str(i) for i in range(10))
    assert len(load_dataset("mnist", data_dir=tmp_path / "data", download=False, validation=0).train) == 30
    assert len(load_dataset("mnist", data_dir=tmp_path / "data", download=False, validation=0.1).val) == 3
    with pytest.raises(ConfigError):
        load_dataset("mnist", data_dir=tmp_path / "data", download=False)  # default 10,000 > 30 items
    with pytest.raises(DataError, match=r"test_fraction=0.1 \(--test-fraction\) was given for 'mnist', which has a fixed test split"):
        load_dataset("mnist", data_dir=tmp_path / "data", download=False, validation=5, test_fraction=0.1)


def test_unpacked_idx_copies_are_accepted_and_checked(tmp_path, monkeypatch):
    packed = _fake_idx_dataset(tmp_path / "gz", n_train=12, n_test=4)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    files = []
    for spec in packed:
        raw = gzip.decompress((tmp_path / "gz" / spec.name).read_bytes())
        (plain_dir / spec.name.removesuffix(".gz")).write_bytes(raw)
        files.append(dataclasses.replace(spec, unpacked=FileSpec(spec.name.removesuffix(".gz"), len(raw),
                                                                 sha256=sha256(raw))))
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], files=tuple(files), mirrors=()))
    a = load_dataset("mnist", data_dir=plain_dir, download=False, validation=2)
    b = load_dataset("mnist", data_dir=tmp_path / "gz", download=False, validation=2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    monkeypatch.setenv("AEKIT_DATA", str(plain_dir))
    assert {r["name"]: r for r in list_datasets()}["mnist"]["location"] == str(plain_dir)
    labels = plain_dir / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + b"\x09")  # same size, other content: refused by its checksum
    assert not {r["name"]: r for r in list_datasets()}["mnist"]["present"]  # unpacked copies are hashed to be listed
    with pytest.raises(ChecksumError, match="not the published t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_dir=plain_dir, download=False, validation=2)
    labels.unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz \(or t10k-labels-idx1-ubyte\)"):
        load_dataset("mnist", data_dir=plain_dir, download=False, validation=2)


# -------------------------------------------------------------------------------------------- amat


def test_amat_fast_and_fallback(tmp_path):
    x = np.random.default_rng(0).integers(0, 2, size=(6, 784))
    (tmp_path / "b.amat").write_text("".join(" ".join(map(str, row)) + "\n" for row in x))
    assert np.array_equal(read_amat(tmp_path / "b.amat"), x.astype(np.float32))
    (tmp_path / "f.amat").write_text("0.5 1.25\n3 4\n")
    assert np.array_equal(read_amat(tmp_path / "f.amat"), np.array([[0.5, 1.25], [3, 4]], dtype=np.float32))
    (tmp_path / "ragged.amat").write_text("0 1 1\n1 0\n")
    with pytest.raises(DataError):
        read_amat(tmp_path / "ragged.amat")


# -------------------------------------------------------------------------------------- user files


def _rows(split):
    return {tuple(r) for r in split.x.reshape(len(split), -1).tolist()}


def test_npy_table_split(tmp_path):
    x = np.arange(100, dtype=np.float64).reshape(20, 5)
    np.save(tmp_path / "x.npy", x)
    d = load_dataset(str(tmp_path / "x.npy"))
    assert (len(d.train), len(d.val), len(d.test)) == (14, 2, 4)
    assert d.shape == (5,) and d.train.y is None and d.num_classes is None
    assert len(_rows(d.train) | _rows(d.val) | _rows(d.test)) == 20  # disjoint and complete
    assert torch.equal(d.test.x, load_dataset(str(tmp_path / "x.npy")).test.x)


def test_npy_images_uint8(tmp_path):
    np.save(tmp_path / "img.npy", np.full((10, 6, 7), 255, dtype=np.uint8))
    d = load_dataset(str(tmp_path / "img.npy"), validation=0, test_fraction=0.0)
    assert d.shape == (1, 6, 7) and d.test is None and d.val is None and d.is_binary
    assert float(d.train.x.max()) == 1.0


def test_npz_layouts(tmp_path):
    x = np.random.default_rng(0).random((30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "a.npz", x=x, y=y)
    d = load_dataset(str(tmp_path / "a.npz"))
    assert d.num_classes == 3 and len(d.train) + len(d.val) + len(d.test) == 30
    np.savez(tmp_path / "b.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    d = load_dataset(str(tmp_path / "b.npz"))
    assert (len(d.train), len(d.val), len(d.test)) == (18, 2, 10)
    assert torch.equal(d.test.x, torch.from_numpy(x[20:]))
    with pytest.raises(DataError, match="has its own splits"):
        load_dataset(str(tmp_path / "b.npz"), test_fraction=0.3)
    np.savez(tmp_path / "t.npz", x_train=x[:20], y_train=y[:20])   # no test split: a fraction would be ignored
    with pytest.raises(DataError, match=r"its own splits \(x_train\)"):
        load_dataset(str(tmp_path / "t.npz"), test_fraction=0.3)
    np.savez(tmp_path / "c.npz", features=x)
    with pytest.raises(DataError, match="features"):
        load_dataset(str(tmp_path / "c.npz"))


def test_csv_and_parquet(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10) * 2, "kind": ["cat", "dog"] * 5})
    frame.to_csv(tmp_path / "t.csv", index=False)
    d = load_dataset(str(tmp_path / "t.csv"), label_column="kind", validation=0, test_fraction=0.0)
    assert d.shape == (2,) and d.class_names == ("cat", "dog") and d.num_classes == 2
    assert d.train.y.tolist() == [0, 1] * 5 and d.train.x[:, 1].tolist() == [float(2 * i) for i in range(10)]
    with pytest.raises(DataError, match="non-numeric"):
        load_dataset(str(tmp_path / "t.csv"))
    with pytest.raises(DataError, match="missing"):
        load_dataset(str(tmp_path / "t.csv"), label_column="missing")
    frame.assign(kind=np.arange(10) % 4).to_parquet(tmp_path / "t.parquet")
    d = load_dataset(str(tmp_path / "t.parquet"), label_column="kind")
    assert d.num_classes == 4 and d.class_names is None and d.train.y.dtype == torch.int64


def test_image_folder(tmp_path):
    from PIL import Image

    for label in ("ones", "zeros"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            value = 255 if label == "ones" else 0
            Image.fromarray(np.full((5, 4), value, dtype=np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    d = load_dataset(str(tmp_path / "imgs"), validation=0, test_fraction=0.0)
    assert d.shape == (1, 5, 4) and d.class_names == ("ones", "zeros") and d.is_binary
    assert sorted(d.train.y.tolist()) == [0, 0, 0, 1, 1, 1]
    assert torch.all(d.train.x[d.train.y == 0] == 1.0) and torch.all(d.train.x[d.train.y == 1] == 0.0)
    Image.fromarray(np.zeros((5, 4, 3), dtype=np.uint8)).save(tmp_path / "imgs" / "zeros" / "rgb.png")
    assert load_dataset(str(tmp_path / "imgs")).shape == (3, 5, 4)  # one colour image: all read as RGB
    Image.fromarray(np.zeros((6, 4), dtype=np.uint8)).save(tmp_path / "imgs" / "zeros" / "big.png")
    with pytest.raises(DataError, match="expected 4x5"):
        load_dataset(str(tmp_path / "imgs"))


def test_sixteen_bit_images_are_scaled_and_damaged_files_refused(tmp_path):
    from PIL import Image

    (tmp_path / "deep").mkdir()
    for i, value in enumerate((0, 32768, 65535)):
        Image.fromarray(np.full((4, 3), value, dtype=np.uint16)).save(tmp_path / "deep" / f"{i}.png")
    x = load_dataset(str(tmp_path / "deep"), validation=0, test_fraction=0.0).train.x
    assert sorted(round(float(v), 3) for v in x.reshape(3, -1)[:, 0]) == [0.0, 0.502, 1.0]   # not clipped to white
    png = (tmp_path / "deep" / "1.png").read_bytes()
    (tmp_path / "deep" / "1.png").write_bytes(png[: len(png) // 2])
    with pytest.raises(DataError, match=r"1\.png could not be"):
        load_dataset(str(tmp_path / "deep"))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match=r"bad\.npz could not be read"):
        load_dataset(str(tmp_path / "bad.npz"))


def test_nan_and_bad_shapes(tmp_path):
    x = np.ones((10, 3))
    x[2, 1] = np.nan
    x[4, 0] = np.inf
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(DataError, match=r"nan\.npy has 2 NaN"):
        load_dataset(str(tmp_path / "nan.npy"))
    np.save(tmp_path / "vec.npy", np.ones(10))
    with pytest.raises(DataError, match="shape"):
        load_dataset(str(tmp_path / "vec.npy"))
    np.savez(tmp_path / "ylen.npz", x=np.ones((10, 3)), y=np.arange(9))
    with pytest.raises(DataError, match="labels"):
        load_dataset(str(tmp_path / "ylen.npz"))


def test_unknown_name():
    with pytest.raises(DataError, match="binarized-mnist"):
        load_dataset("no-such-dataset")
    with pytest.raises(ConfigError):
        load_dataset("digits", validation=-1)


# ---------------------------------------------------------------------------- look-up and download


def test_download_from_file_url_is_atomic_and_verified(tmp_path, monkeypatch):
    server = tmp_path / "server"
    server.mkdir()
    payload = b"some bytes" * 1000
    (server / "f.bin").write_bytes(payload)
    spec = FileSpec("f.bin", len(payload), sha256=sha256(payload))
    replaced = []
    real_replace = dl.os.replace
    monkeypatch.setattr(dl.os, "replace", lambda a, b: (replaced.append((Path(a), Path(b))), real_replace(a, b)))
    path = fetch_file("toy", spec, [server.as_uri() + "/"])
    assert path == tmp_path / "cache" / "toy" / "f.bin" and path.read_bytes() == payload
    (tmp_file, final), = replaced
    assert tmp_file.parent == final.parent and tmp_file != final  # renamed from a temp file in the same folder
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]
    assert fetch_file("toy", spec, [], download=False) == path  # found in the cache now
    old, live = path.parent / ".g.bin.abc.part", path.parent / ".g.bin.def.part"   # a killed and a running download
    old.write_bytes(b"x")
    live.write_bytes(b"y")
    os.utime(old, (0, 0))
    (server / "g.bin").write_bytes(payload)
    fetch_file("toy", FileSpec("g.bin", len(payload), sha256=sha256(payload)), [server.as_uri()])
    assert not old.exists() and live.exists()


def test_checksum_mismatch_leaves_nothing(tmp_path):
    server = tmp_path / "server"
    server.mkdir()
    (server / "f.bin").write_bytes(b"tampered")
    spec = FileSpec("f.bin", md5=hashlib.md5(b"original").hexdigest())
    with pytest.raises(ChecksumError, match=spec.md5):
        fetch_file("toy", spec, [server.as_uri()])
    assert list((tmp_path / "cache" / "toy").iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset")
            return super().read(4)

    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: Broken(b"abcdefgh"))
    with pytest.raises(DataError, match="could not be downloaded"):
        fetch_file("toy", FileSpec("f.bin"), ["https://example.invalid/a/", "https://example.invalid/b/"])
    assert list((tmp_path / "cache" / "toy").iterdir()) == []


def test_a_verified_file_is_not_taken_for_another_data_sets_file(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"mnist")
    mine, other = FileSpec("f.bin", 5, sha256=sha256(b"mnist")), FileSpec("f.bin", 5, sha256=sha256(b"other"))
    assert fetch_file("a", mine, [], data_dir=tmp_path, download=False) == tmp_path / "f.bin"
    with pytest.raises(ChecksumError):   # same path, size and time, but checked against another checksum
        fetch_file("b", other, [], data_dir=tmp_path, download=False)


def test_offline_lookup_order_and_errors(tmp_path, monkeypatch):
    spec = FileSpec("f.bin", sha256=sha256(b"good"))
    with pytest.raises(DataError, match="AEKIT_DATA"):
        fetch_file("toy", spec, ["https://example.invalid/"], download=False)
    flat, nested = tmp_path / "flat", tmp_path / "nested" / "toy"
    flat.mkdir()
    nested.mkdir(parents=True)
    (flat / "f.bin").write_bytes(b"good")
    (nested / "f.bin").write_bytes(b"good")
    monkeypatch.setenv("AEKIT_DATA", str(flat))
    assert fetch_file("toy", spec, [], download=False) == flat / "f.bin"  # <AEKIT_DATA>/<file>
    assert fetch_file("toy", spec, [], data_dir=tmp_path / "nested", download=False) == nested / "f.bin"
    (flat / "f.bin").write_bytes(b"bad!")
    with pytest.raises(ChecksumError, match="not the published f.bin; no other copy was found"):
        fetch_file("toy", spec, [], download=False)
    assert (flat / "f.bin").read_bytes() == b"bad!"  # a user's file is never deleted
    # Another data set's file of the same name in an earlier folder is passed over, not trusted or blamed.
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path / "nested"))
    assert fetch_file("toy", spec, [], data_dir=flat, download=False) == nested / "f.bin"
    # A bad copy in the cache (aekit's own folder) is downloaded again.
    monkeypatch.delenv("AEKIT_DATA")
    server = tmp_path / "server"
    server.mkdir()
    (server / "f.bin").write_bytes(b"good")
    (tmp_path / "cache" / "toy").mkdir(parents=True)
    (tmp_path / "cache" / "toy" / "f.bin").write_bytes(b"oops")
    assert fetch_file("toy", spec, [server.as_uri()]).read_bytes() == b"good"


def test_resolve_file_and_list_datasets_with_aekit_data(tmp_path, monkeypatch):
    files = _fake_idx_dataset(tmp_path / "data" / "mnist", n_train=12, n_test=4)
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], files=files))
    monkeypatch.setenv("AEKIT_DATA", str(tmp_path / "data"))
    path = resolve_file("mnist", "t10k-labels-idx1-ubyte.gz", download=False)
    assert path == tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    rows = {r["name"]: r for r in list_datasets()}
    assert rows["mnist"]["present"] and rows["mnist"]["location"] == str(tmp_path / "data" / "mnist")
    assert rows["digits"]["present"] and not rows["kmnist"]["present"] and rows["kmnist"]["location"] is None
    with pytest.raises(DataError):
        resolve_file("mnist", "nope.gz")
    labels = tmp_path / "data" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-1])      # not the published size: not counted as present
    assert not {r["name"]: r for r in list_datasets()}["mnist"]["present"]
    with pytest.raises(ConfigError, match="seed="):
        load_dataset("digits", seed=1.5)
    with pytest.raises(DataError, match="named data set 'digits', which has its own labels"):
        load_dataset("digits", label_column="y")
    d = load_dataset("digits", validation=np.float32(0.25), test_fraction=np.float32(0.2))   # numpy scalars: fractions
    assert d.val.x.shape[0] == round(0.25 * (1797 - round(0.2 * 1797)))
    with pytest.raises(DataError, match="leaves no digits to train on"):
        load_dataset("digits", test_fraction=0.9)


# ----------------------------------------------------------------------------------- preprocessing


def test_preprocessing_round_trip():
    x = torch.rand(50, 1, 4, 4) * 3 + 1
    x[:, 0, 0, 0] = 2.0  # a constant feature must not divide by zero
    for scale in ("standardize", "minmax"):
        p = Preprocessing(input_shape=(1, 4, 4), scale=scale).fit(x)
        z = p.apply(x)
        assert z.shape == (50, 16) and p.output_shape == (16,) and torch.isfinite(z).all()
        if scale == "standardize":
            assert torch.allclose(z[:, 1:].mean(0), torch.zeros(15), atol=1e-5)
        else:
            assert float(z.min()) == 0.0 and abs(float(z.max()) - 1.0) < 1e-6
        assert torch.allclose(p.invert(z), x, atol=1e-5)
        q = Preprocessing.from_dict(json.loads(json.dumps(p.to_dict())))
        assert q == p and torch.equal(q.apply(x), z)
    p = Preprocessing(input_shape=(1, 4, 4), flatten=False, binarize="threshold")
    assert p.output_shape == (1, 4, 4) and set(p.fit(x / 4).apply(x / 4).unique().tolist()) <= {0.0, 1.0}


def test_preprocessing_errors():
    p = Preprocessing(input_shape=(1, 28, 28))
    with pytest.raises(DataError, match=r"\(10, 27, 28\).*'N', 1, 28, 28"):
        p.apply(torch.zeros(10, 27, 28))
    assert p.apply(torch.zeros(3, 784)).shape == (3, 784)  # already flat is accepted
    with pytest.raises(ConfigError):
        Preprocessing(input_shape=(4,), scale="robust")
    with pytest.raises(ConfigError):
        Preprocessing(input_shape=(4,), scale="standardize", binarize="dynamic")
    with pytest.raises(ConfigError, match="colour"):
        Preprocessing.from_dict({"input_shape": [4], "colour": True})
    with pytest.raises(ConfigError, match="not fitted"):
        Preprocessing(input_shape=(4,), scale="minmax").apply(torch.zeros(2, 4))


# ----------------------------------------------------------------------------------------- batches


def test_batches_cover_every_index_once_and_are_reproducible():
    x = torch.arange(23, dtype=torch.float32).unsqueeze(1)  # (23, 1): the value is the index
    y = torch.arange(23)
    out = list(batches(x, y, batch_size=5, generator=torch.Generator().manual_seed(3)))
    assert len(out) == num_batches(23, 5) == 5 and [len(b[0]) for b in out] == [5, 5, 5, 5, 3]
    seen = torch.cat([xb[:, 0] for xb, _ in out]).long()
    assert sorted(seen.tolist()) == list(range(23)) and seen.tolist() != list(range(23))
    assert torch.equal(torch.cat([yb for _, yb in out]), seen)
    again = list(batches(x, y, batch_size=5, generator=torch.Generator().manual_seed(3)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(out, again))
    dropped = list(batches(x, batch_size=5, drop_last=True, shuffle=False))
    assert len(dropped) == num_batches(23, 5, drop_last=True) == 4 and dropped[1][1] is None
    assert torch.equal(dropped[1][0][:, 0], torch.arange(5.0, 10.0))
    with pytest.raises(ConfigError):
        num_batches(10, 0)


def test_dynamic_binarization():
    x = torch.full((64, 10), 0.5)
    g = torch.Generator().manual_seed(0)
    e1 = torch.cat([xb for xb, _ in batches(x, batch_size=16, generator=g, shuffle=False, binarize_dynamic=True)])
    e2 = torch.cat([xb for xb, _ in batches(x, batch_size=16, generator=g, shuffle=False, binarize_dynamic=True)])
    assert set(e1.unique().tolist()) == {0.0, 1.0} and not torch.equal(e1, e2)
    assert abs(float(e1.mean()) - 0.5) < 0.1


# ------------------------------------------------------------------------------- real shared data


def _shared(name: str) -> Path:
    if not (SHARED_DATA / name).is_dir():
        pytest.skip(f"the verified {name} files are not in {SHARED_DATA} (the development checkout's shared data)")
    return SHARED_DATA


def test_real_mnist():
    d = load_dataset("mnist", data_dir=_shared("mnist"), download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (50_000, 10_000, 10_000)
    assert d.train.x.shape == (50_000, 1, 28, 28) and d.test.y.shape == (10_000,)
    assert set(d.train.y.unique().tolist()) == set(range(10)) and set(d.test.y.unique().tolist()) == set(range(10))
    assert float(d.train.x.min()) == 0.0 and float(d.train.x.max()) == 1.0
    assert len(load_dataset("mnist", data_dir=SHARED_DATA, download=False, validation=0).train) == 60_000


def test_real_mnist_unpacked_copies_match_the_published_files(tmp_path):
    """The catalog's sizes and SHA-256 of the decompressed IDX files agree with the verified .gz files."""
    folder = _shared("mnist") / "mnist"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((folder / f"{name}.gz").read_bytes()))
    a, b = (load_dataset("mnist", data_dir=d, download=False) for d in (tmp_path, folder))
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)


def test_real_binarized_mnist():
    d = load_dataset("binarized-mnist", data_dir=_shared("binarized-mnist"), download=False)
    assert (len(d.train), len(d.val), len(d.test)) == (50_000, 10_000, 10_000)
    assert d.is_binary and d.train.y is None and d.shape == (1, 28, 28)
    assert set(d.test.x.unique().tolist()) == {0.0, 1.0}


def _fake_cifar_archive(path: Path, per_batch: int, extra: dict[str, bytes] | None = None) -> np.ndarray:
    """A tar.gz laid out as CIFAR-10's binary archive: five training batches and a test batch of
    3073-byte records (label, then the R, G, B planes); returns the records in archive order."""
    import tarfile

    rng = np.random.default_rng(0)
    records = rng.integers(0, 256, (6 * per_batch, 3073), dtype=np.uint8)
    records[:, 0] = np.arange(6 * per_batch) % 10
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in [("batches.meta.txt", b"airplane\n")] + [
                (n, records[i * per_batch:(i + 1) * per_batch].tobytes()) for i, n in enumerate(names)] + list((extra or {}).items()):
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return records


def test_cifar10_reads_the_binary_archive_without_unpickling(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "cifar-10"
    folder.mkdir(parents=True)
    archive = folder / "cifar-10-binary.tar.gz"
    records = _fake_cifar_archive(archive, per_batch=4)
    spec = FileSpec(archive.name, archive.stat().st_size, sha256=sha256(archive.read_bytes()))
    monkeypatch.setitem(DATASETS, "cifar-10", dataclasses.replace(DATASETS["cifar-10"], files=(spec,), mirrors=()))
    d = load_dataset("cifar-10", data_dir=tmp_path / "data", download=False, validation=3)
    assert (len(d.train), len(d.val), len(d.test)) == (17, 3, 4) and d.shape == (3, 32, 32)
    # The last training record is the last validation image: label byte, then the red plane row by row.
    assert int(d.val.y[-1]) == int(records[19, 0])
    np.testing.assert_array_equal((d.val.x[-1, 0] * 255).round().numpy().astype(np.uint8), records[19, 1:1025].reshape(32, 32))
    np.testing.assert_array_equal((d.test.x[0, 2] * 255).round().numpy().astype(np.uint8), records[20, 2049:].reshape(32, 32))
    assert d.class_names[0] == "airplane" and d.num_classes == 10
    # A damaged copy is refused by its checksum; a truncated member by its record size.
    archive.write_bytes(archive.read_bytes()[:-10])
    with pytest.raises(DataError):
        load_dataset("cifar-10", data_dir=tmp_path / "data", download=False, validation=3)
    bad = tmp_path / "bad.tar.gz"
    _fake_cifar_archive(bad, per_batch=2, extra={"test_batch.bin": b"x" * 10})
    from aekit.data.formats import read_cifar_binary
    with pytest.raises(DataError, match="3073-byte records"):
        read_cifar_binary(bad, ("cifar-10-batches-bin/test_batch.bin",))
