"""``aekit.compare``: autoencoders against PCA, NMF, Kernel PCA, LDA, t-SNE and UMAP on one split.

The protocol of Sainburg, McInnes & Gentner 2021 ("Parametric UMAP embeddings for representation
and semisupervised learning"): every method is fitted on the training split; for each latent size
we report the test reconstruction MSE (where the method has an inverse), the accuracy of 1-NN and
5-NN classifiers fitted on the training embeddings and scored on the test embeddings,
trustworthiness on the first training points, and the times to fit (and embed the training split)
and to transform the test split. A method that
fails is reported as failed with its error, one that does not apply as skipped with the reason.

Methods are the baselines of ``aekit.baselines`` by name, or any registry model by name: a model
with a likelihood runs as ``VAEReducer``, any other as ``AutoencoderReducer`` (capability flags,
never names).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import registry
from .baselines import BASELINES, SkipMethod, check_options, make_baseline
from .errors import ConfigError, DataError

DEFAULT_METHODS = ("pca", "nmf", "kernel_pca", "lda", "tsne", "umap", "ae", "vae")
COLUMNS = ("method", "dim", "n_components", "status", "test_mse", "knn1", "knn5", "trustworthiness",
           "fit_seconds", "transform_seconds", "note")


@dataclass
class ComparisonResult:
    """One row per (latent size, method); ``embeddings[(method, dim)]`` = (test codes, their labels)."""

    rows: list[dict[str, Any]]
    embeddings: dict[tuple[str, int], tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def to_markdown(self) -> str:
        head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n"
        body = "".join("| " + " | ".join(_cell(r.get(k), k) for k in COLUMNS) + " |\n" for r in self.rows)
        return head + body

    def to_csv(self, path: str | Path | None = None) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if _missing(r.get(k)) else r.get(k)) for k in COLUMNS})
        if path is not None:
            from .io import atomic_write_text

            atomic_write_text(Path(path), buf.getvalue())
        return buf.getvalue()

    def to_json(self) -> str:
        rows = [{k: (None if _missing(r.get(k)) else r.get(k)) for k in COLUMNS} for r in self.rows]
        return json.dumps({"info": self.info, "rows": rows}, indent=2) + "\n"

    def figure(self, dim: int = 2) -> Any:
        """One matplotlib Figure (Agg canvas, no pyplot state): the ``dim``-sized embeddings of the test
        split side by side, coloured by label; failed and skipped methods get a panel saying so."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rows = [r for r in self.rows if r["dim"] == dim]
        if not rows:
            raise ConfigError(f"No results at dim={dim} to plot; the comparison ran dims {sorted({r['dim'] for r in self.rows})}.")
        ncols = min(len(rows), 5)
        nrows = math.ceil(len(rows) / ncols)
        fig = Figure(figsize=(3.2 * ncols, 3.3 * nrows))
        FigureCanvasAgg(fig)
        for i, r in enumerate(rows):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(r["method"], fontsize=10)
            z, y = self.embeddings.get((r["method"], dim), (None, None))
            if r["status"] != "ok" or z is None or z.shape[1] != dim:   # (the VQ-VAE's code is wider than dim)
                why = r["status"] if z is None or r["status"] != "ok" else f"{z.shape[1]}-D only"
                ax.text(0.5, 0.5, f"{why}\n{_wrap(r.get('note') or '', 34)}", ha="center", va="center",
                        fontsize=7, transform=ax.transAxes)
                continue
            ax.scatter(z[:, 0], z[:, 1], c=y if y is not None else "k", cmap="tab10", s=1.5, alpha=0.6,
                       linewidths=0, rasterized=True)
            if r.get("knn1") is not None and not _missing(r.get("knn1")):
                ax.set_xlabel(f"1-NN {r['knn1']:.3f}", fontsize=8)
        fig.suptitle(f"{self.info.get('dataset', 'data')}: {dim}-D embeddings of the test split", fontsize=11)
        fig.tight_layout()
        return fig

    def save(self, directory: str | Path, stem: str = "comparison") -> dict[str, Path]:
        """Write ``<stem>.md``, ``<stem>.csv``, ``<stem>.json`` and, when 2-D rows exist, ``<stem>_2d.png``."""
        from .io import atomic_write, atomic_write_text

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": d / f"{stem}.md", "csv": d / f"{stem}.csv", "json": d / f"{stem}.json"}
        atomic_write_text(paths["markdown"], self.to_markdown())
        self.to_csv(paths["csv"])
        atomic_write_text(paths["json"], self.to_json())
        if any(r["dim"] == 2 for r in self.rows):
            fig = self.figure(2)
            paths["figure"] = d / f"{stem}_2d.png"
            atomic_write(paths["figure"], lambda p: fig.savefig(p, dpi=120, format="png"))
        return paths


def compare(
    data: Any,
    methods: Sequence[str] = DEFAULT_METHODS,
    dims: Sequence[int] = (2, 64),
    *,
    method_options: dict[str, dict[str, Any]] | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    max_train: int | None = None,
    trust_points: int | None = 2000,
    inverse_points: int | None = None,
    method_dims: dict[str, Sequence[int]] | None = None,
    verbose: bool = True,
    log: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Compare ``methods`` at each latent size in ``dims`` on ``data``.

    ``data``: a data set name or path (``aekit.data.load_dataset``), a ``DatasetSplits`` (its train
    and test splits), or arrays ``(X_train, y_train, X_test, y_test)`` (labels may be None).
    ``method_options[name]``: keyword options of that method (a baseline's constructor arguments, or
    the estimator parameters of a registry model, e.g. ``{"max_epochs": 20}``). ``max_train``
    subsamples the training split (seeded); ``trust_points`` caps trustworthiness to the first
    training points; ``inverse_points`` caps the test points reconstructed. ``method_dims[name]``
    restricts a method to some latent sizes (its rows at the others say skipped). A progress line per
    method goes to ``log`` (stderr by default) when ``verbose``.
    """
    if isinstance(methods, str) or isinstance(dims, (int, str)) or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise ConfigError(f"methods={methods!r} and dims={dims!r} must be lists, e.g. methods=['pca', 'ae'], dims=[2, 16].")
    if not isinstance(method_options or {}, dict) or not all(isinstance(v, dict) for v in (method_options or {}).values()):
        raise ConfigError(f"method_options={method_options!r} must map a method's name to a dict of its options.")
    methods, dims = list(methods), [int(d) for d in dims]
    options = {k: dict(v) for k, v in (method_options or {}).items()}
    _check_methods(methods, dims, options, method_dims)
    for what, value, least in (("max_train", max_train, 2), ("trust_points", trust_points, 11), ("inverse_points", inverse_points, 1)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < least):
            raise ConfigError(f"{what}={value!r} must be a whole number of at least {least} (or None for all).")
    name, shape, x_tr, y_tr, x_te, y_te = _arrays(data, data_dir)
    notes = []
    if max_train is not None and x_tr.shape[0] > max_train:
        idx = np.sort(np.random.default_rng(seed).choice(x_tr.shape[0], int(max_train), replace=False))
        x_tr, y_tr = x_tr[idx], (None if y_tr is None else y_tr[idx])
        notes.append(f"training split subsampled to {max_train}")
    say = (log or (lambda s: print(s, file=sys.stderr, flush=True))) if verbose else (lambda s: None)
    info = {"dataset": name, "n_train": int(x_tr.shape[0]), "n_test": int(x_te.shape[0]), "n_features": int(x_tr.shape[1]),
            "trustworthiness_points": min(trust_points or x_tr.shape[0], x_tr.shape[0]), "seed": seed,
            "methods": methods, "dims": dims, "notes": notes}
    result = ComparisonResult([], {}, info)
    trust_ref: list[Any] = []  # built on first use, shared by every method embedding all training rows
    for d in dims:
        for m in methods:
            if method_dims and m in method_dims and d not in method_dims[m]:
                row = {**{k: None for k in COLUMNS}, "method": m, "dim": d, "status": "skipped",
                       "note": f"not run at d={d}: asked for d in {list(method_dims[m])} only"}
                result.rows.append(row)
                say(_progress_line(row))
                continue
            row, emb = _run_one(m, d, options.get(m, {}), shape, x_tr, y_tr, x_te, y_te, seed=seed,
                                trust_points=trust_points, inverse_points=inverse_points, trust_ref=trust_ref)
            result.rows.append(row)
            if emb is not None:
                result.embeddings[(m, d)] = emb
            say(_progress_line(row))
    return result


def _check_methods(methods: list[str], dims: list[int], options: dict[str, dict[str, Any]],
                   method_dims: dict[str, Sequence[int]] | None) -> None:
    """Unknown names, options or sizes are user errors raised before anything is trained."""
    if not methods:
        raise ConfigError("No methods given to compare; pass at least one, e.g. pca,ae.")
    if not dims or any(d < 1 for d in dims):
        raise ConfigError(f"dims={dims!r} must be one or more positive latent sizes.")
    for m in methods:
        if m not in BASELINES and m not in registry.REGISTRY:
            raise ConfigError(f"Unknown method {m!r}; expected one of {', '.join([*BASELINES, *sorted(registry.REGISTRY)])}.")
        if m in registry.REGISTRY and registry.get(m)[0].is_conditional:
            raise ConfigError(f"Method {m!r} encodes X together with its labels, so it cannot embed test data alone; "
                              "compare unconditional models (e.g. ae, vae).")
    for m in method_dims or {}:
        if m not in methods:
            raise ConfigError(f"method_dims names {m!r}, which is not among the methods compared ({', '.join(methods)}).")
    for m in options:
        if m not in methods:
            raise ConfigError(f"Options were given for {m!r}, which is not among the methods compared ({', '.join(methods)}).")
        if m in BASELINES:
            check_options(m, options[m])
        else:
            allowed = set(_estimator_class(m)().get_params()) - {"model", "n_components", "random_state"}
            unknown = sorted(set(options[m]) - allowed)
            if unknown:
                raise ConfigError(f"Unknown option {unknown[0]!r} for {m}; known options: {', '.join(sorted(allowed))}.")
            _estimator_class(m)(model=m, **options[m])._check_params()   # e.g. max_epochs=0, before any training


def _estimator_class(name: str) -> type:
    from .sklearn import AutoencoderReducer, VAEReducer

    return VAEReducer if registry.get(name)[0].has_likelihood else AutoencoderReducer


def _make_method(name: str, dim: int, opts: dict[str, Any], shape: tuple[int, ...], seed: int) -> tuple[Any, bool, str]:
    """(the method object, whether it is fitted with the training labels, a note on how it was set up)."""
    if name in BASELINES:
        method = make_baseline(name, dim, seed, **opts)
        return method, method.supervised, ""
    est_cls = _estimator_class(name)
    opts = dict(opts)
    model_options = dict(opts.pop("model_options", None) or {})
    if model_options.get("architecture") == "conv" and "input_shape" not in model_options:
        model_options["input_shape"] = list(shape)  # rows are flattened images; the conv net reads them as (C, H, W)
    est = est_cls(model=name, n_components=dim, random_state=seed, model_options=model_options or None, **opts)
    arch = model_options.get("architecture", "mlp")
    convs = f"conv {model_options.get('conv_channels', '')} + " if arch == "conv" else ""
    note = f"{est_cls.__name__}: {convs}dense {list(est.hidden_dims)}, {est.max_epochs} epochs, batch {est.batch_size}"
    schedule = (est.train_options or {}).get("schedule", "none")
    note += f", {schedule} learning-rate schedule" if schedule != "none" else ""
    uses_labels = registry.get(name)[0].uses_labels
    return est, uses_labels, note + ("; trained with the training labels" if uses_labels else "")


def _run_one(name, dim, opts, shape, x_tr, y_tr, x_te, y_te, *, seed, trust_points, inverse_points, trust_ref):
    # lazily: aekit.evaluate loads matplotlib
    from .evaluate.embedding import TrustworthinessReference, knn_accuracies, trustworthiness

    row: dict[str, Any] = {k: None for k in COLUMNS}
    row.update(method=name, dim=dim, status="ok")
    notes: list[str] = []
    emb = None
    try:
        method, supervised, how = _make_method(name, dim, opts, shape, seed)
        if how:
            notes.append(how)
        if getattr(method, "transductive", False):
            t0 = time.perf_counter()
            z_tr, z_te, i_tr, i_te = method.embed_together(x_tr, x_te)
            row["fit_seconds"] = time.perf_counter() - t0
            xs_tr, ys_tr = x_tr[i_tr], (None if y_tr is None else y_tr[i_tr])
            ys_te = None if y_te is None else y_te[i_te]
        else:
            fit_y = y_tr if supervised else None
            t0 = time.perf_counter()
            z_tr = method.fit_transform(x_tr, fit_y)  # fit, and embed the training split
            row["fit_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            z_te = method.transform(x_te)
            row["transform_seconds"] = time.perf_counter() - t0
            xs_tr, ys_tr, ys_te = x_tr, y_tr, y_te
            if getattr(method, "has_inverse", True):
                caps = [c for c in (inverse_points, getattr(method, "inverse_max_points", None)) if c is not None]
                k = min([x_te.shape[0], *(int(c) for c in caps)])
                rec = np.asarray(method.inverse_transform(z_te[:k]), dtype=np.float64)
                row["test_mse"] = float(np.mean((rec - x_te[:k]) ** 2))
                if k < x_te.shape[0]:
                    notes.append(f"MSE on the first {k} test points")
        z_tr, z_te = np.asarray(z_tr, dtype=np.float64), np.asarray(z_te, dtype=np.float64)
        if not (np.isfinite(z_tr).all() and np.isfinite(z_te).all()):
            raise DataError(f"{name} produced non-finite embeddings.")
        row["n_components"] = int(z_te.shape[1])
        if row["n_components"] != dim:   # the VQ-VAE: dim values per code position
            notes.append(f"its embedding has {row['n_components']} values ({row['n_components'] // dim} positions of {dim})")
        emb = (z_te, ys_te)
        if ys_tr is not None and ys_te is not None:
            acc = knn_accuracies(z_tr, ys_tr, z_te, ys_te, ks=(1, 5))
            row["knn1"], row["knn5"] = acc[1], acc[5]
        else:
            notes.append("no labels: no kNN accuracy")
        if xs_tr is x_tr:
            if not trust_ref:
                trust_ref.append(TrustworthinessReference(x_tr, n_neighbors=5, max_points=trust_points))
            row["trustworthiness"] = trust_ref[0](z_tr)
        else:  # t-SNE's subsample: its own rows
            row["trustworthiness"], used = trustworthiness(xs_tr, z_tr, n_neighbors=5, max_points=trust_points)
            notes.append(f"trustworthiness on its first {used} training points")
        notes[:0] = [n for n in [getattr(method, "note", "")] if n]
    except SkipMethod as exc:
        row["status"], notes = "skipped", [str(exc)]
    except Exception as exc:  # noqa: BLE001 - a failing method is reported in the table, not dropped
        row["status"], notes = "failed", [f"{type(exc).__name__}: {exc}".splitlines()[0]]
    row["note"] = "; ".join(notes)
    return row, emb


def _arrays(data: Any, data_dir: str | Path | None):
    """(name, item shape, X_train (N, D) float32, y_train, X_test, y_test) from any accepted input."""
    if isinstance(data, (str, Path)):
        from .data import load_dataset

        data = load_dataset(data, data_dir=data_dir)
    if hasattr(data, "train") and hasattr(data, "test"):
        if data.test is None:
            raise DataError(f"The data set {data.name!r} has no test split to compare on.")
        parts = (data.train.x, data.train.y, data.test.x, data.test.y)
        name, shape = data.name, tuple(data.shape)
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        parts, name, shape = tuple(data), "arrays", None
    else:
        raise DataError("compare needs a data set name or path, a DatasetSplits, or (X_train, y_train, X_test, y_test).")
    x_tr, y_tr, x_te, y_te = (_np(p) for p in parts)
    if x_tr is None or x_te is None:
        raise DataError("compare needs training and test inputs; got None.")
    x_tr = x_tr.reshape(x_tr.shape[0], -1).astype(np.float32, copy=False)
    x_te = x_te.reshape(x_te.shape[0], -1).astype(np.float32, copy=False)
    if x_tr.shape[1] != x_te.shape[1]:
        raise DataError(f"Train rows have {x_tr.shape[1]} features but test rows {x_te.shape[1]}; expected the same.")
    for what, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if not np.isfinite(x).all():
            raise DataError(f"The {what} inputs hold NaN or infinite values; expected finite numbers.")
        if y is not None and y.shape[0] != x.shape[0]:
            raise DataError(f"The {what} split has {x.shape[0]} rows but {y.shape[0]} labels; expected one label per row.")
    if (y_tr is None) != (y_te is None):
        y_tr = y_te = None
    return name, shape or (x_tr.shape[1],), x_tr, y_tr, x_te, y_te


def _np(a: Any) -> np.ndarray | None:
    if a is None:
        return None
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _cell(v: Any, key: str) -> str:
    if _missing(v):
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}" if key.endswith("seconds") else f"{v:.4f}"
    return str(v).replace("|", "\\|")


def _wrap(text: str, width: int) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line][:6])


def _progress_line(r: dict[str, Any]) -> str:
    def f(k: str, fmt: str) -> str:
        return "–" if _missing(r.get(k)) else format(r[k], fmt)

    line = (f"[compare] d={r['dim']:<3} {r['method']:<11} {r['status']:<7} fit {f('fit_seconds', '.2f')}s "
            f"transform {f('transform_seconds', '.2f')}s  mse {f('test_mse', '.4f')}  1-NN {f('knn1', '.4f')}  "
            f"5-NN {f('knn5', '.4f')}  trust {f('trustworthiness', '.4f')}")
    return line + (f"  ({r['note']})" if r.get("note") else "")
