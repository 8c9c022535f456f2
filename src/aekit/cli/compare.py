"""``aekit compare``: autoencoders against PCA, NMF, Kernel PCA, LDA, t-SNE and UMAP on one data set
(the protocol of Sainburg, McInnes & Gentner 2021, "Parametric UMAP"); see ``aekit.compare``.

Progress lines go to stderr, the Markdown table to stdout; ``--out`` receives comparison.md,
comparison.csv, comparison.json and comparison_2d.png (the 2-D embeddings side by side).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .common import add_data_args, load_data, parse_assignments

STEM = "comparison"


def register(sub: Any) -> None:
    from .. import registry
    from ..baselines import BASELINES
    from ..compare import DEFAULT_METHODS

    p = sub.add_parser(
        "compare", help="compare autoencoders with PCA, NMF, Kernel PCA, LDA, t-SNE and UMAP",
        description="Fit every method on the training split at each latent size and report test reconstruction MSE, "
                    "1-NN and 5-NN accuracy (test against train embeddings), trustworthiness and fit/transform times.",
    )
    add_data_args(p, required=True)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help=f"comma-separated: baselines {', '.join(BASELINES)} or any registered model "
                        f"({', '.join(sorted(registry.REGISTRY))}) (default: %(default)s)")
    p.add_argument("--dims", default="2,64", help="comma-separated latent sizes (default: %(default)s)")
    p.add_argument("-o", "--option", action="append", metavar="METHOD.KEY=VALUE",
                   help="an option of one method, e.g. ae.max_epochs=20, ae.model_options='{\"architecture\": \"conv\"}', "
                        "kernel_pca.max_train=2000, tsne.max_points=5000 (repeatable)")
    p.add_argument("--method-dims", action="append", metavar="METHOD=D1,D2",
                   help="run a slow method only at these latent sizes, e.g. umap=2 (its other rows say skipped)")
    p.add_argument("--epochs", type=int, help="max_epochs of every autoencoder method (default: the estimator's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, help="subsample the training split to this many points (seeded)")
    p.add_argument("--trust-points", type=int, default=2000,
                   help="trustworthiness on the first N training points (n x n cost; default: %(default)s)")
    p.add_argument("--inverse-points", type=int, help="reconstruct only the first N test points for the MSE")
    p.add_argument("--out", help="folder for the table and figure (default: runs/compare-DATA)")
    p.add_argument("--force", action="store_true", help="replace a comparison already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run_compare)


def parse_method_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """["ae.max_epochs=20", "pca.x=1"] -> {"ae": {"max_epochs": 20}, "pca": {"x": 1}}."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_assignments(items, "compare").items():
        if "." not in key:
            raise ConfigError(f"compare option {key!r} must name its method, like ae.{key}=VALUE.")
        method, field = key.split(".", 1)
        out.setdefault(method, {})[field] = value
    return out


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{what} {text!r} must be comma-separated integers, e.g. 2,64.") from None
    if not values:
        raise ConfigError(f"--{what} {text!r} names no sizes; expected e.g. 2,64.")
    return values


def run_compare(args: argparse.Namespace) -> int:
    from .. import registry
    from ..baselines import BASELINES
    from ..compare import compare

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    dims = _int_list(args.dims, "dims")
    options = parse_method_options(args.option)
    if args.epochs is not None:
        for m in methods:
            if m in registry.REGISTRY and m not in BASELINES:
                options.setdefault(m, {}).setdefault("max_epochs", args.epochs)
    method_dims = {}
    for item in args.method_dims or []:
        if "=" not in item:
            raise ConfigError(f"--method-dims {item!r} must look like METHOD=D1,D2, e.g. umap=2.")
        name, sizes = item.split("=", 1)
        method_dims[name.strip()] = _int_list(sizes, "method-dims")
    out = Path(args.out) if args.out else Path("runs") / f"compare-{Path(str(args.data)).stem}"
    if (out / f"{STEM}.csv").exists() and not args.force:
        raise ConfigError(f"{str(out)!r} already holds a comparison; pass --force to replace it or choose another --out.")
    data = load_data(args, nan_hint="aekit compare needs complete data: PCA and the other baselines take no missing values")
    result = compare(data, methods=methods, dims=dims, method_options=options, seed=args.seed, max_train=args.max_train,
                     trust_points=args.trust_points, inverse_points=args.inverse_points, method_dims=method_dims or None,
                     verbose=not args.quiet)
    print(result.to_markdown(), end="")
    paths = result.save(out, STEM)
    info = result.info
    print(f"\n{info['dataset']}: {info['n_train']} train / {info['n_test']} test points, {info['n_features']} features; "
          f"trustworthiness on the first {info['trustworthiness_points']} training points.")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    failed = [f"{r['method']} (d={r['dim']})" for r in result.rows if r["status"] == "failed"]
    if failed:
        print(f"failed: {', '.join(failed)} (see the note column)")
    return 0
