"""How aekit's scikit-learn estimators pickle their fitted torch module: as safetensors bytes plus its
JSON config (``pack`` / ``unpack``), never as torch internals."""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from . import registry


def pack(model: torch.nn.Module) -> dict[str, Any]:
    """A torch model as its registry name, JSON config, preprocessing, train/eval mode and safetensors bytes."""
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    pre = getattr(model, "preprocessing", None)
    return {
        "model_type": registry.name_of(model),
        "config": model.config.to_dict(),
        "preprocessing": pre.to_dict() if pre is not None else None,
        "weights": _st_save(weights),
        "training": model.training,
    }


def unpack(blob: dict[str, Any]) -> torch.nn.Module:
    """The model ``pack`` describes (in eval mode unless it was packed in training mode)."""
    model_cls, config_cls = registry.get(blob["model_type"])
    model = model_cls(config_cls.from_dict(blob["config"]))
    model.load_state_dict(_st_load(blob["weights"]), strict=True)
    if blob.get("preprocessing"):
        from .data import Preprocessing

        model.preprocessing = Preprocessing.from_dict(blob["preprocessing"])
    return model.train(bool(blob.get("training", False)))


class PicklesModule:
    """Mixin (before BaseEstimator): every fitted torch module among the estimator's attributes (``model_``,
    ``m1_``, ...) travels through pickle as ``pack``'s blob."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
        modules = {k: pack(v) for k, v in state.items() if isinstance(v, torch.nn.Module)}
        for key in modules:
            del state[key]
        if modules:
            state["_module_blobs"] = modules
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        blobs = state.pop("_module_blobs", {})
        if "_model_blob" in state:                       # pickles of aekit before every module was packed
            blobs["model_"] = state.pop("_model_blob")
        state = {k: (v.unpack() if isinstance(v, _LegacyPacked) else v) for k, v in state.items()}
        super().__setstate__(state)
        for key, blob in blobs.items():
            setattr(self, key, unpack(blob))


class _LegacyPacked:
    """How the semi-supervised estimators pickled a module before ``PicklesModule`` (read only)."""

    def unpack(self) -> torch.nn.Module:
        return unpack(self.__dict__)
