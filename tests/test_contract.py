"""One suite over the whole registry: every model meets the contract of DESIGN.md.

Shapes, a finite loss with detached terms, fitting a tiny batch, a deterministic ``embed``, the
save/load round trip, sampling, and configs that round-trip and reject unknown keys.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from aekit import ConfigError, from_pretrained, registry
from aekit.config import TrainConfig
from aekit.models.base import GaussianLatent, LossOutput
from aekit.nn import DecoderOutput
from aekit.train import evaluate_loss, fit
from conftest import tiny_options

NAMES = sorted(registry.REGISTRY)


def build(name: str, **extra):
    model_cls, config_cls = registry.REGISTRY[name]
    torch.manual_seed(0)
    return model_cls(config_cls.from_dict({**tiny_options(config_cls), **extra}))


def labels_for(model, y):
    return y if (model.is_conditional or model.uses_labels) else None


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_finite_loss(name, digits_batch):
    x, y = digits_batch
    model = build(name)
    yl = labels_for(model, y)
    out = model(x, yl)
    lo = model.loss(x, out, yl)
    assert isinstance(lo, LossOutput)
    assert lo.total.dim() == 0 and torch.isfinite(lo.total)
    assert lo.total.requires_grad
    for key, value in lo.terms.items():
        assert value.dim() == 0 and not value.requires_grad, key
    z = model.embed(x, yl)
    assert z.shape == (x.shape[0], model.latent_dim)
    assert model.reconstruct(x, yl).shape == x.shape
    assert isinstance(model.decode(z, yl), DecoderOutput)


@pytest.mark.parametrize("name", NAMES)
def test_embed_is_deterministic_in_train_and_eval_mode(name, digits_batch):
    x, y = digits_batch
    model = build(name)
    yl = labels_for(model, y)
    model.train()
    torch.testing.assert_close(model.embed(x, yl), model.embed(x, yl), rtol=0, atol=0)
    model.eval()
    torch.testing.assert_close(model.embed(x, yl), model.embed(x, yl), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_overfits_a_tiny_batch(name, digits_batch):
    x, y = digits_batch
    x, y = x[:16], y[:16]
    model = build(name)
    before = evaluate_loss(model, x, y)["loss"]
    fit(model, x, y, config=TrainConfig(epochs=150, batch_size=16, lr=3e-3, progress=False))
    after = evaluate_loss(model, x, y)["loss"]
    assert after < before - 0.3 * abs(before), (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, digits_batch, tmp_path):
    x, y = digits_batch
    model = build(name)
    yl = labels_for(model, y)
    fit(model, x, y, config=TrainConfig(epochs=1, batch_size=32, progress=False))
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    torch.testing.assert_close(loaded.embed(x, yl), model.embed(x, yl), rtol=0, atol=0)
    torch.testing.assert_close(loaded.reconstruct(x, yl), model.reconstruct(x, yl), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in NAMES if registry.REGISTRY[n][0].is_generative])
def test_sampling(name):
    model = build(name).eval()
    y = torch.arange(6) % 10 if model.is_conditional else None
    a = model.sample(6, y, generator=torch.Generator().manual_seed(1))
    b = model.sample(6, y, generator=torch.Generator().manual_seed(1))
    assert a.shape == (6, *model.config.input_shape)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_imputation_keeps_the_observed_values(name, digits_batch):
    from aekit.evaluate.impute import choose_method, impute

    x, y = digits_batch
    model = build(name).eval()
    yl = labels_for(model, y)
    observed = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) > 0.3
    method = choose_method(model, x, yl)
    result = impute(model, x, observed, yl, method="auto", steps=3, generator=torch.Generator().manual_seed(0))
    assert result.mean.shape == x.shape and torch.isfinite(result.mean).all()
    assert torch.equal(result.mean[observed], x[observed]) and torch.equal(result.sample[observed], x[observed])
    assert (result.acceptance is None) == (method in ("iterate", "importance"))
    assert result.method == method
    gaussian_q = model.is_generative and isinstance(model.encode(x, yl), GaussianLatent)
    expected = "pseudo_gibbs" if gaussian_q else "iterate"      # trained on complete data: pseudo-Gibbs
    assert method == expected
    assert (result.effective_samples is None) == (method != "importance")


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip_and_unknown_keys(name):
    _, config_cls = registry.REGISTRY[name]
    config = config_cls.from_dict(tiny_options(config_cls))
    assert config_cls.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="Unknown option 'no_such_option'"):
        config_cls.from_dict({**config.to_dict(), "no_such_option": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.latent_dim = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_model_does_not_mutate_its_config(name, digits_batch):
    x, y = digits_batch
    model = build(name)
    before = model.config.to_dict()
    fit(model, x, y, config=TrainConfig(epochs=1, batch_size=32, progress=False))
    assert model.config.to_dict() == before


def test_registry_names_resolve_back():
    for name, (model_cls, config_cls) in registry.REGISTRY.items():
        model = model_cls(config_cls.from_dict(tiny_options(config_cls)))
        assert registry.name_of(model) == name


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ConfigError, match="Unknown model 'nope'"):
        registry.build("nope")


def test_bad_config_values_are_clear_errors():
    _, config_cls = registry.REGISTRY["vae"]
    with pytest.raises(ConfigError, match="latent_dim"):
        config_cls(latent_dim=0)
    with pytest.raises(ConfigError, match="likelihood"):
        config_cls(likelihood="poisson")
    with pytest.raises(ConfigError, match="divisible"):
        config_cls(input_shape=(1, 10, 10), architecture="conv")
    with pytest.raises(ConfigError, match="integer"):
        config_cls.from_dict({"latent_dim": "two"})


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_conv_architecture(name, digits_batch):
    x, _ = digits_batch
    model = build(name, architecture="conv", conv_channels=[8, 16])
    out = model(x)
    assert torch.isfinite(model.loss(x, out).total)
    assert model.reconstruct(x).shape == x.shape
