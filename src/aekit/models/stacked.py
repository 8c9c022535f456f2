"""Stacked autoencoders and stacked denoising autoencoders (Bengio et al. 2007; Vincent et al. 2010,
"Stacked Denoising Autoencoders", JMLR 11, section 3.5 and figure 3).

A stack of K sigmoid layers h_k = s(W_k h_{k-1} + b_k), sizes (*hidden_dims, latent_dim), with a
softmax classifier on the top code:

1. greedy layer-wise pretraining (``pretrain``): layer k is the encoder of a one-layer autoencoder
   (plain, denoising, sparse or contractive — the same regularizer fields as ``RegularizedAE``)
   trained with ``aekit.train.fit`` on the clean codes of layers 1..k-1;
2. supervised fine-tuning of the whole stack on the cross-entropy of the classifier head: the
   ordinary ``aekit.train.fit(model, x, y)`` (the model ``uses_labels``).

Without step 1 the same network is simply trained from its random initialization (the "no
pretraining" baseline). The pretraining decoders are kept, so ``decode``/``reconstruct`` give the
unrolled stack's reconstruction (the decoders are not changed by fine-tuning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig, TrainConfig, check_choice, check_positive
from ..corruption import check_corruption
from ..errors import ConfigError, DataError
from ..nn import LIKELIHOODS, DecoderOutput, activation, model_device
from .base import Autoencoder, LossOutput, PointLatent
from .regularized import SPARSITY, CAEConfig, DAEConfig, RegularizedAE, SparseAEConfig


@dataclass(frozen=True)
class StackedAEConfig(ModelConfig):
    """Layer sizes are (*hidden_dims, latent_dim): the defaults are three sigmoid layers of 500 units.

    ``likelihood`` is the first layer's reconstruction loss (bernoulli: cross-entropy for inputs in
    [0, 1]); upper sigmoid layers always use cross-entropy on the codes below them.
    """

    hidden_dims: tuple[int, ...] = (500, 500)
    latent_dim: int = 500
    activation: str = "sigmoid"
    num_classes: int = 10
    likelihood: str = "bernoulli"
    tied_weights: bool = True
    corruption: str = "none"
    corruption_level: float = 0.0
    n_copies: int = 1
    sparsity: str = "none"
    sparsity_target: float = 0.05
    sparsity_weight: float = 3.0
    contractive_weight: float = 0.0
    pretrain_epochs: int = 10        # epochs per layer when pretraining is run with the fine-tuning schedule

    def validate(self) -> None:
        super().validate()
        if self.architecture != "mlp":
            raise ConfigError(f"A stacked autoencoder is a stack of dense layers: architecture={self.architecture!r}, expected 'mlp'.")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes={self.num_classes!r}: a stacked autoencoder ends in a classifier and needs at least 2 classes.")
        check_choice("likelihood", self.likelihood, LIKELIHOODS)
        check_corruption(self.corruption, self.corruption_level, "corruption")
        check_positive("n_copies", self.n_copies)
        check_choice("sparsity", self.sparsity, SPARSITY)
        check_positive("contractive_weight", self.contractive_weight, allow_zero=True)
        check_positive("pretrain_epochs", self.pretrain_epochs, allow_zero=True)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (*self.hidden_dims, self.latent_dim)


@dataclass(frozen=True)
class StackedDAEConfig(StackedAEConfig):
    """Vincent et al. 2010's SDAE: masking noise with nu = 25% at every layer."""

    corruption: str = "masking"
    corruption_level: float = 0.25


@dataclass
class StackedOutput:
    latent: PointLatent       # top code, (N, latent_dim)
    logits: torch.Tensor      # classifier logits, (N, num_classes)


class StackedAE(Autoencoder):
    config_class = StackedAEConfig
    uses_labels = True
    has_pretraining = True

    def __init__(self, config: StackedAEConfig):
        super().__init__(config)
        sizes = (config.input_dim, *config.layer_sizes)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.decoders = nn.ModuleList(nn.Linear(b, a) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = activation(config.activation)
        self.classifier = nn.Linear(config.latent_dim, config.num_classes)
        self.reset_layers()
        # How many layers were initialized by greedy pretraining (saved with the weights).
        self.register_buffer("pretrained_layers", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def reset_layers(self) -> None:
        """Glorot & Bengio 2010 uniform initialization, U(+-g sqrt(6 / (fan_in + fan_out))) with zero
        biases; g = 4 for sigmoid layers (the sigmoid form of the rule, as in the deeplearning.net
        stacked-DAE tutorial). The layer autoencoders of pretraining start from these weights too."""
        gain = 4.0 if self.config.activation == "sigmoid" else 1.0
        for layer in self.layers:
            bound = gain * math.sqrt(6.0 / (layer.in_features + layer.out_features))
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)

    # -- contract ---------------------------------------------------------------------------------
    def features(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """The code of layer ``depth`` (default: the top), (N, sizes[depth])."""
        h = x.reshape(x.shape[0], -1)
        for layer in self.layers[: len(self.layers) if depth is None else depth]:
            h = self.act(layer(h))
        return h

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> PointLatent:
        return PointLatent(self.features(x))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> DecoderOutput:
        """The unrolled pretraining decoders: top code -> ... -> the input's distribution."""
        h = z
        for k in range(len(self.decoders) - 1, -1, -1):
            h = self.decoders[k](h)
            if k > 0:
                h = torch.sigmoid(h) if self._layer_likelihood(k) == "bernoulli" else h
        return DecoderOutput(h.reshape(h.shape[0], *self.config.input_shape), self.config.likelihood)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> StackedOutput:
        latent = self.encode(x)
        return StackedOutput(latent, self.classifier(latent.z))

    def loss(self, x: torch.Tensor, out: StackedOutput, y: torch.Tensor | None = None) -> LossOutput:
        """Fine-tuning loss: cross-entropy of the classifier head; ``error`` is the batch error rate."""
        if y is None:
            raise DataError(f"{type(self).__name__} is fine-tuned on labels; pass the class labels y with the inputs.")
        ce = F.cross_entropy(out.logits, y.long())
        error = (out.logits.argmax(1) != y).float().mean()
        return LossOutput(ce, {"cross_entropy": ce.detach(), "error": error.detach()})

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Class probabilities, (N, num_classes), in eval mode and batched."""
        was_training = self.training
        self.eval()
        probs = torch.cat([F.softmax(self.forward(xb).logits, 1) for xb in x.split(batch_size)])
        self.train(was_training)
        return probs

    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Predicted classes, (N,) int64."""
        return self.predict_proba(x, batch_size).argmax(1)

    @torch.no_grad()
    def evaluation_terms(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1000) -> dict[str, float]:
        codes = torch.cat([self.features(xb) for xb in x.split(batch_size)])
        out = {"mean_activation": float(codes.mean()), "pretrained_layers": float(self.pretrained_layers)}
        if y is not None:
            err = float((self.predict(x, batch_size) != y.to(x.device)).float().mean())
            out.update(error=err, accuracy=1.0 - err)
        return out

    # -- greedy layer-wise pretraining ------------------------------------------------------------
    def _layer_likelihood(self, k: int) -> str:
        """Layer 0 reconstructs the input with the configured likelihood; upper layers reconstruct
        sigmoid codes in (0, 1) with cross-entropy (squared error for other activations)."""
        if k == 0:
            return self.config.likelihood
        return "bernoulli" if self.config.activation == "sigmoid" else "gaussian"

    def layer_autoencoder(self, k: int) -> RegularizedAE:
        """The one-layer autoencoder that pretrains layer k, with the stack's regularizer fields.

        Its config class is the registered one of its regularizer (cae, sparse_ae, else dae with
        the stack's corruption, possibly none) so its checkpoints can be saved and reloaded.
        """
        c = self.config
        sizes = (c.input_dim, *c.layer_sizes)
        options: dict[str, Any] = dict(
            input_shape=(sizes[k],), hidden_dims=(), latent_dim=sizes[k + 1], activation=c.activation,
            code_activation=c.activation, likelihood=self._layer_likelihood(k), tied_weights=c.tied_weights,
            corruption=c.corruption, corruption_level=c.corruption_level, n_copies=c.n_copies,
            sparsity=c.sparsity, sparsity_target=c.sparsity_target, sparsity_weight=c.sparsity_weight,
            contractive_weight=c.contractive_weight,
        )
        cls = CAEConfig if c.contractive_weight > 0 else SparseAEConfig if c.sparsity != "none" else DAEConfig
        ae = RegularizedAE(cls(**options))
        with torch.no_grad():                                       # start from the stack's initialization
            ae.encoder.mlp[0].weight.copy_(self.layers[k].weight)
            ae.encoder.mlp[0].bias.copy_(self.layers[k].bias)
        return ae.to(self.layers[k].weight.device)

    @torch.no_grad()
    def _codes(self, x: torch.Tensor, depth: int, batch_size: int = 2000) -> torch.Tensor:
        return torch.cat([self.features(xb, depth) for xb in x.split(batch_size)])

    def pretrain(
        self, x: torch.Tensor, *, config: TrainConfig | None = None, val_x: torch.Tensor | None = None,
        run_dir: str | Path | None = None, layers: int | None = None, on_epoch_end: Any = None,
    ) -> list[Any]:
        """Greedy layer-wise pretraining on unlabelled x (N, *input_shape); returns one TrainResult per layer.

        ``config`` defaults to TrainConfig(epochs=pretrain_epochs). Layer k is trained on the clean
        codes of layers 1..k-1 (Vincent et al. 2010, fig. 3); its encoder weights then initialize
        layer k and its decoder is kept for ``decode``. ``run_dir`` gets one folder per layer.
        """
        from ..train import fit

        config = config or TrainConfig(epochs=max(1, self.config.pretrain_epochs))
        device = model_device(self)
        results = []
        for k in range(len(self.layers) if layers is None else layers):
            codes = self._codes(x.to(device), k)
            val_codes = self._codes(val_x.to(device), k) if val_x is not None else None
            ae = self.layer_autoencoder(k).to(device)
            sub = Path(run_dir) / f"layer{k + 1}" if run_dir is not None else None
            hook = (lambda row, k=k: on_epoch_end(k, row)) if on_epoch_end is not None else None
            results.append(fit(ae, codes, config=config, val_x=val_codes, run_dir=sub, on_epoch_end=hook))
            self._adopt(k, ae)
        return results

    @torch.no_grad()
    def _adopt(self, k: int, ae: RegularizedAE) -> None:
        """Copy a trained layer autoencoder's encoder into layer k and its decoder into decoder k."""
        enc = ae.encoder.mlp[0]                                     # Linear(d_in -> d_out)
        self.layers[k].weight.copy_(enc.weight)
        self.layers[k].bias.copy_(enc.bias)
        if ae.config.tied_weights:
            self.decoders[k].weight.copy_(enc.weight.t())
            self.decoders[k].bias.copy_(ae.decoder.bias[0])
        else:
            self.decoders[k].weight.copy_(ae.decoder.mlp[0].weight)
            self.decoders[k].bias.copy_(ae.decoder.mlp[0].bias)
        self.pretrained_layers.fill_(max(int(self.pretrained_layers), k + 1))
