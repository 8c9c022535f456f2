"""How aekit's scikit-learn estimators pickle their fitted torch module: as safetensors bytes plus its
JSON config (``pack`` / ``unpack``), never as torch internals."""

from __future__ import annotations

from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from . import registry


def pack(model: torch.nn.Module) -> dict[str, Any]:
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    pre = getattr(model, "preprocessing", None)
    return {
        "model_type": registry.name_of(model),
        "config": model.config.to_dict(),
        "preprocessing": pre.to_dict() if pre is not None else None,
        "weights": _st_save(weights),
    }


def unpack(blob: dict[str, Any]) -> torch.nn.Module:
    model_cls, config_cls = registry.get(blob["model_type"])
    model = model_cls(config_cls.from_dict(blob["config"]))
    model.load_state_dict(_st_load(blob["weights"]), strict=True)
    if blob.get("preprocessing"):
        from .data import Preprocessing

        model.preprocessing = Preprocessing.from_dict(blob["preprocessing"])
    return model.eval()


class PicklesModule:
    """Mixin (before BaseEstimator): the fitted ``model_`` travels through pickle as ``pack``'s blob."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
        model = state.pop("model_", None)
        if model is not None:
            state["_model_blob"] = pack(model)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        blob = state.pop("_model_blob", None)
        super().__setstate__(state)
        if blob is not None:
            self.model_ = unpack(blob)
