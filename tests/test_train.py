"""The training loop: reproducibility, resume, early stopping, checkpoints and non-finite losses."""

from __future__ import annotations

import csv

import pytest
import torch

from aekit import ConfigError, DataError, TrainingError, from_pretrained, registry
from aekit.config import TrainConfig
from aekit.io import load_state
from aekit.models.base import LossOutput
from aekit.train import fit
from conftest import tiny_options


def vae(**extra):
    model_cls, config_cls = registry.REGISTRY["vae"]
    torch.manual_seed(0)
    return model_cls(config_cls.from_dict({**tiny_options(config_cls), **extra}))


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def data(digits_batch):
    from aekit.data import load_dataset

    d = load_dataset("digits")
    return d.train.x[:256], d.val.x[:64]


def test_same_seed_same_weights_other_seed_other_weights(data):
    x, _ = data
    runs = []
    for seed in (3, 3, 4):
        m = vae()
        fit(m, x, config=TrainConfig(epochs=2, batch_size=32, seed=seed, progress=False), binarize=True)
        runs.append(weights(m))
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_resume_continues_exactly(data, tmp_path):
    x, vx = data
    c4 = TrainConfig(epochs=4, batch_size=32, progress=False)
    straight = vae()
    fit(straight, x, config=c4, val_x=vx, binarize=True)
    first = vae()
    fit(first, x, config=TrainConfig(epochs=2, batch_size=32, progress=False), val_x=vx, run_dir=tmp_path / "r", binarize=True)
    resumed = vae()
    result = fit(resumed, x, config=c4, val_x=vx, run_dir=tmp_path / "r", resume=True, binarize=True)
    assert [int(r["epoch"]) for r in result.history] == [1, 2, 3, 4]
    assert same(weights(straight), weights(resumed))
    assert int(resumed.train_step) == 4 * 8


def _lrs(result):
    return [r["lr"] for r in result.history]


def test_resumed_run_follows_the_resuming_schedule(data, tmp_path):
    """A longer cosine run follows the new curve (not the old one restarted past its end); a change of
    scheduler class works; schedule 'none' holds the lr the checkpoint ended with."""
    import math

    x, _ = data
    lr = 1e-3

    def run(folder, resume=False, **kw):
        c = TrainConfig(batch_size=64, lr=lr, progress=False, **kw)
        return fit(vae(), x, config=c, run_dir=tmp_path / folder, resume=resume, binarize=True)

    def cosine(e, total):  # the lr used in epoch e (1-based) of a cosine schedule over `total` epochs
        return lr * (1 + math.cos(math.pi * (e - 1) / total)) / 2

    run("cos", epochs=2, schedule="cosine")
    longer = run("cos", resume=True, epochs=4, schedule="cosine")
    assert _lrs(longer)[2:] == pytest.approx([cosine(3, 4), cosine(4, 4)], rel=1e-9)

    run("exp", epochs=2, schedule="exponential", gamma=0.5)
    switched = run("exp", resume=True, epochs=4, schedule="cosine")
    assert _lrs(switched) == pytest.approx([lr, lr / 2, cosine(3, 4), cosine(4, 4)], rel=1e-9)

    run("hold", epochs=2, schedule="exponential", gamma=0.5)
    held = run("hold", resume=True, epochs=4, schedule="none")
    assert _lrs(held) == pytest.approx([lr, lr / 2, lr / 4, lr / 4], rel=1e-9)

    run("plateau", epochs=2, schedule="plateau", patience=2)
    state = load_state(tmp_path / "plateau" / "last" / "trainer_state.pt")["scheduler"]
    plateau = run("plateau", resume=True, epochs=3, schedule="plateau", patience=2, gamma=0.5)
    resumed = load_state(tmp_path / "plateau" / "last" / "trainer_state.pt")["scheduler"]
    assert resumed["factor"] == 0.5                                   # the resuming config's setting
    assert resumed["last_epoch"] == state["last_epoch"] + 1 == 3        # its counters carried on, not restarted
    assert _lrs(plateau) == pytest.approx([lr] * 3)


def test_resume_with_an_unchanged_schedule_continues_exactly(data, tmp_path):
    x, _ = data
    c = TrainConfig(epochs=4, batch_size=64, progress=False, schedule="cosine")
    straight = vae()
    whole = fit(straight, x, config=c, binarize=True)

    class Interrupt(Exception):
        pass

    def stop_after_two(row):
        if row["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(vae(), x, config=c, run_dir=tmp_path, binarize=True, on_epoch_end=stop_after_two)
    resumed = vae()
    rest = fit(resumed, x, config=c, run_dir=tmp_path, resume=True, binarize=True)
    assert _lrs(rest) == _lrs(whole)
    assert same(weights(straight), weights(resumed))


def test_dynamic_binarization_validates_on_one_fixed_binary_sample(data):
    from aekit.train import evaluate_loss

    x, vx = data
    m = vae()
    result = fit(m, x, config=TrainConfig(epochs=1, batch_size=32, seed=5, progress=False), val_x=vx, binarize=True)
    binary = torch.bernoulli(vx, generator=torch.Generator().manual_seed(5))
    reported = result.history[0]["val_loss"]
    assert reported == pytest.approx(evaluate_loss(m, binary)["loss"], rel=1e-5)
    assert reported != pytest.approx(evaluate_loss(m, vx)["loss"], rel=1e-3)  # not the grey-level images


def test_run_folder_outputs(data, tmp_path):
    x, vx = data
    m = vae()
    fit(m, x, config=TrainConfig(epochs=3, batch_size=64, progress=False), val_x=vx, run_dir=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    for key in ("train_loss", "train_kl", "train_reconstruction", "val_loss", "lr", "seconds", "cpu_seconds"):
        assert key in rows[0]
    assert all(float(r["cpu_seconds"]) > 0 for r in rows)
    for sub in ("best", "last"):
        assert (tmp_path / sub / "model.safetensors").is_file()
    assert (tmp_path / "last" / "trainer_state.pt").is_file()
    best_epoch = min(rows, key=lambda r: float(r["val_loss"]))["epoch"]
    assert from_pretrained(tmp_path / "best") is not None
    import json

    assert str(json.loads((tmp_path / "best" / "config.json").read_text())["epoch"]) == best_epoch


def test_resuming_a_run_with_fewer_metrics_columns_keeps_its_file_readable(data, tmp_path):
    # A run folder written before a column existed: its header is kept and the new column left out.
    from aekit.train import read_metrics

    x, _ = data
    fit(vae(), x, config=TrainConfig(epochs=2, batch_size=64, progress=False), run_dir=tmp_path)
    path = tmp_path / "metrics.csv"
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index("cpu_seconds")
    path.write_text("\n".join(",".join(v for i, v in enumerate(l.split(",")) if i != col) for l in lines) + "\n")
    fit(vae(), x, config=TrainConfig(epochs=3, batch_size=64, progress=False), run_dir=tmp_path, resume=True)
    rows = read_metrics(path)
    assert [r["epoch"] for r in rows] == [1.0, 2.0, 3.0] and all("cpu_seconds" not in r for r in rows)


def test_existing_run_is_not_overwritten(data, tmp_path):
    x, _ = data
    fit(vae(), x, config=TrainConfig(epochs=1, progress=False), run_dir=tmp_path)
    before = (tmp_path / "metrics.csv").read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        fit(vae(), x, config=TrainConfig(epochs=1, progress=False), run_dir=tmp_path)
    assert (tmp_path / "metrics.csv").read_text() == before


def test_early_stopping(data):
    x, vx = data
    # A learning rate of zero never improves after the first epoch.
    m = vae()
    result = fit(m, x, config=TrainConfig(epochs=50, lr=1e-12, patience=3, progress=False), val_x=vx)
    assert result.stopped_early and result.epochs_run == 4


def test_non_finite_loss_stops_and_keeps_last_good_weights(data, tmp_path):
    x, _ = data
    m = vae()
    fit(m, x, config=TrainConfig(epochs=1, batch_size=64, progress=False), run_dir=tmp_path / "ok")
    good = weights(m)
    bad = x.clone()
    bad[5, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="x has 1 NaN or infinite values"):   # bad data: refused before training
        fit(m, bad, config=TrainConfig(epochs=2, batch_size=64, progress=False))
    original, steps = m.loss, []

    def diverging(xb, out, yb=None):   # the loss turns NaN after a few good steps, as a diverging run does
        lo = original(xb, out, yb)
        steps.append(1)
        return LossOutput(lo.total * float("nan"), lo.terms) if len(steps) > 3 else lo

    m.loss = diverging
    with pytest.raises(TrainingError, match="not finite.*learning rate"):
        fit(m, x, config=TrainConfig(epochs=2, batch_size=64, progress=False))
    assert len(steps) > 3 and same(good, weights(m))


def test_inputs_the_model_cannot_use_are_refused_in_one_sentence(data):
    import numpy as np

    from aekit.evaluate import density_report, elbo_terms, log_likelihood
    from aekit.evaluate.report import evaluate_model

    x, vx = data
    m = vae()
    c = TrainConfig(epochs=1, batch_size=64, progress=False)
    for bad, match in ((x.numpy(), "must be a torch.Tensor"), (x.double(), "has dtype torch.float64"),
                       (x.reshape(x.shape[0], -1)[:, :10], "the model takes"), (x[:0], "no rows"),
                       (x * 3, "needs x in \\[0, 1\\]")):
        with pytest.raises(DataError, match=match):
            fit(m, bad, config=c)
    with pytest.raises(DataError, match="val_x has shape"):
        fit(m, x, config=c, val_x=vx[:, :, :4])
    with pytest.raises(DataError, match="one row per input"):
        fit(m, x, torch.zeros(3, dtype=torch.long), config=c)
    with pytest.raises(DataError, match="no rows"):
        log_likelihood(m, x[:0], k=2)
    with pytest.raises(ConfigError, match="k=-1"):
        density_report(m, x[:8], k=-1)
    with pytest.raises(ConfigError, match="batch_size=0"):
        elbo_terms(m, x[:8], batch_size=0)
    m.train()
    evaluate_model(m, x[:8])
    assert m.training                                   # the caller's mode is restored
    assert registry.build("vae", {**tiny_options(registry.REGISTRY["vae"][1]), "latent_dim": np.int64(3)}).config.latent_dim == 3


def test_schedules_and_optimizers_run(data):
    x, vx = data
    for opt, sched in (("adamw", "cosine"), ("sgd", "step"), ("adagrad", "plateau"), ("adam", "exponential")):
        m = vae()
        res = fit(m, x, config=TrainConfig(epochs=2, optimizer=opt, schedule=sched, gamma=0.5, grad_clip=1.0,
                                           progress=False), val_x=vx)
        assert res.epochs_run == 2
    m = vae()
    res = fit(m, x, config=TrainConfig(epochs=2, schedule="cosine", lr=1e-3, progress=False))
    assert res.history[1]["lr"] < 1e-3
    m = vae()  # piecewise constant: x gamma after epoch 1, x gamma^2 after epoch 3 (Burda et al.'s 3^i-pass stages, shortened)
    res = fit(m, x, config=TrainConfig(epochs=5, schedule="multistep", milestones=(1, 3, 3), gamma=0.5, lr=1e-3, progress=False))
    assert [r["lr"] for r in res.history] == pytest.approx([1e-3, 5e-4, 5e-4, 1.25e-4, 1.25e-4])


def test_bf16_autocast_trains(data):
    x, _ = data
    m = vae()
    res = fit(m, x, config=TrainConfig(epochs=2, bf16=True, progress=False))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] + 1.0
    assert all(p.dtype == torch.float32 for p in m.parameters())


def test_bad_train_config_values():
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop2")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    for bad in ((), (3, 1), (0, 2), ("a",)):
        with pytest.raises(ConfigError, match="milestones"):
            TrainConfig(schedule="multistep", milestones=bad)


def test_logged_means_weight_every_example_once(data):
    """Uneven batches (the last one short) and more steps than one logging reduction (256) give the
    same per-example means as a single batch: the log weights batches by their size."""
    from aekit.train import evaluate_loss

    x = torch.cat([data[0], data[0][:44]])                     # 300 rows: 300 batches of 1 > 256
    model_cls, config_cls = registry.REGISTRY["ae"]
    torch.manual_seed(0)
    ae = model_cls(config_cls.from_dict(tiny_options(config_cls)))
    whole = evaluate_loss(ae, x, batch_size=300)
    for batch_size in (1, 7):
        split = evaluate_loss(ae, x, batch_size=batch_size)
        assert split.keys() == whole.keys()
        for k in whole:
            assert split[k] == pytest.approx(whole[k], rel=1e-5, abs=1e-6), (batch_size, k)
