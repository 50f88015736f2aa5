"""One file per trained model: weights, config, preprocessing state, training history.

The file is a :func:`torch.save` dictionary holding only tensors and JSON strings,
so :func:`load_model` reads it with ``weights_only=True`` (no pickled code):

==================  ==========================================================
key                 content
==================  ==========================================================
``format``          ``"contrastx-model"``
``format_version``  1
``model_config``    JSON: ``{"kind": "embedding" | "vae" | "raw" | "leading_pt", ...}``
``state_dict``      the module's tensors
``preprocessing``   JSON: :meth:`contrastx.events.Preprocessor.state_dict` (or null)
``train_config``    JSON: the training configuration (or null)
``history``         JSON: list of per-epoch records
``class_names``     JSON: process names of the training classes, in label order
``metadata``        JSON: free-form provenance
==================  ==========================================================
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..events.container import Events

FORMAT_NAME = "contrastx-model"
FORMAT_VERSION = 1

__all__ = ["LoadedModel", "build_from_config", "load_model", "save_model"]


def build_from_config(model_config: dict[str, Any]) -> nn.Module:
    """Build an (untrained) module from a model config with a ``kind`` key."""
    from .baselines import VAE, LeadingPtBaseline, RawBaseline
    from .model import build_model

    cfg = dict(model_config)
    kind = cfg.pop("kind", "embedding")
    if kind == "embedding":
        return build_model(cfg)
    if kind == "vae":
        return VAE(**cfg)
    if kind == "raw":
        return RawBaseline()
    if kind == "leading_pt":
        return LeadingPtBaseline()
    raise ValueError(f"unknown model kind {kind!r} (embedding, vae, raw, leading_pt)")


@dataclass
class LoadedModel:
    """A model read back from a model file.

    Attributes
    ----------
    model : nn.Module
        In eval mode, on the CPU (or ``map_location``).
    model_config, preprocessing, train_config, history, class_names, metadata
        The stored records (see the module docstring).
    """

    model: nn.Module
    model_config: dict[str, Any]
    preprocessing: dict[str, Any] | None = None
    train_config: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    def embed(
        self,
        data: Events | np.ndarray | torch.Tensor,
        batch_size: int = 4096,
        device: str | torch.device | None = "cpu",
    ) -> np.ndarray:
        """:func:`contrastx.embed.embed` with this model."""
        from .model import embed

        return embed(self.model, data, batch_size=batch_size, device=device)


def save_model(
    path: str | os.PathLike,
    model: nn.Module,
    model_config: dict[str, Any],
    *,
    preprocessing: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    class_names: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a model and everything needed to reuse it into one file.

    Parameters
    ----------
    path : str or PathLike
        Output file (conventionally ``*.pt``); parent folders are created.
    model : nn.Module
    model_config : dict
        JSON-friendly config that :func:`build_from_config` turns back into ``model``'s
        architecture (include ``kind``; default ``"embedding"``).
    preprocessing, train_config, history, class_names, metadata
        Stored as JSON.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": json.dumps({"kind": "embedding", **model_config}, sort_keys=True),
        "state_dict": state,
        "preprocessing": json.dumps(preprocessing),
        "train_config": json.dumps(train_config, sort_keys=True),
        "history": json.dumps(history or []),
        "class_names": json.dumps(class_names),
        "metadata": json.dumps(metadata or {}, sort_keys=True, default=str),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Read a file written by :func:`save_model`; the model is returned in eval mode.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a contrastx model file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for foreign files
        raise ValueError(f"{path}: not a readable contrastx model file ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a contrastx model file")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written by a newer contrastx (format {payload['format_version']})"
        )
    model_config = json.loads(payload["model_config"])
    model = build_from_config(model_config)
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return LoadedModel(
        model=model,
        model_config=model_config,
        preprocessing=json.loads(payload["preprocessing"]),
        train_config=json.loads(payload["train_config"]),
        history=json.loads(payload["history"]),
        class_names=json.loads(payload["class_names"]),
        metadata=json.loads(payload["metadata"]),
    )
