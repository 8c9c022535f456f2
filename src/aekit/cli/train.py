"""``aekit train``: fit any registered model on a named data set or a user file."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .. import distributed as dist
from .. import registry
from ..config import TrainConfig, as_bool
from ..data.chunked import value_range
from ..errors import CheckpointError, ConfigError, DataError
from ..io import STATE_NAME, atomic_write_text
from ..nn import UNIT_INTERVAL_LIKELIHOODS
from .common import add_data_args, data_record, load_data, parse_assignments, use_run_data


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model and write a run folder (checkpoints, metrics.csv, figures)",
                       description="Train a model. Model options not listed here go through -o key=value "
                                   "(any field of the model's config); trainer options through -t key=value.")
    p.add_argument("--model", help=f"registered model (default vae): {', '.join(sorted(registry.REGISTRY))}")
    add_data_args(p)
    p.add_argument("--out", help="run folder (default runs/MODEL-DATA); an existing run is never overwritten")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint; the lr follows the schedule of the "
                        "options given now (--lr, --schedule, -t gamma=...) from that pass on, as if the run had "
                        "used them from its start (--schedule none or plateau: hold the checkpoint's lr)")
    p.add_argument("--init", metavar="MODEL_OR_RUN",
                   help="start from the weights of a saved model (or a run folder's best/ model) instead of a fresh "
                        "one: its model, options and preprocessing carry over, model options given now change the "
                        "ones that keep every weight's shape (e.g. -o k=50 to fine-tune an IWAE with more samples, "
                        "-o train_prior_only=true to refit a VQ-VAE's prior), and --data defaults to its run's data; "
                        "the trainer (optimizer, schedule, epochs) starts afresh")
    m = p.add_argument_group("model")
    m.add_argument("--latent-dim", type=int)
    m.add_argument("--hidden-dims", type=int, nargs="*")
    m.add_argument("--architecture", choices=["mlp", "conv"])
    m.add_argument("--activation")
    m.add_argument("--likelihood", help="decoder distribution, e.g. bernoulli or gaussian")
    m.add_argument("--beta", type=float)
    m.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="any model config field")
    m.add_argument("--model-config", help="JSON file of model config fields")
    d = p.add_argument_group("preprocessing")
    d.add_argument("--scale", choices=["none", "standardize", "minmax"], help="default none")
    d.add_argument("--binarize", choices=["none", "dynamic", "threshold"], help="default none")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--schedule")
    t.add_argument("--grad-clip", type=float)
    t.add_argument("--patience", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--labels", type=int, metavar="N", help="semi-supervised (models that learn from labels, e.g. m2): keep N training labels, balanced over the classes and drawn with --seed; the rest are unlabelled (-1)")
    t.add_argument("--labelled-fraction", type=float, metavar="F",
                   help="with --labels: repeat the labelled rows so that they make up this share of the rows where "
                        "they are fewer (default 0.1), so that most batches hold some")
    t.add_argument("--device")
    t.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for PyTorch (default: PyTorch's choice, one per core); 1 suits a machine "
                        "shared with other jobs")
    t.add_argument("--bf16", action="store_true", default=None)
    t.add_argument("--tensorboard", action="store_true", default=None)
    t.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    t.add_argument("-t", "--train-option", action="append", metavar="KEY=VALUE", help="any TrainConfig field")
    p.set_defaults(func=run_train)


def model_options(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"input_shape": list(data.shape)}
    if data.num_classes:
        opts["num_classes"] = data.num_classes
    opts.update(given_model_options(args))
    model_cls, config_cls = registry.get(args.model)
    known = {f for f in config_cls.__dataclass_fields__}
    # num_classes is filled in from the data; drop it silently for configs that do not take it.
    if "num_classes" not in known:
        opts.pop("num_classes", None)
    return opts


def given_model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The model options on the command line: --model-config, the named flags, then -o."""
    opts: dict[str, Any] = {}
    if args.model_config:
        path = Path(args.model_config)
        if not path.is_file():
            raise ConfigError(f"Model config file {str(path)!r} does not exist.")
        try:
            opts.update(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Model config file {str(path)!r} is not valid JSON ({exc.msg}).") from None
    for key in ("latent_dim", "hidden_dims", "architecture", "activation", "likelihood", "beta"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    opts.update(parse_assignments(args.option, "Model"))
    return opts


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for key in ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "schedule", "grad_clip",
                "patience", "seed", "device", "bf16", "tensorboard", "progress"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    opts.update(parse_assignments(args.train_option, "Trainer"))
    return opts


def run_train(args: argparse.Namespace) -> int:
    from ..data import Preprocessing
    from ..evaluate import write_figures
    from ..io import from_pretrained
    from ..train import fit

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, not {args.threads}.")
        torch.set_num_threads(args.threads)
    init = None   # (folder, config.json, run.json) of the saved model a warm start begins from
    if args.init:
        if args.resume:
            raise ConfigError("--init starts a new run from a saved model and --resume continues a run from its "
                              "own checkpoint; give one or the other.")
        init = _init_source(args)
    args.model = args.model or "vae"
    out = Path(args.out or f"runs/{args.model}-{Path(str(args.data)).stem}")
    info_path = out / "run.json"
    if args.resume:
        if not info_path.is_file():
            raise ConfigError(f"Cannot resume: {str(out)!r} holds no run (no run.json).")
        saved = _read_run_info(info_path)
        given = [flag for flag, key in (("-o", "option"), ("--model-config", "model_config"), ("--latent-dim", "latent_dim"),
                                        ("--hidden-dims", "hidden_dims"), ("--architecture", "architecture"),
                                        ("--activation", "activation"), ("--likelihood", "likelihood"), ("--beta", "beta"))
                 if getattr(args, key, None) not in (None, [])]
        if given:
            raise ConfigError(f"--resume continues the model saved in {str(out)!r}; {given[0]} cannot change it "
                              "(start a new run for another model).")
        args.model = saved["model"]
        use_run_data(args, saved, resume=True)  # read and split the data as the first sitting did
        has_checkpoint = (out / "last" / STATE_NAME).is_file() or (out / "metrics.csv").is_file()
        if saved.get("init") and not has_checkpoint:   # a warm start that stopped before its first checkpoint
            init = _init_source(args, saved["init"]["from"], carry_data=False)
            if init[1].get("weights_sha256") != saved["init"].get("weights_sha256"):
                raise CheckpointError(f"Cannot resume: the saved model {str(init[0])!r} this run started from has "
                                      "changed since (its weights' checksum differs); start a new run.")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"The run folder {str(out)!r} already exists and is not empty; choose another --out or pass --resume.")
    if not args.data:
        raise ConfigError("No data given; pass --data NAME_OR_PATH.")
    model_cls, config_cls = registry.get(args.model)
    # NaN in a data file is a missing value for a model trained with missing_values=True
    options = saved["model_config"] if args.resume else {**(init[1].get("config", {}) if init else {}),
                                                          **given_model_options(args)}
    data = load_data(args, missing_values=as_bool(options.get("missing_values", False), "missing_values"),
                     nan_hint="NaN marks a missing value for a model trained with -o missing_values=true: vae, cvae, iwae")
    if args.resume:
        model_opts, train_opts = saved["model_config"], {**saved["train_config"], **train_options(args)}
    elif init is not None:
        model_opts, train_opts = given_model_options(args), train_options(args)
    else:
        model_opts, train_opts = model_options(args, data), train_options(args)
    tc = TrainConfig.from_dict(train_opts)
    torch.manual_seed(tc.seed)  # the initial weights come from the seed too
    if init is not None:
        model = _warm_start(init, model_opts if not args.resume else saved["init"].get("options", {}), args, data)
        config = model.config
    else:
        config = config_cls.from_dict(model_opts)
        model = model_cls(config)
    scale, binarize = args.scale or "none", args.binarize or "none"
    pre = Preprocessing(input_shape=tuple(data.shape), flatten=False, scale=scale, binarize=binarize)
    pre = pre.fit(data.train.x) if scale != "none" else pre
    if args.resume and saved.get("preprocessing"):
        pre = Preprocessing.from_dict(saved["preprocessing"])
    elif init is not None and getattr(model, "preprocessing", None) is not None:
        pre = model.preprocessing   # the weights were fitted to inputs prepared this way
    model.preprocessing = pre
    x = pre.apply(data.train.x)
    val_x = pre.apply(data.val.x) if data.val is not None else None
    _check_likelihood(config, x, pre)   # with the CLI's hints; then the model's own checks (shape, ...)
    model.check_inputs(x, name="the training data", binarize=pre.binarize == "dynamic")
    y, val_y = data.train.y, (data.val.y if data.val is not None else None)
    if (model.uses_labels or model.is_conditional) and y is None:
        what = "learns from labels" if model.uses_labels else "is conditioned on labels"
        raise DataError(f"Model {args.model!r} {what}, but the data set {data.name!r} has none.")
    # labels kept and their share: this command's, else the run's (resume), else the run the model came from
    earlier = saved if args.resume else (init[2] if init is not None else {})
    n_labels = args.labels if args.labels is not None else earlier.get("labels")
    fraction = args.labelled_fraction if args.labelled_fraction is not None else earlier.get("labelled_fraction")
    if fraction is not None and n_labels is None:
        raise ConfigError("--labelled-fraction sets the share of labelled rows and needs --labels N.")
    if n_labels is not None:  # aekit.semi: N balanced labels (-1 elsewhere), the labelled rows oversampled
        from ..semi import DEFAULT_LABELLED_FRACTION, semi_supervised_arrays
        fraction = DEFAULT_LABELLED_FRACTION if fraction is None else fraction
        x, y = semi_supervised_arrays(model, x, y, n_labels, seed=tc.seed, labelled_fraction=fraction)
    out.mkdir(parents=True, exist_ok=True)
    if args.resume and int(os.environ.get("RANK", "0")) == 0:
        _record_resume(info_path, saved, tc.to_dict(), out)
    if not args.resume and int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        atomic_write_text(info_path, json.dumps({
            "model": args.model, **data_record(args, data),
            "model_config": config.to_dict(), "train_config": tc.to_dict(), "preprocessing": pre.to_dict(),
            "n_train": int(x.shape[0]), "n_val": 0 if val_x is None else int(val_x.shape[0]),
            "labels": n_labels, "labelled_fraction": fraction,
            **({"init": {"from": str(init[0]), "weights_sha256": init[1].get("weights_sha256"),
                         "options": model_opts}} if init is not None else {}),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }, indent=2) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    say = print if int(os.environ.get("RANK", "0")) == 0 else (lambda *a, **k: None)
    mapped = " (memory-mapped)" if data.memory_mapped else ""
    say(f"training {args.model} ({n_params:,} parameters) on {data.name}{mapped}: {x.shape[0]} train, "
          f"{0 if val_x is None else val_x.shape[0]} validation, {tc.epochs} epochs -> {out}")

    def report(row: dict[str, float]) -> None:
        terms = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k.startswith(("train_", "val_")))
        say(f"epoch {int(row['epoch'])}/{tc.epochs}  {terms}  ({row['seconds']:.1f}s)", flush=True)

    # A first sitting that stopped before its first checkpoint left only run.json: start it afresh.
    resume = args.resume and ((out / "last" / STATE_NAME).is_file() or (out / "metrics.csv").is_file())
    if getattr(model, "has_pretraining", False) and getattr(config, "pretrain_epochs", 0) > 0 and not resume \
            and init is None:   # a warm start's layers are trained already
        # Greedy layer-wise pretraining (Bengio et al. 2007; Vincent et al. 2010) before supervised fine-tuning.
        say(f"greedy layer-wise pretraining: {config.pretrain_epochs} epochs per layer -> {out / 'layers'}")
        model.pretrain(x, config=tc.replace(epochs=config.pretrain_epochs), val_x=val_x, run_dir=out / "layers")
    result = fit(model, x, y, config=tc, val_x=val_x, val_y=val_y, run_dir=out, resume=resume,
                 binarize=pre.binarize == "dynamic", on_epoch_end=report)  # pre: the saved one on resume
    if not dist.is_main():
        return 0  # only rank 0 writes figures
    best = from_pretrained(out / "best") if (out / "best").exists() else model
    evaluation = data.test or data.val or data.train
    xe = pre.apply(evaluation.x)
    if pre.binarize == "dynamic":
        xe = torch.bernoulli(xe, generator=torch.Generator().manual_seed(0))
    figs = write_figures(best, xe, evaluation.y, out / "figures", result.history, data.class_names)
    stop = " (stopped early)" if result.stopped_early else ""
    print(f"done in {result.seconds:.1f}s{stop}; best epoch {result.best_epoch} "
          f"(monitored loss {result.best_val:.4f}); model in {out / 'best'}; {len(figs)} figures in {out / 'figures'}")
    return 0


def _init_source(args: argparse.Namespace, path: str | None = None,
                 carry_data: bool = True) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The saved model ``--init`` names (a model folder, or a run folder's best/ then last/, as an
    absolute path), its config.json and its run's run.json ({} for a model saved outside a run). The
    model carries over, and with ``carry_data`` the data: without --data that run's, and the same
    data (however named) is read and split as that run read it, so its test rows stay out of training."""
    from ..io import read_config
    from .common import resolve_model_dir, run_info

    source = resolve_model_dir(path or args.init).resolve()
    meta = read_config(source)
    if args.model and args.model != meta["model_type"]:
        raise ConfigError(f"--init {str(source)!r} holds a model of kind {meta['model_type']!r}, not {args.model!r}; "
                          "drop --model or start from a model of that kind.")
    args.model = meta["model_type"]
    info = run_info(source)
    if carry_data:
        use_run_data(args, info)
    return source, meta, info


def _warm_start(init: tuple[Path, dict[str, Any], dict[str, Any]], options: dict[str, Any], args: argparse.Namespace, data: Any) -> Any:
    """The model ``--init`` names, with the model options given now, its preprocessing unchanged."""
    from ..io import from_pretrained

    source, meta, _ = init
    pre = meta.get("preprocessing") or {}
    expected = tuple(pre.get("input_shape") or meta["config"].get("input_shape") or ())
    if expected and tuple(data.shape) != expected:
        raise DataError(f"The model in {str(source)!r} was trained on items of shape {expected}; "
                        f"{data.name!r} has items of shape {tuple(data.shape)}.")
    for flag, given, saved in (("--scale", args.scale, pre.get("scale", "none")),
                               ("--binarize", args.binarize, pre.get("binarize", "none"))):
        if given is not None and given != saved:
            raise ConfigError(f"The model in {str(source)!r} was trained with {flag} {saved}; a warm start keeps "
                              f"its preprocessing, so {flag} {given} cannot change it.")
    options = {k: v for k, v in options.items() if k not in ("input_shape", "num_classes")}
    return from_pretrained(source, **options).train()


def _record_resume(info_path: Path, saved: dict[str, Any], train_config: dict[str, Any], out: Path) -> None:
    """Note in run.json the trainer options a resumed sitting changed (e.g. more epochs, a new schedule),
    with the pass it continued from, so that the run folder tells how every pass was trained."""
    from ..train import read_metrics

    first = saved.get("train_config", {})
    for sitting in saved.get("resumed", []):
        first = {**first, **sitting["changed"]}
    changed = {k: v for k, v in train_config.items() if first.get(k) != v}
    if "lr" in changed and train_config.get("schedule") in ("none", "plateau"):
        raise ConfigError("A resumed run with --schedule none or plateau continues from its checkpoint's learning "
                          "rate, so --lr cannot change it; pass a closed-form --schedule (its curve is rebuilt "
                          "from --lr) or start a new run.")
    if not changed:
        return
    metrics = out / "metrics.csv"
    passes = len(read_metrics(metrics)) if metrics.is_file() else 0
    saved.setdefault("resumed", []).append(
        {"after_epoch": passes, "changed": changed, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    atomic_write_text(info_path, json.dumps(saved, indent=2) + "\n")


def _read_run_info(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"Cannot resume: {str(path)!r} is not a readable run record ({e}).") from None
    missing = [key for key in ("model", "data", "model_config", "train_config") if key not in saved] \
        if isinstance(saved, dict) else ["all of its fields"]
    if missing:
        raise CheckpointError(f"Cannot resume: {str(path)!r} lacks {', '.join(missing)}.")
    return saved


def _check_likelihood(config: Any, x: torch.Tensor, pre: Any) -> None:
    """A decoder for [0, 1] (Bernoulli, continuous Bernoulli, discretized logistic) needs targets in
    [0, 1], and dynamic binarization needs probabilities; say so before training rather than train on
    nonsense."""
    lik = getattr(config, "likelihood", None)
    if pre.binarize != "dynamic" and lik not in UNIT_INTERVAL_LIKELIHOODS:
        return
    lo, hi = value_range(x, ignore_nan=True)  # NaN: missing values; one pass, a block of rows at a time
    if pre.binarize == "dynamic" and (lo < 0 or hi > 1):
        raise DataError(
            f"--binarize dynamic draws each value as a Bernoulli probability, but this data spans "
            f"[{lo:.3g}, {hi:.3g}]; use --scale minmax or --binarize none."
        )
    if lik in UNIT_INTERVAL_LIKELIHOODS and (lo < 0 or hi > 1):
        raise DataError(
            f"likelihood={lik!r} needs data in [0, 1], but this data spans [{lo:.3g}, {hi:.3g}]; "
            "use --scale minmax or --likelihood gaussian."
        )
