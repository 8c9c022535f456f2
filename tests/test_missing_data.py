"""Data files with missing values (NaN): read only for models that take them (missing_values=True),
scaled by the statistics of the observed values, trained on, evaluated and completed from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aekit import DataError
from aekit.cli import main
from aekit.data import Preprocessing, load_dataset


def _table(tmp_path, n=120, d=5, share=0.25, seed=0, labels=False):
    """A CSV of correlated columns with ``share`` of the values missing (empty fields), and the array."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = z @ rng.normal(size=(2, d)) + 0.1 * rng.normal(size=(n, d)) + np.arange(d)
    x[rng.random(x.shape) < share] = np.nan
    x[:, 0] = np.where(np.isnan(x).all(1), 1.0, x[:, 0])     # no row entirely missing
    cols = [f"c{i}" for i in range(d)]
    path = tmp_path / "table.csv"
    with path.open("w") as f:
        f.write(",".join(cols + (["label"] if labels else [])) + "\n")
        for i, row in enumerate(x):
            fields = ["" if np.isnan(v) else repr(float(v)) for v in row] + ([str(i % 3)] if labels else [])
            f.write(",".join(fields) + "\n")
    return path, x


def test_nan_is_read_only_when_asked_and_inf_never(tmp_path):
    path, x = _table(tmp_path)
    with pytest.raises(DataError, match="NaN or infinite values.*missing_values=True"):
        load_dataset(str(path))
    data = load_dataset(str(path), missing_values=True, validation=0)
    got = torch.cat([data.train.x, data.test.x])
    assert int(got.isnan().sum()) == int(np.isnan(x).sum()) > 0
    for mmap in (False, True):                       # an array file, read or memory-mapped
        a = x.astype(np.float32)
        np.save(tmp_path / "a.npy", a)
        assert int(load_dataset(str(tmp_path / "a.npy"), missing_values=True, mmap=mmap).train.x.isnan().sum()) > 0
        a[3, 1] = np.inf
        np.save(tmp_path / "a.npy", a)
        with pytest.raises(DataError, match="has 1 infinite value;"):
            load_dataset(str(tmp_path / "a.npy"), missing_values=True, mmap=mmap)


@pytest.mark.parametrize("scale", ["standardize", "minmax"])
def test_scaling_statistics_are_those_of_the_observed_values(scale):
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(200, 4))
    x[rng.random(x.shape) < 0.3] = np.nan
    pre = Preprocessing(input_shape=(4,), scale=scale).fit(torch.tensor(x, dtype=torch.float32))
    if scale == "standardize":
        center, spread = np.nanmean(x, 0), np.nanstd(x, 0)
    else:
        center, spread = np.nanmin(x, 0), np.nanmax(x, 0) - np.nanmin(x, 0)
    np.testing.assert_allclose(pre.mean, center, rtol=1e-5)
    np.testing.assert_allclose(pre.std, spread, rtol=1e-5)
    out = pre.apply(torch.tensor(x, dtype=torch.float32))
    assert torch.equal(out.isnan(), torch.tensor(np.isnan(x)))   # missing stays missing
    x[:, 2] = np.nan
    with pytest.raises(DataError, match="1 feature\\(s\\) missing"):
        Preprocessing(input_shape=(4,), scale=scale).fit(torch.tensor(x, dtype=torch.float32))
    x[0, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        Preprocessing(input_shape=(4,), scale=scale).fit(torch.tensor(x, dtype=torch.float32))


def test_thresholding_keeps_missing_values_missing():
    x = torch.tensor([[0.2, float("nan"), 0.9]])
    out = Preprocessing(input_shape=(3,), binarize="threshold").apply(x)
    assert out[0, 0] == 0 and out[0, 1].isnan() and out[0, 2] == 1


def test_cli_trains_on_an_incomplete_table_evaluates_it_and_completes_a_file(tmp_path, capsys):
    path, x = _table(tmp_path, labels=True)
    run = tmp_path / "run"
    common = ["--data", str(path), "--label-column", "label", "--scale", "standardize", "--likelihood", "gaussian",
              "--latent-dim", "2", "--hidden-dims", "16", "--epochs", "3", "--no-progress"]
    assert main(["train", *common, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert "NaN" in err and "missing_values=true" in err and "\n" not in err
    assert not (tmp_path / "refused").exists()
    assert main(["train", *common, "-o", "missing_values=true", "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--k", "20"]) == 0
    metrics = json.loads((run / "evaluation.json").read_text())["metrics"]
    assert np.isfinite(metrics["mse"]) and np.isfinite(metrics["log_likelihood"])
    observed_per_row = (~np.isnan(x)).sum() / x.shape[0]   # bits per observed value (the test split's share
    bits = -metrics["log_likelihood"] / np.log(2)          # is about the whole table's)
    assert metrics["nll_bits_per_dim"] == pytest.approx(bits / observed_per_row, rel=0.1)   # not bits / 5
    # the user's own file: every missing value filled in, the observed ones written back exactly, rows in order
    done = tmp_path / "done.csv"
    assert main(["impute", str(run), "--input", str(path), "--save", str(done), "--out", str(tmp_path / "a.png")]) == 0
    assert done.read_text().splitlines()[0] == "c0,c1,c2,c3,c4"           # the table's own columns, no label
    filled = np.loadtxt(done, delimiter=",", skiprows=1)
    known = ~np.isnan(x)
    assert filled.shape == x.shape and np.isfinite(filled).all()
    np.testing.assert_allclose(filled[known], x[known].astype(np.float32), rtol=1e-6)
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["pattern"] == "none" and report["metrics"] == {} and report["method"] == "importance"
    assert report["missing_in_data_share"] == pytest.approx(1 - known.mean())
    # hiding known values as well: only those are scored, never the ones the data lacks
    assert main(["impute", str(run), "--pattern", "random", "--fraction", "0.3", "--steps", "20",
                 "--out", str(tmp_path / "b.png")]) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    assert 0 < report["scored_share"] < report["hidden_share"] and report["missing_in_data_share"] > 0
    assert all(np.isfinite(v) for v in report["metrics"].values())
    # --input needs no training data: hidden values of the file scored against the mean of its observed values
    path.rename(tmp_path / "moved.csv")
    assert main(["impute", str(run), "--input", str(tmp_path / "moved.csv"), "--pattern", "random", "--steps", "20",
                 "--out", str(tmp_path / "c.png")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    assert set(report["metrics"]) == {"mse_hidden_imputed", "mse_hidden_one_draw", "mse_hidden_input_mean"}
    (tmp_path / "moved.csv").rename(path)
    assert main(["encode", str(run), "--input", str(path), "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (x.shape[0], 2)
    # True (as a config reads it) takes missing values too; a file of several splits is no --input
    assert main(["train", *common, "-o", "missing_values=True", "--epochs", "1", "--out", str(tmp_path / "r2")]) == 0
    np.savez(tmp_path / "s.npz", x_train=np.zeros((5, 5)), x_test=np.zeros((5, 5)))
    assert main(["impute", str(run), "--input", str(tmp_path / "s.npz"), "--out", str(tmp_path / "d.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds the splits train, test" in err and "\n" not in err


def test_saved_completion_keeps_every_known_value_its_type_layout_and_digits(tmp_path, capsys):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(40, 8, 8)).astype(np.uint8)     # 8-bit, no channel axis
    np.save(tmp_path / "u8.npy", images)
    run = tmp_path / "u8"
    assert main(["train", "--data", str(tmp_path / "u8.npy"), "--hidden-dims", "16", "--latent-dim", "2",
                 "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    done = tmp_path / "done.npy"   # values hidden by the square are scored, then written back as they were
    assert main(["impute", str(run), "--input", str(tmp_path / "u8.npy"), "--pattern", "square", "--steps", "4",
                 "--save", str(done), "--out", str(tmp_path / "a.png")]) == 0
    again = np.load(done)
    assert again.dtype == np.uint8 and np.array_equal(again, images)
    # a float table with holes: exact digits of the values it had, its own column names, labels by name
    path, x = _table(tmp_path, n=80)
    x[0, 1] = 127538130.84                      # more digits than float32 keeps
    text = path.read_text().splitlines()
    fields = text[1].split(",")
    fields[1] = "127538130.84"
    labelled = [text[0] + ",kind"] + [line + ("," + "ab"[i % 2]) for i, line in enumerate([",".join(fields), *text[2:]])]
    path.write_text("\n".join(labelled) + "\n")
    run = tmp_path / "cvae"
    assert main(["train", "--model", "cvae", "--data", str(path), "--label-column", "kind", "--scale", "standardize",
                 "--likelihood", "gaussian", "--hidden-dims", "16", "--latent-dim", "2", "--epochs", "1",
                 "-o", "missing_values=true", "--out", str(run), "--no-progress"]) == 0
    done = tmp_path / "done.csv"
    assert main(["impute", str(run), "--input", str(path), "--steps", "4", "--save", str(done),
                 "--out", str(tmp_path / "b.png")]) == 0
    lines = done.read_text().splitlines()
    assert lines[0] == "c0,c1,c2,c3,c4" and lines[1].split(",")[1] == "127538130.84"
    filled = np.loadtxt(done, delimiter=",", skiprows=1)
    known = ~np.isnan(x)
    assert np.isfinite(filled).all() and np.array_equal(filled[known], x[known])
    (tmp_path / "swapped.csv").write_text(path.read_text().replace("c0,c1", "c1,c0", 1))
    assert main(["impute", str(run), "--input", str(tmp_path / "swapped.csv"), "--out", str(tmp_path / "s.png")]) == 2
    assert "has the columns ['c1', 'c0', 'c2'] from column 1 on" in capsys.readouterr().err
    (tmp_path / "names.csv").write_text(path.read_text().replace(",a\n", ",z\n"))
    assert main(["encode", str(run), "--input", str(tmp_path / "names.csv"), "--out", str(tmp_path / "z.npy")]) == 2
    assert "labels ['z'] the model was not trained on" in capsys.readouterr().err


def test_commands_that_need_complete_data_say_so(tmp_path, capsys):
    path, _ = _table(tmp_path)
    assert main(["compare", "--data", str(path), "--methods", "pca", "--dims", "2", "--out", str(tmp_path / "c")]) == 2
    assert "aekit compare needs complete data" in capsys.readouterr().err


def test_missing_values_are_drawn_in_red(tmp_path):
    import matplotlib.image as mpimg

    from aekit import plots

    images = np.full((1, 8, 8), 0.5, dtype=np.float32)
    images[0, :4] = np.nan
    path = plots.save_grid(images, tmp_path / "g.png")
    rgb = mpimg.imread(path)[..., :3].reshape(-1, 3)
    red = (np.abs(rgb - np.array(plots.MISSING_COLOUR)) < 0.05).all(1)
    grey = (np.abs(rgb - 0.5) < 0.05).all(1)
    assert red.sum() > 0.2 * grey.sum() > 0
