"""Typed, frozen configuration dataclasses.

Every model is built from its config alone (``Model(config)``); configs round-trip through plain
JSON (``to_dict`` / ``from_dict``) and reject unknown keys, so a typo in a config file or a CLI
option is an error rather than a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from .errors import ConfigError

T = TypeVar("T", bound="Config")

ACTIVATIONS = ("relu", "tanh", "softplus", "sigmoid", "elu", "gelu", "leaky_relu", "identity")
ARCHITECTURES = ("mlp", "conv")


def as_bool(value: Any, name: str) -> bool:
    """A boolean option as a config reads it: true/false, or the strings true, false, 1, 0, yes, no."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(f"{name}={value!r} must be true or false.")


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Convert a JSON value (lists, numbers) to the annotated field type, or raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{name}={value!r} has the wrong type.")
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{name}={value!r} must be a list of values.")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, name) for v in value)
    if annotation is Any:
        return value
    if annotation is bool:
        return as_bool(value, name)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):   # numpy integers too
            raise ConfigError(f"{name}={value!r} must be an integer.")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} must be an integer.") from None
        if not as_float.is_integer():
            raise ConfigError(f"{name}={value!r} must be an integer.")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be a number.")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r} must be a number.") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name}={value!r} must be a finite number.")
        return number
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}={value!r} must be a string.")
        return value
    return value


@dataclass(frozen=True)
class Config:
    """Base of all configs: JSON round trip, unknown keys rejected, validation in ``validate``."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(value, hints[f.name], f.name)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for values out of range; subclasses extend it."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise ConfigError(f"A {cls.__name__} must be a mapping of options, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown option {unknown[0]!r} for {cls.__name__}; known options: {', '.join(sorted(known))}."
            )
        return cls(**data)

    def replace(self: T, **changes: Any) -> T:
        return self.from_dict({**self.to_dict(), **changes})


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}.")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value!r} must be {'non-negative' if allow_zero else 'positive'}.")


@dataclass(frozen=True)
class ModelConfig(Config):
    """Fields every model shares: the data shape, the latent size and the network shape.

    ``input_shape`` is the per-item shape the model sees, e.g. (784,) or (1, 28, 28); an MLP
    flattens it, a conv network needs (C, H, W) with H and W divisible by 2**len(conv_channels).
    """

    input_shape: tuple[int, ...] = (784,)
    latent_dim: int = 2
    hidden_dims: tuple[int, ...] = (400,)
    activation: str = "relu"
    architecture: str = "mlp"
    conv_channels: tuple[int, ...] = (32, 64)
    num_classes: int = 0
    # "data": before the first training step the decoder's output bias is set so that p(x|z) has the
    # training data's mean (Bernoulli: the logit of each pixel's mean, clipped to [0.001, 0.999]), as
    # in Burda et al.'s code; "zero": the layer's own initialization.
    output_bias: str = "zero"

    kind: ClassVar[str] = "model"

    def validate(self) -> None:
        if not self.input_shape or any(d <= 0 for d in self.input_shape):
            raise ConfigError(f"input_shape={self.input_shape!r} must be a non-empty list of positive sizes.")
        check_positive("latent_dim", self.latent_dim)
        if any(h <= 0 for h in self.hidden_dims):
            raise ConfigError(f"hidden_dims={self.hidden_dims!r} must be positive sizes.")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_positive("num_classes", self.num_classes, allow_zero=True)
        check_choice("output_bias", self.output_bias, ("zero", "data"))
        if self.architecture == "conv" and (not self.conv_channels or any(c <= 0 for c in self.conv_channels)):
            raise ConfigError(f"conv_channels={self.conv_channels!r} must be one or more positive channel counts.")
        if self.architecture == "conv":
            if len(self.input_shape) != 3:
                raise ConfigError(
                    f"architecture='conv' needs input_shape (C, H, W), got {self.input_shape!r}."
                )
            factor = 2 ** len(self.conv_channels)
            if self.input_shape[1] % factor or self.input_shape[2] % factor:
                raise ConfigError(
                    f"architecture='conv' with {len(self.conv_channels)} stride-2 layers needs H and W "
                    f"divisible by {factor}, got {self.input_shape[1:]!r}."
                )

    @property
    def input_dim(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n


OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
SCHEDULES = ("none", "cosine", "step", "multistep", "plateau", "exponential")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything the training loop needs; the same seed on the same machine gives the same weights."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    schedule: str = "none"
    step_size: int = 30
    milestones: tuple[int, ...] = ()  # "multistep": epochs after which lr is multiplied by gamma (once per mention)
    gamma: float = 0.1
    min_lr: float = 0.0
    grad_clip: float = 0.0
    patience: int = 0
    min_delta: float = 0.0
    seed: int = 0
    bf16: bool = False
    device: str = "cpu"
    progress: bool = True
    tensorboard: bool = False
    drop_last: bool = False
    checkpoint_every: int = 1

    def validate(self) -> None:
        check_positive("epochs", self.epochs)
        check_positive("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_positive("grad_clip", self.grad_clip, allow_zero=True)
        check_positive("patience", self.patience, allow_zero=True)
        check_positive("checkpoint_every", self.checkpoint_every)
        check_positive("eps", self.eps)
        check_positive("step_size", self.step_size)
        check_positive("gamma", self.gamma, allow_zero=True)
        check_positive("min_lr", self.min_lr, allow_zero=True)
        check_positive("min_delta", self.min_delta, allow_zero=True)
        if self.schedule == "plateau" and self.gamma >= 1:
            raise ConfigError(f"gamma={self.gamma!r} must be below 1 for schedule='plateau' (it multiplies the lr on a plateau).")
        _check_device(self.device)
        if self.schedule == "multistep" and (
            not self.milestones
            or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in self.milestones)
            or list(self.milestones) != sorted(self.milestones)
        ):
            raise ConfigError(f"milestones={self.milestones!r} must be non-decreasing positive epochs for schedule='multistep' (a repeated epoch multiplies by gamma again).")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas={self.betas!r} must be two numbers in [0, 1).")


def _check_device(device: str) -> None:
    """A device string torch understands, on a backend this machine has."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={device!r} is not a device; expected e.g. 'cpu', 'cuda' or 'cuda:1'.") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} needs CUDA, which this machine's PyTorch does not see; use device='cpu'.")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r} needs Apple's MPS, which this machine does not have; use device='cpu'.")


def estimator_train_config(est: Any, epochs: int, seed: int) -> TrainConfig:
    """The TrainConfig of one of aekit's scikit-learn estimators: ``epochs`` and ``seed`` as given, the
    estimator's ``batch_size``, ``learning_rate``, ``verbose`` and ``device``, and from its
    ``train_options`` (a dict or None) any other field; an option those parameters already set is refused."""
    own = {"epochs": ("max_epochs", int(epochs)), "batch_size": ("batch_size", int(est.batch_size)),
           "lr": ("learning_rate", float(est.learning_rate)), "seed": ("random_state", int(seed)),
           "progress": ("verbose", bool(est.verbose)), "device": ("device", est.device)}
    if est.train_options is not None and not isinstance(est.train_options, dict):
        raise ConfigError(f"train_options={est.train_options!r} must be a dict of TrainConfig fields or None.")
    options = dict(est.train_options or {})
    for key, (param, _) in own.items():
        if key in options:
            raise ConfigError(f"train_options[{key!r}] duplicates the estimator's {param} parameter; set {param} instead.")
    return TrainConfig.from_dict({**options, **{key: value for key, (_, value) in own.items()}})


def config_fields(cls: type[Config]) -> list[dataclasses.Field]:
    return list(fields(cls))
