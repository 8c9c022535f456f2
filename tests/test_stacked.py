"""Stacked (denoising) autoencoders: greedy layer-wise pretraining then supervised fine-tuning
(Vincent et al. 2010), on scikit-learn's 8x8 digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aekit import registry
from aekit.config import TrainConfig
from aekit.errors import ConfigError, DataError
from aekit.io import from_pretrained
from aekit.models.stacked import StackedAE
from aekit.train import fit


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def build(name="stacked_dae", **options) -> StackedAE:
    torch.manual_seed(0)
    return registry.build(name, {"input_shape": [64], "hidden_dims": [48, 32], "latent_dim": 24, **options})


def test_layer_autoencoders_match_the_stack():
    model = build()
    aes = [model.layer_autoencoder(k) for k in range(3)]
    assert [ae.config.input_shape for ae in aes] == [(64,), (48,), (32,)]
    assert [ae.config.latent_dim for ae in aes] == [48, 32, 24]
    assert all(ae.config.corruption == "masking" and ae.config.corruption_level == 0.25 for ae in aes)
    assert registry.name_of(aes[0]) == "dae"
    assert registry.name_of(build(contractive_weight=0.1).layer_autoencoder(0)) == "cae"
    assert build("stacked_ae").layer_autoencoder(1).config.corruption == "none"


def test_adopting_a_layer_copies_its_encoder_and_decoder():
    model = build(tied_weights=False)
    torch.manual_seed(1)
    ae = model.layer_autoencoder(0)
    model._adopt(0, ae)
    x = torch.rand(5, 64)
    with torch.no_grad():
        assert torch.allclose(model.features(x, 1), ae.encode(x).z)
        assert torch.allclose(model.decoders[0](model.features(x, 1)), ae.decode(ae.encode(x).z).loc, atol=1e-6)
    assert int(model.pretrained_layers) == 1


def test_greedy_pretraining_trains_each_layer_on_the_codes_below(digits, tmp_path):
    x, _, xv, _ = digits
    model = build()
    before = float((model.reconstruct(x) - x).pow(2).mean().detach())
    seen = []
    results = model.pretrain(x, config=TrainConfig(epochs=4, batch_size=50, lr=3e-3, progress=False), val_x=xv,
                             run_dir=tmp_path, on_epoch_end=lambda k, row: seen.append(k))
    assert seen == [0] * 4 + [1] * 4 + [2] * 4
    assert len(results) == 3 and int(model.pretrained_layers) == 3
    for k, r in enumerate(results):
        assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
        layer = from_pretrained(tmp_path / f"layer{k + 1}" / "last")
        assert torch.allclose(layer.encoder.mlp[0].weight, model.layers[k].weight)
    with torch.no_grad():
        after = float((model.reconstruct(x) - x).pow(2).mean())
    assert after < 0.5 * before                      # the unrolled pretrained stack reconstructs


def test_fine_tuning_learns_to_classify_and_round_trips(digits, tmp_path):
    x, y, xt, yt = digits
    model = build("stacked_ae")
    model.pretrain(x, config=TrainConfig(epochs=5, batch_size=50, lr=1e-2, progress=False))
    result = fit(model, x, y, config=TrainConfig(epochs=12, batch_size=32, lr=1e-2, progress=False), val_x=xt, val_y=yt)
    assert result.history[-1]["val_error"] < 0.15
    probs = model.predict_proba(xt)
    assert probs.shape == (len(xt), 10) and torch.allclose(probs.sum(1), torch.ones(len(xt)))
    err = float((model.predict(xt) != yt).float().mean())
    assert err == pytest.approx(model.evaluation_terms(xt, yt)["error"])
    model.save_pretrained(tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m")
    assert registry.name_of(loaded) == "stacked_ae" and int(loaded.pretrained_layers) == 3
    assert torch.equal(loaded.predict(xt), model.predict(xt))


def test_cross_entropy_loss_and_label_requirement():
    model = build()
    x, y = torch.rand(6, 64), torch.tensor([0, 1, 2, 3, 4, 5])
    out = model(x, y)
    lo = model.loss(x, out, y)
    expected = -torch.log_softmax(out.logits.detach(), 1)[torch.arange(6), y].mean()
    assert float(lo.total.detach()) == pytest.approx(float(expected), rel=1e-6)
    assert float(lo.terms["error"]) == pytest.approx(float((out.logits.argmax(1) != y).float().mean()))
    with pytest.raises(DataError, match="labels"):
        model.loss(x, out, None)


@pytest.mark.parametrize("options, match", [
    ({"num_classes": 1}, "2 classes"),
    ({"architecture": "conv", "input_shape": [1, 8, 8]}, "mlp"),
    ({"corruption": "masking", "corruption_level": 2.0}, "fraction"),
])
def test_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        registry.build("stacked_ae", {"input_shape": [64], **options})


def test_pretrain_and_finetune_commands(tmp_path, capsys):
    import json

    from aekit.cli import main

    common = ["--data", "digits", "--hidden-dims", "16", "--latent-dim", "16", "--batch-size", "64", "--no-progress"]
    assert main(["pretrain", "--model", "stacked_dae", *common, "--epochs", "1", "--out", str(tmp_path / "pre")]) == 0
    assert (tmp_path / "pre" / "layers" / "layer2" / "last").is_dir()
    assert from_pretrained(tmp_path / "pre" / "pretrained").pretrained_layers == 2
    assert main(["finetune", str(tmp_path / "pre"), "--epochs", "2", "--no-progress", "--out", str(tmp_path / "ft")]) == 0
    info = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert info["model"] == "stacked_dae" and info["pretrained_layers"] == 2
    assert "test error" in capsys.readouterr().out
    assert main(["finetune", "--model", "stacked_ae", *common, "--epochs", "1", "--out", str(tmp_path / "ft0")]) == 0
    assert json.loads((tmp_path / "ft0" / "run.json").read_text())["pretrained_layers"] == 0
    assert main(["finetune", "--model", "dae", *common, "--out", str(tmp_path / "bad")]) == 2
    assert main(["finetune", "--model", "stacked_ae", *common, "--out", str(tmp_path / "ft")]) == 2   # not empty
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "twelve.npz", x=rng.random((60, 64)), y=np.arange(60) % 12)   # 12 classes; the stack has 10
    capsys.readouterr()
    assert main(["finetune", str(tmp_path / "pre"), "--data", str(tmp_path / "twelve.npz"), "--epochs", "1",
                 "--out", str(tmp_path / "ft12")]) == 2
    assert "labels must lie in 0..9" in capsys.readouterr().err and not (tmp_path / "ft12").exists()
    assert main(["finetune", "--model", "stacked_ae", *common, "--pretrain-epochs", "-3", "--out", str(tmp_path / "n")]) == 2
