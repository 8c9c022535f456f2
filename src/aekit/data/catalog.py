"""The named data sets: where their files come from, their checksums, and how to load them.

- ``digits``: the 8x8 UCI digits bundled with scikit-learn (offline).
- ``mnist`` (LeCun et al., 1998), ``fashion-mnist`` (Xiao et al., 2017), ``kmnist`` (Clanuwat et
  al., "Deep Learning for Classical Japanese Literature", 2018): IDX files, 28x28 grey levels.
- ``binarized-mnist``: the fixed binarization of Larochelle & Murray (AISTATS 2011), 50k/10k/10k.
- ``cifar-10`` (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009): 32x32
  colour images read from the authors' binary archive (no pickle); its MD5 is the authors', its size
  and SHA-256 as recorded by others who verified it.

Checksums are the published ones (MD5 from the authors, SHA-256 as recorded by TensorFlow Datasets and,
for KMNIST, by torchvision's dataset definitions; KMNIST's sizes are those its server reports).
A folder may hold the IDX files decompressed instead; their sizes and SHA-256 were computed from the
verified published ``.gz`` files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from aekit.data.download import FileSpec, fetch_file, find_local
from aekit.data.formats import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_amat, read_cifar_binary, read_idx
from aekit.data.splits import (
    DatasetSplits,
    Split,
    check_fraction,
    check_validation,
    concat,
    random_partition,
    tail_split,
    take,
    validation_count,
)
from aekit.errors import DataError


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: a description, its files and mirrors, and its loader."""

    name: str
    description: str
    shape: tuple[int, ...]
    splits: dict[str, int]  # default split sizes
    loader: Callable[..., DatasetSplits]
    files: tuple[FileSpec, ...] = ()
    mirrors: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)
    fixed_test: bool = True  # the files hold the test split; False: it is drawn (test_fraction)


# ------------------------------------------------------------------------------------------ loaders


def _load_digits(spec: DatasetSpec, *, validation, test_fraction, seed, **_) -> DatasetSplits:
    """sklearn digits: 1797 images (1, 8, 8), values 0..16 scaled to [0, 1]; seeded 70/10/20 split."""
    from sklearn.datasets import load_digits

    check_validation(validation)
    check_fraction("test_fraction", test_fraction)
    bunch = load_digits()
    x = torch.from_numpy(bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    n = x.shape[0]
    n_test = int(round(test_fraction * n))
    # Default validation is 10% of the whole set; an explicit value counts from the training pool.
    n_val = int(round(0.1 * n)) if validation is None else validation_count(validation, n - n_test, "digits")
    if n - n_test - n_val < 1:
        raise DataError(f"test_fraction={test_fraction!r} with {n_val} validation images leaves no digits to train on; "
                        "ask for a smaller test or validation share.")
    test_idx, val_idx, train_idx = random_partition(n, [n_test, n_val], seed)
    full = Split(x, y)
    return DatasetSplits(
        name=spec.name,
        train=take(full, train_idx),
        val=take(full, val_idx),
        test=take(full, test_idx),
        shape=spec.shape,
        num_classes=10,
        class_names=spec.class_names,
        is_binary=False,
    )


def _idx_split(spec: DatasetSpec, prefix: str, data_dir, download) -> Split:
    """Read one IDX image/label pair: images (N, 1, 28, 28) in [0, 1], labels int64 (N,)."""
    images_path = fetch_file(spec.name, _file(spec, f"{prefix}-images-idx3-ubyte.gz"), spec.mirrors, data_dir, download)
    labels_path = fetch_file(spec.name, _file(spec, f"{prefix}-labels-idx1-ubyte.gz"), spec.mirrors, data_dir, download)
    images = read_idx(images_path, IDX_IMAGES_MAGIC)  # (N, 28, 28) uint8
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)  # (N,) uint8
    if images.shape[0] != labels.shape[0] or images.shape[1:] != spec.shape[1:]:
        raise DataError(
            f"IDX files {images_path.name} and {labels_path.name} hold images {images.shape} "
            f"and labels {labels.shape}; "
            f"expected N x {spec.shape[1]} x {spec.shape[2]} images and N labels."
        )
    if labels.max() >= len(spec.class_names):
        raise DataError(
            f"IDX file {labels_path} has label {labels.max()}; "
            f"expected labels below {len(spec.class_names)}."
        )
    x = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)  # (N, 1, 28, 28)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def _load_idx(spec: DatasetSpec, *, data_dir, download, validation, **_) -> DatasetSplits:
    """MNIST-like IDX data: the validation split is the LAST ``validation`` training images."""
    check_validation(validation)
    train = _idx_split(spec, "train", data_dir, download)
    test = _idx_split(spec, "t10k", data_dir, download)
    count = validation_count(10_000 if validation is None else validation, len(train), spec.name)
    train, val = tail_split(train, count)
    return DatasetSplits(spec.name, train, val, test, spec.shape, len(spec.class_names), spec.class_names, False)


def _load_cifar(spec: DatasetSpec, *, data_dir, download, validation, **_) -> DatasetSplits:
    """CIFAR-10: 50,000 training and 10,000 test images (3, 32, 32) in [0, 1]; the validation split is
    the LAST ``validation`` training images (5,000 by default)."""
    check_validation(validation)
    path = fetch_file(spec.name, spec.files[0], spec.mirrors, data_dir, download)
    folder = "cifar-10-batches-bin/"
    train_members = tuple(f"{folder}data_batch_{i}.bin" for i in range(1, 6))
    test_members = (f"{folder}test_batch.bin",)
    found = read_cifar_binary(path, train_members + test_members)
    parts = {}
    for split, members in (("train", train_members), ("test", test_members)):
        images = np.concatenate([found[m][0] for m in members])
        labels = np.concatenate([found[m][1] for m in members])
        if labels.max() >= len(spec.class_names):
            raise DataError(f"{path} has label {labels.max()}; expected labels below {len(spec.class_names)}.")
        x = torch.from_numpy(images).float().div_(255.0)
        parts[split] = Split(x, torch.from_numpy(labels.astype(np.int64)))
    count = validation_count(5_000 if validation is None else validation, len(parts["train"]), spec.name)
    train, val = tail_split(parts["train"], count)
    return DatasetSplits(spec.name, train, val, parts["test"], spec.shape, len(spec.class_names), spec.class_names, False)


def _load_binarized(spec: DatasetSpec, *, data_dir, download, validation, **_) -> DatasetSplits:
    """Binarized MNIST: the published 50k/10k/10k split, values exactly 0 or 1, no labels."""
    check_validation(validation)
    splits = {}
    for split in ("train", "valid", "test"):
        path = fetch_file(spec.name, _file(spec, f"binarized_mnist_{split}.amat"), spec.mirrors, data_dir, download)
        x = read_amat(path)  # (N, 784) float32
        if x.shape[1] != 784 or not ((x == 0) | (x == 1)).all():
            raise DataError(
                f"Binarized MNIST file {path} has {x.shape[1]} values per line; "
                "expected 784 values, each 0 or 1."
            )
        splits[split] = Split(torch.from_numpy(x).reshape(-1, 1, 28, 28))
    train, val = splits["train"], splits["valid"]
    if validation is not None:
        # The published validation set is the end of MNIST's training set: merge and re-split.
        train = concat(train, val)
        train, val = tail_split(train, validation_count(validation, len(train), spec.name))
    return DatasetSplits(spec.name, train, val, splits["test"], spec.shape, None, None, True)


def _file(spec: DatasetSpec, name: str) -> FileSpec:
    return next(f for f in spec.files if f.name == name)


# ------------------------------------------------------------------------------------------ catalog


def _idx_files(checksums: dict[str, tuple]) -> tuple[FileSpec, ...]:
    """FileSpecs from ``name: (size, md5, sha256)``, or ``(size, md5, sha256, unpacked size, unpacked
    sha256)`` for a ``.gz`` whose decompressed copy is accepted in its place."""
    specs = []
    for name, (size, md5, sha256, *unpacked) in checksums.items():
        plain = FileSpec(name.removesuffix(".gz"), unpacked[0], sha256=unpacked[1]) if unpacked else None
        specs.append(FileSpec(name, size, md5, sha256, plain))
    return tuple(specs)


_MNIST_FILES = _idx_files({
    "train-images-idx3-ubyte.gz": (9912422, "f68b3c2dcbeaaa9fbdd348bbdeb94873", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                                   47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte.gz": (28881, "d53e105ee54ea40749a09fcbcd1e9432", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                                   60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte.gz": (1648877, "9fb629c4189551a2d022fa330f9573f3", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                                   7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte.gz": (4542, "ec29112dd5afa0611ce80d1b7f02629c", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                                   10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
})
_FASHION_FILES = _idx_files({
    "train-images-idx3-ubyte.gz": (26421880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                                   47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte.gz": (29515, "25c81989df183df01b3e8a0aad5dffbe", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                                   60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte.gz": (4422102, "bef4ecab320f06d8554ea6380940ec79", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                                   7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte.gz": (5148, "bb300cfdad3c16e7a12a480ee83cd310", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                                   10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
})
# KMNIST: the MD5s published at http://codh.rois.ac.jp/kmnist/; sizes and SHA-256 as the module docstring says.
_KMNIST_FILES = _idx_files({
    "train-images-idx3-ubyte.gz": (18165135, "bdb82020997e1d708af4cf47b453dcf7", "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"),
    "train-labels-idx1-ubyte.gz": (29497, "e144d726b3acfaa3e44228e80efcd344", "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
    "t10k-images-idx3-ubyte.gz": (3041136, "5c965bf0a639b31b8f53240b1b52f4d7", "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
    "t10k-labels-idx1-ubyte.gz": (5120, "7320c461ea6c1c855c0b718fb2a4b134", "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
})
_BINARIZED_FILES = _idx_files({
    "binarized_mnist_train.amat": (78400000, "db28b1a6ae0fe70cbd3da91acf46e477", "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
    "binarized_mnist_valid.amat": (15680000, "bf37822a04e94123630de6a7dfd9c9ef", "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
    "binarized_mnist_test.amat": (15680000, "14e41ae11040adba6ab8cb291eda0dd8", "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
})

_CIFAR_FILES = (FileSpec("cifar-10-binary.tar.gz", 170_052_171, "c32a1d4ab5d03f1284b67883e8d87530",
                         "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),)

_DIGITS = tuple(str(i) for i in range(10))
_IMAGE_28 = (1, 28, 28)
_SPLITS_60K = {"train": 50_000, "val": 10_000, "test": 10_000}

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("digits", "UCI handwritten digits, 8x8, bundled with scikit-learn (offline)", (1, 8, 8),
                    {"train": 1258, "val": 180, "test": 359}, _load_digits, class_names=_DIGITS, fixed_test=False),
        DatasetSpec("mnist", "MNIST handwritten digits, 28x28 grey levels", _IMAGE_28, _SPLITS_60K, _load_idx,
                    _MNIST_FILES,
                    ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                     "https://storage.googleapis.com/cvdf-datasets/mnist/"),
                    _DIGITS),
        DatasetSpec("fashion-mnist", "Fashion-MNIST Zalando article images, 28x28 grey levels", _IMAGE_28, _SPLITS_60K,
                    _load_idx, _FASHION_FILES, ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
        DatasetSpec("kmnist", "Kuzushiji-MNIST cursive Japanese hiragana, 28x28 grey levels", _IMAGE_28, _SPLITS_60K,
                    _load_idx, _KMNIST_FILES, ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
                    ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
        DatasetSpec("binarized-mnist", "MNIST with Larochelle & Murray's fixed binarization, no labels", _IMAGE_28,
                    _SPLITS_60K, _load_binarized, _BINARIZED_FILES,
                    ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",)),
        DatasetSpec("cifar-10", "CIFAR-10 natural images in ten classes, 32x32 colour", (3, 32, 32),
                    {"train": 45_000, "val": 5_000, "test": 10_000}, _load_cifar, _CIFAR_FILES,
                    ("https://www.cs.toronto.edu/~kriz/",),
                    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
    )
}


def canonical_name(name: str) -> str | None:
    """The catalog name for ``name`` (case and ``_``/``-`` insensitive), or None."""
    key = name.strip().lower().replace("_", "-")
    return key if key in DATASETS else None


def list_datasets(data_dir: str | Path | None = None) -> list[dict]:
    """Describe every named data set and whether all its files are already on this machine.

    ``present`` and ``location`` come from a look-up without downloading or hashing: a file counts
    when it has the published size (so another data set's file of the same name does not), and its
    hash is checked when the data set is loaded. ``location`` lists the folders the files are in.
    """
    rows = []
    for spec in DATASETS.values():
        found = [find_local(spec.name, f, data_dir) for f in spec.files]
        present = all(p is not None for p in found)
        if not spec.files:
            location = "bundled with scikit-learn"
        else:
            location = ", ".join(dict.fromkeys(str(p.parent.resolve()) for p in found)) if present else None
        rows.append({
            "name": spec.name,
            "description": spec.description,
            "shape": spec.shape,
            "splits": dict(spec.splits),
            "present": present,
            "location": location,
        })
    return rows
