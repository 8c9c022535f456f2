"""aekit.compare and the embedding metrics, on scikit-learn's digits (offline, tiny).

The PCA row is checked against PCA computed here from the eigendecomposition of the training
covariance; the kNN accuracies against scikit-learn's KNeighborsClassifier; trustworthiness
against its closed-form extremes and scikit-learn's function."""

from __future__ import annotations

import csv
import io
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.neighbors import KNeighborsClassifier

from aekit.compare import COLUMNS, compare
from aekit.errors import ConfigError
from aekit.evaluate.embedding import TrustworthinessReference, knn_accuracies, trustworthiness


@pytest.fixture(scope="module")
def arrays():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:500], y[:500], X[1500:], y[1500:]  # 500 train, 297 test


def test_pca_row_is_exact_and_deterministic(arrays):
    x_tr, y_tr, x_te, y_te = arrays
    first = compare(arrays, methods=["pca"], dims=(2, 5), trust_points=200, verbose=False)
    again = compare(arrays, methods=["pca"], dims=(2, 5), trust_points=200, verbose=False)
    keys = [k for k in COLUMNS if not k.endswith("seconds")]
    assert [[r[k] for k in keys] for r in first.rows] == [[r[k] for k in keys] for r in again.rows]
    x64 = x_tr.astype(np.float64)
    mean = x64.mean(0)
    _, vecs = np.linalg.eigh(np.cov(x64, rowvar=False))  # ascending eigenvalues
    for row in first.rows:
        d = row["dim"]
        basis = vecs[:, ::-1][:, :d]  # (64, d) top-d principal directions
        z_tr, z_te = (x_tr - mean) @ basis, (x_te - mean) @ basis
        mse = np.mean(((x_te - mean) - z_te @ basis.T) ** 2)
        assert row["status"] == "ok" and row["n_components"] == d
        assert row["test_mse"] == pytest.approx(mse, rel=1e-5)
        for k in (1, 5):
            expected = KNeighborsClassifier(k).fit(z_tr, y_tr).score(z_te, y_te)
            assert row[f"knn{k}"] == pytest.approx(expected)
        assert row["trustworthiness"] == pytest.approx(sk_trustworthiness(x_tr[:200], z_tr[:200]), abs=1e-6)


def test_every_method_reported_failures_and_skips_included(arrays, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError: reported as skipped
    x_tr, y_tr, x_te, y_te = arrays
    shifted = (x_tr - 0.5, y_tr, x_te - 0.5, y_te)  # negative values: NMF must fail, and say why
    lines: list[str] = []
    res = compare(
        shifted, methods=["pca", "nmf", "kernel_pca", "lda", "tsne", "umap", "ae", "vae"], dims=(2, 16),
        method_options={"ae": {"max_epochs": 2, "hidden_dims": [16]}, "vae": {"max_epochs": 2, "hidden_dims": [16]},
                        "tsne": {"max_points": 200}, "kernel_pca": {"max_train": 300}},
        trust_points=150, log=lines.append,
    )
    assert len(res.rows) == 16 and len(lines) == 16  # nothing dropped; a progress line per method
    by = {(r["method"], r["dim"]): r for r in res.rows}
    assert by[("nmf", 2)]["status"] == "failed" and "non-negative" in by[("nmf", 2)]["note"]
    assert by[("umap", 2)]["status"] == "skipped" and "umap-learn" in by[("umap", 2)]["note"]
    assert by[("tsne", 16)]["status"] == "skipped"
    tsne = by[("tsne", 2)]
    assert tsne["status"] == "ok" and "together" in tsne["note"] and tsne["transform_seconds"] is None
    assert tsne["test_mse"] is None and 0.0 <= tsne["knn1"] <= 1.0
    assert by[("lda", 16)]["n_components"] == 9 and "classes - 1" in by[("lda", 16)]["note"]
    assert by[("lda", 2)]["test_mse"] is None
    assert "fitted on 300" in by[("kernel_pca", 2)]["note"]
    for m in ("pca", "kernel_pca", "ae", "vae"):
        for d in (2, 16):
            r = by[(m, d)]
            assert r["status"] == "ok", r
            assert r["test_mse"] > 0 and 0 <= r["knn1"] <= 1 and 0 <= r["trustworthiness"] <= 1
            assert r["n_components"] == d and r["fit_seconds"] > 0 and r["transform_seconds"] >= 0
    # PCA at 16 dims reconstructs better than at 2 (nested subspaces).
    assert by[("pca", 16)]["test_mse"] < by[("pca", 2)]["test_mse"]

    md = res.to_markdown().splitlines()
    assert md[0].startswith("| method | dim |") and len(md) == 2 + 16
    table = list(csv.DictReader(io.StringIO(res.to_csv())))
    assert [r["method"] for r in table][:8] == ["pca", "nmf", "kernel_pca", "lda", "tsne", "umap", "ae", "vae"]
    assert table[1]["status"] == "failed" and table[1]["test_mse"] == ""
    paths = res.save(tmp_path)
    import matplotlib.image

    img = matplotlib.image.imread(paths["figure"])
    assert img.shape[0] > 100 and img.shape[1] > 4 * img.shape[0] / 3  # panels side by side


def test_bad_requests_are_user_errors(arrays):
    with pytest.raises(ConfigError, match="Unknown method 'pcaa'"):
        compare(arrays, methods=["pcaa"], verbose=False)
    with pytest.raises(ConfigError, match="Unknown option 'epochs' for ae"):
        compare(arrays, methods=["ae"], method_options={"ae": {"epochs": 3}}, verbose=False)
    with pytest.raises(ConfigError, match="Unknown option 'bogus' for pca"):
        compare(arrays, methods=["pca"], method_options={"pca": {"bogus": 1}}, verbose=False)
    with pytest.raises(ConfigError, match="encodes X together with its labels"):
        compare(arrays, methods=["cvae"], verbose=False)
    with pytest.raises(ConfigError, match="must be lists"):
        compare(arrays, methods="pca", verbose=False)
    with pytest.raises(ConfigError, match="must be lists"):
        compare(arrays, methods=["pca"], dims=2, verbose=False)
    with pytest.raises(ConfigError, match="must map a method's name to a dict"):
        compare(arrays, methods=["pca"], method_options={"pca": 3}, verbose=False)
    with pytest.raises(ConfigError, match="max_epochs=0 must be a positive integer"):
        compare(arrays, methods=["ae"], method_options={"ae": {"max_epochs": 0}}, verbose=False)
    for what, value in (("max_train", -5), ("max_train", 0), ("trust_points", 3), ("inverse_points", 0)):
        with pytest.raises(ConfigError, match=f"{what}={value} must be a whole number"):
            compare(arrays, methods=["pca"], verbose=False, **{what: value})


def test_knn_accuracies_match_sklearn_including_ties():
    rng = np.random.default_rng(0)
    z_tr, y_tr = rng.normal(size=(300, 3)), rng.integers(0, 4, 300)
    z_te, y_te = rng.normal(size=(200, 3)), rng.integers(0, 4, 200)
    got = knn_accuracies(z_tr, y_tr, z_te, y_te, ks=(1, 4, 5))  # k=4 produces 2-2 ties
    for k in (1, 4, 5):
        assert got[k] == pytest.approx(KNeighborsClassifier(k).fit(z_tr, y_tr).score(z_te, y_te))


def test_trustworthiness_extremes_and_cap():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 10))
    assert trustworthiness(x, x, max_points=None) == (pytest.approx(1.0), 120)  # a perfect embedding
    z = x[:, :2]
    value, used = trustworthiness(x, z, max_points=50)
    assert used == 50 and value == pytest.approx(sk_trustworthiness(x[:50], z[:50]))
    ref = TrustworthinessReference(x, n_neighbors=4, max_points=80)  # reused for several embeddings
    for z in (x[:, :2], x[:, 3:6], rng.normal(size=(120, 2))):
        assert ref(z) == pytest.approx(sk_trustworthiness(x[:80], z[:80], n_neighbors=4), abs=1e-12)


def test_cli_compare_writes_table_and_figure(tmp_path, capsys):
    from aekit.cli import main

    out = tmp_path / "cmp"
    argv = ["compare", "--data", "digits", "--methods", "pca,lda,ae", "--dims", "2,3", "--epochs", "1",
            "-o", "ae.hidden_dims=[16]", "--method-dims", "lda=2", "--trust-points", "200", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| method | dim |") and "| lda | 3 | – | skipped |" in printed
    assert {p.name for p in out.iterdir()} == {"comparison.md", "comparison.csv", "comparison.json", "comparison_2d.png"}
    assert main(argv) == 2  # an existing comparison is not overwritten without --force
    assert "already holds a comparison" in capsys.readouterr().err
    assert main(["compare", "--data", "digits", "--methods", "pca", "-o", "max_epochs=3", "--out", str(tmp_path / "x")]) == 2

