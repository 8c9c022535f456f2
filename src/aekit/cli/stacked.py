"""``aekit pretrain`` and ``aekit finetune``: stacked (denoising) autoencoders (Vincent et al. 2010).

``aekit pretrain --model stacked_dae --data mnist --out runs/sdae`` trains the layers greedily, one
autoencoder per layer on the codes of the layers below, and saves the stack in runs/sdae/pretrained.
``aekit finetune runs/sdae --data mnist --out runs/sdae-ft`` then trains the whole stack and its
classifier head on the labels. ``aekit finetune --model stacked_dae --pretrain-epochs 10 ...`` does
both in one run, and with ``--pretrain-epochs 0`` it is the no-pretraining baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from .. import registry
from ..config import TrainConfig
from ..errors import ConfigError, DataError
from ..io import atomic_write_text
from .common import add_data_args, data_record, load_data, resolve_model_dir, run_info, use_run_data


def _model_args(p: argparse.ArgumentParser) -> None:
    m = p.add_argument_group("model (with --model)")
    m.add_argument("--latent-dim", type=int, help="size of the top layer")
    m.add_argument("--hidden-dims", type=int, nargs="*", help="sizes of the layers below the top one")
    m.add_argument("--activation")
    m.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="any model config field, e.g. corruption_level=0.25 or contractive_weight=0.1")
    m.add_argument("--model-config", help="JSON file of model config fields")
    p.set_defaults(architecture=None, likelihood=None, beta=None)


def _train_args(p: argparse.ArgumentParser) -> None:
    t = p.add_argument_group("training")
    for flag, kind in (("--epochs", int), ("--batch-size", int), ("--lr", float), ("--weight-decay", float),
                       ("--grad-clip", float), ("--patience", int), ("--seed", int)):
        t.add_argument(flag, type=kind)
    for flag in ("--optimizer", "--schedule", "--device"):
        t.add_argument(flag)
    t.add_argument("--bf16", action="store_true", default=None)
    t.add_argument("--tensorboard", action="store_true", default=None)
    t.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    t.add_argument("-t", "--train-option", action="append", metavar="KEY=VALUE", help="any TrainConfig field")
    p.add_argument("--scale", choices=["none", "standardize", "minmax"], default="none")
    p.add_argument("--out", required=True, help="run folder (must not hold a run already)")


def register(sub: Any) -> None:
    p = sub.add_parser("pretrain", help="greedy layer-wise pretraining of a stacked (denoising) autoencoder",
                       description="Pretrain a stacked model layer by layer (each layer an autoencoder on the "
                                   "codes of the layers below); the stack is saved in OUT/pretrained.")
    p.add_argument("--model", default="stacked_dae", help="a stacked model: stacked_ae or stacked_dae")
    add_data_args(p)
    _model_args(p)
    _train_args(p)
    p.set_defaults(func=run_pretrain)

    f = sub.add_parser("finetune", help="supervised fine-tuning of a (pretrained) stacked autoencoder",
                       description="Fine-tune a stack and its classifier head on labels: a pretrain run or "
                                   "saved model, or a new --model (optionally pretrained first with --pretrain-epochs).")
    f.add_argument("pretrained", nargs="?", help="pretrain run folder or saved model (omit to start from --model)")
    f.add_argument("--model", help="start from a new model of this name instead")
    add_data_args(f)
    _model_args(f)
    _train_args(f)
    f.add_argument("--pretrain-epochs", type=int, default=0, help="with --model: epochs of greedy pretraining per layer first")
    f.add_argument("--pretrain-lr", type=float, help="learning rate of that pretraining (default: --lr)")
    f.set_defaults(func=run_finetune)


def _new_model(args: argparse.Namespace, data: Any) -> Any:
    from .train import model_options

    model_cls, config_cls = registry.get(args.model)
    if not getattr(model_cls, "has_pretraining", False):
        raise ConfigError(f"Model {args.model!r} has no layer-wise pretraining; use stacked_ae or stacked_dae.")
    return model_cls(config_cls.from_dict(model_options(args, data)))


def _prepare(args: argparse.Namespace) -> tuple[Path, Any, TrainConfig]:
    from .train import train_options

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"The run folder {str(out)!r} already exists and is not empty; choose another --out.")
    tc = TrainConfig.from_dict(train_options(args))
    torch.manual_seed(tc.seed)  # the initial weights come from the seed too
    return out, load_data(args, nan_hint="stacked models take no missing values"), tc


def _inputs(model: Any, data: Any, args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor | None]:
    from ..data import Preprocessing

    pre = getattr(model, "preprocessing", None)
    if pre is None:
        pre = Preprocessing(input_shape=tuple(data.shape), flatten=False, scale=args.scale)
        pre = pre.fit(data.train.x) if args.scale != "none" else pre
        model.preprocessing = pre
    return pre.apply(data.train.x), (pre.apply(data.val.x) if data.val is not None else None)


def _progress(prefix: str, epochs: int):
    def report(*a: Any) -> None:
        layer, row = (a if len(a) == 2 else (None, a[0]))
        where = f"layer {layer + 1} " if layer is not None else ""
        terms = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k.startswith(("train_", "val_")))
        print(f"{prefix}{where}epoch {int(row['epoch'])}/{epochs}  {terms}  ({row['seconds']:.1f}s)", flush=True)
    return report


def _pretrain(model: Any, x: torch.Tensor, val_x: torch.Tensor | None, tc: TrainConfig, run_dir: Path) -> float:
    t0 = time.perf_counter()
    model.pretrain(x, config=tc, val_x=val_x, run_dir=run_dir, on_epoch_end=_progress("pretrain ", tc.epochs))
    return time.perf_counter() - t0


def run_pretrain(args: argparse.Namespace) -> int:
    out, data, tc = _prepare(args)
    model = _new_model(args, data)
    x, val_x = _inputs(model, data, args)
    out.mkdir(parents=True, exist_ok=True)
    print(f"pretraining {args.model} layers {list(model.config.layer_sizes)} on {data.name}: {x.shape[0]} examples, "
          f"{tc.epochs} epochs per layer -> {out}")
    seconds = _pretrain(model, x, val_x, tc, out / "layers")
    model.save_pretrained(out / "pretrained")
    atomic_write_text(out / "run.json", json.dumps({
        "model": args.model, **data_record(args, data), "stage": "pretrain",
        "model_config": model.config.to_dict(), "train_config": tc.to_dict(),
        "preprocessing": model.preprocessing.to_dict(), "seconds": seconds,
    }, indent=2) + "\n")
    print(f"pretrained {len(model.layers)} layers in {seconds:.1f}s; stack saved in {out / 'pretrained'}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from ..io import from_pretrained
    from ..train import fit

    if args.pretrain_epochs < 0:
        raise ConfigError(f"--pretrain-epochs {args.pretrain_epochs} must be 0 or more.")
    if bool(args.pretrained) == bool(args.model):
        raise ConfigError("Give either a pretrained stack (a pretrain run folder or saved model) or --model NAME, not both or neither.")
    if args.pretrained:
        src = Path(args.pretrained)
        model_dir = resolve_model_dir(src / "pretrained" if (src / "pretrained").is_dir() else src)
        use_run_data(args, run_info(src / "pretrained" if (src / "pretrained").is_dir() else src))
    out, data, tc = _prepare(args)
    model = from_pretrained(model_dir) if args.pretrained else _new_model(args, data)
    if not getattr(model, "has_pretraining", False):
        raise ConfigError(f"{type(model).__name__} is not a stacked autoencoder; fine-tuning needs stacked_ae or stacked_dae.")
    x, val_x = _inputs(model, data, args)
    y, val_y = data.train.y, (data.val.y if data.val is not None else None)
    if y is None:
        raise DataError(f"Fine-tuning learns from labels, but the data set {data.name!r} has none.")
    classes = int(model.config.num_classes)
    for labels in (y, val_y):
        if labels is not None and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise DataError(f"The model classifies {classes} classes, so labels must lie in 0..{classes - 1}; "
                            f"{data.name!r} has labels from {int(labels.min())} to {int(labels.max())}.")
    out.mkdir(parents=True, exist_ok=True)
    pretrain_seconds = 0.0
    if args.model and args.pretrain_epochs > 0:
        ptc = tc.replace(epochs=args.pretrain_epochs, **({"lr": args.pretrain_lr} if args.pretrain_lr else {}))
        pretrain_seconds = _pretrain(model, x, val_x, ptc, out / "layers")
    name = registry.name_of(model)
    atomic_write_text(out / "run.json", json.dumps({
        "model": name, **data_record(args, data), "stage": "finetune",
        "pretrained_from": args.pretrained, "pretrained_layers": int(model.pretrained_layers),
        "model_config": model.config.to_dict(), "train_config": tc.to_dict(), "preprocessing": model.preprocessing.to_dict(),
        "n_train": int(x.shape[0]), "n_val": 0 if val_x is None else int(val_x.shape[0]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }, indent=2) + "\n")
    print(f"fine-tuning {name} ({int(model.pretrained_layers)} pretrained layers) on {data.name}: "
          f"{x.shape[0]} train, {0 if val_x is None else val_x.shape[0]} validation, {tc.epochs} epochs -> {out}")
    result = fit(model, x, y, config=tc, val_x=val_x, val_y=val_y, run_dir=out, on_epoch_end=_progress("", tc.epochs))
    best = from_pretrained(out / "best") if (out / "best").exists() else model
    line = f"done in {result.seconds + pretrain_seconds:.1f}s (pretraining {pretrain_seconds:.1f}s); best epoch {result.best_epoch}"
    if data.test is not None and data.test.y is not None:
        err = float((best.predict(best.preprocessing.apply(data.test.x)) != data.test.y).float().mean())
        line += f"; test error {100 * err:.2f}%"
    print(f"{line}; model in {out / 'best'}")
    return 0
