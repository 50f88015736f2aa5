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
``weights_sha256``  SHA-256 of ``state_dict`` (see :func:`weights_sha256`)
``training_events`` optional, JSON: the event file trained on (see below)
``training_rows``   optional, int64 tensor: its rows in the training folds
``validation_rows`` optional, int64 tensor: its rows in the validation fold
``layout``          optional, JSON: the event layout of the raw events the model
                    takes (:meth:`contrastx.events.EventLayout.to_dict`)
``layout_sha256``   optional: that layout's :attr:`~EventLayout.fingerprint`
==================  ==========================================================

Every model records the layout of the events it takes (files without a record were
written before layouts existed and are ADC2021 models); :attr:`LoadedModel.layout`
reads it back, and embedding refuses events of another layout. A model whose input
preprocessing is a ``"layout"`` state (any event layout) is rebuilt from the stored
``preprocessing`` record, which :func:`save_model` takes from the model itself when it
is not given.

A model trained on events read from a file records that file (:class:`TrainingEvents`):
its path, a fingerprint (:func:`file_fingerprint`: size, modification time and
SHA-256) and the file rows of the training and validation events, so that a later
step (a reference sample drawn from the same file) can leave them out.
:func:`training_events` reads the record back; files without one (trained on
generated events, or written before the record existed) give ``None``.

:func:`load_model` recomputes the checksum and refuses a file whose weights do not
match it (torch itself does not check the zip archive's CRCs, so flipped bytes in a
weight would otherwise load silently); a file without a checksum (written before
checksums were stored) loads with a warning. It also checks every parameter's name
and shape against the architecture the stored config describes, and names the first
one that differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..events.container import Events
from ..events.layout import ADC2021, EventLayout, LayoutError

FORMAT_NAME = "contrastx-model"
FORMAT_VERSION = 1

__all__ = [
    "LoadedModel",
    "TrainingEvents",
    "build_from_config",
    "check_state_dict",
    "file_fingerprint",
    "load_model",
    "load_torch_file",
    "save_model",
    "training_events",
    "weights_sha256",
]

logger = logging.getLogger(__name__)


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state dict's tensors, independent of how the file stores them.

    The tensors are taken in sorted key order; for each, the key, the dtype, the shape
    and the element bytes (row-major, in the machine's byte order) are hashed.

    Parameters
    ----------
    state_dict : mapping of str to Tensor

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] must be a tensor; got {type(t).__name__}")
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}\0{t.dtype}\0{tuple(state_dict[name].shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy())
    return h.hexdigest()


def load_torch_file(
    path: str | os.PathLike, what: str, map_location: str | torch.device = "cpu"
) -> Any:
    """:func:`torch.load` with ``weights_only=True`` and a one-line error naming the file.

    Parameters
    ----------
    path : str or PathLike
        An existing file.
    what : str
        What the file should be, for the message (``"contrastx model file"``).
    map_location : str or torch.device

    Raises
    ------
    ValueError
        The file is not a torch file, is truncated, or holds objects other than tensors
        and plain values (torch refuses to unpickle those without ``weights_only=False``,
        which could run code from the file).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path}: not a {what}, or it holds objects other than tensors and plain "
            "values (refused to unpickle them)"
        ) from err
    except Exception as err:  # torch raises several types for foreign or truncated files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: not a readable {what} ({first})") from err


def check_state_dict(
    module: nn.Module, state_dict: Mapping[str, Any], source: str | os.PathLike
) -> None:
    """Check that ``state_dict`` has exactly ``module``'s tensors, with the same shapes.

    Raises
    ------
    ValueError
        One line naming ``source`` and the first missing, unexpected or differently
        shaped parameter (with both shapes), instead of torch's multi-line report.
    """
    expected = module.state_dict()
    for names, other, problem in (
        (expected, state_dict, "of the model its config describes is missing from the file"),
        (state_dict, expected, "in the file is not part of the model its config describes"),
    ):
        absent = [k for k in names if k not in other]
        if absent:
            more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
            raise ValueError(f"{source}: parameter {absent[0]!r} {problem}{more}")
    for name, ref in expected.items():
        value = state_dict[name]
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: parameter {name!r} is not a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(
                f"{source}: parameter {name!r} has shape {tuple(value.shape)} in the file but "
                f"{tuple(ref.shape)} in the model its config describes"
            )


_HASH_BLOCK = 1 << 20


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size, modification time and SHA-256 of a file, to recognise it later.

    Parameters
    ----------
    path : str or PathLike
        An existing file.

    Returns
    -------
    dict
        ``{"size": bytes, "mtime_ns": int, "sha256": 64 hex digits}``. A copy of the
        file has the same size and SHA-256 (its modification time may differ).

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            h.update(block)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "sha256": h.hexdigest()}


def _row_array(rows: Any, name: str) -> np.ndarray:
    arr = np.asarray(rows.numpy() if isinstance(rows, torch.Tensor) else rows)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D integer array; got {arr.dtype} {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative row numbers; got {int(arr.min())}")
    return arr.astype(np.int64)


@dataclass(frozen=True)
class TrainingEvents:
    """The event-file rows a model was trained and validated on.

    Attributes
    ----------
    path : str
        The event file as given to the training (resolved to an absolute path).
    fingerprint : dict
        :func:`file_fingerprint` of that file when the training started.
    train_rows : ndarray of int64
        Rows of the file (0-based, in file order) in the training folds, sorted.
    validation_rows : ndarray of int64
        Rows in the validation fold (early stopping / best-epoch selection), sorted.
    """

    path: str
    fingerprint: dict[str, Any]
    train_rows: np.ndarray
    validation_rows: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise TypeError(f"path must be a non-empty str; got {self.path!r}")
        missing = [k for k in ("size", "sha256") if k not in self.fingerprint]
        if missing:
            raise ValueError(f"fingerprint has no {missing[0]!r} entry")
        object.__setattr__(self, "train_rows", np.sort(_row_array(self.train_rows, "train_rows")))
        object.__setattr__(
            self,
            "validation_rows",
            np.sort(_row_array(self.validation_rows, "validation_rows")),
        )

    @property
    def rows(self) -> np.ndarray:
        """Every row the training read (training and validation folds), sorted, unique."""
        return np.union1d(self.train_rows, self.validation_rows)

    def matches(self, path: str | os.PathLike) -> bool:
        """Whether the file at ``path`` is the file trained on (same size and SHA-256).

        Raises
        ------
        FileNotFoundError
            ``path`` is not a file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"file not found: {path}")
        if path.stat().st_size != self.fingerprint["size"]:
            return False
        return file_fingerprint(path)["sha256"] == self.fingerprint["sha256"]

    def header(self) -> dict[str, Any]:
        """The JSON part of the record (path and fingerprint, row counts)."""
        return {
            "path": self.path,
            "fingerprint": dict(self.fingerprint),
            "n_train": int(self.train_rows.size),
            "n_validation": int(self.validation_rows.size),
        }


def _training_events_from_payload(payload: Mapping[str, Any], source: Any) -> TrainingEvents | None:
    raw = payload.get("training_events")
    if raw is None:
        return None
    try:
        header = json.loads(raw) if isinstance(raw, str) else None
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
        return TrainingEvents(
            path=header["path"],
            fingerprint=header["fingerprint"],
            train_rows=payload["training_rows"],
            validation_rows=payload["validation_rows"],
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: unreadable training_events record ({err})") from None


def training_events(model: str | os.PathLike | LoadedModel) -> TrainingEvents | None:
    """The events a model was trained on, or ``None`` when its file records none.

    Parameters
    ----------
    model : str, PathLike or LoadedModel
        A model file (read without building the model) or a model loaded by
        :func:`load_model`.

    Returns
    -------
    TrainingEvents or None
        ``None`` for models trained on events that did not come from a file (a generated
        sample) and for files written before the record existed.

    Raises
    ------
    FileNotFoundError
        Missing model file.
    ValueError
        Not a contrastx model file, or a damaged record (the message names the file).
    """
    if isinstance(model, LoadedModel):
        return model.training_events
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a path or a LoadedModel; got {type(model).__name__}")
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    payload = load_torch_file(path, "contrastx model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a contrastx model file")
    return _training_events_from_payload(payload, path)


def build_from_config(
    model_config: dict[str, Any],
    *,
    preprocessing: dict[str, Any] | None = None,
    layout: EventLayout | None = None,
) -> nn.Module:
    """Build an (untrained) module from a model config with a ``kind`` key.

    Parameters
    ----------
    model_config : dict
    preprocessing : dict, optional
        The model's preprocessing record; a ``"layout"`` state builds the model's
        :class:`~contrastx.embed.encoders.LayoutScaler` (other states are restored with
        the weights).
    layout : EventLayout, optional
        The layout of the baselines (``raw``, ``leading_pt``); default ADC2021.
    """
    from .baselines import VAE, LeadingPtBaseline, RawBaseline
    from .model import build_model

    cfg = dict(model_config)
    kind = cfg.pop("kind", "embedding")
    state = preprocessing if _is_layout_state(preprocessing) else None
    if kind == "embedding":
        return build_model(cfg if state is None else {**cfg, "preprocessing": state})
    if kind == "vae":
        return VAE(**cfg) if state is None else VAE(**cfg, preprocessing=state)
    if kind == "raw":
        return RawBaseline(layout or ADC2021, preprocessing=state)
    if kind == "leading_pt":
        return LeadingPtBaseline(layout or ADC2021)
    raise ValueError(f"unknown model kind {kind!r} (embedding, vae, raw, leading_pt)")


def _is_layout_state(preprocessing: Any) -> bool:
    return isinstance(preprocessing, Mapping) and preprocessing.get("kind") == "layout"


def _layout_preprocessing(model: nn.Module) -> dict[str, Any] | None:
    """The ``"layout"`` preprocessing state of a model's LayoutScaler, or None."""
    from .encoders import LayoutScaler

    scaler = next((m for m in model.modules() if isinstance(m, LayoutScaler)), None)
    return None if scaler is None else scaler.preprocessing_state()


def _stored_layout(payload: Mapping[str, Any], source: Any) -> EventLayout | None:
    """The layout record of a model file (checked against its fingerprint), or None."""
    raw = payload.get("layout")
    if raw is None:
        return None
    try:
        layout = EventLayout.from_json(raw, where=f"{source}: layout")
    except (LayoutError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: unreadable layout record ({err})") from None
    if payload.get("layout_sha256") not in (None, layout.fingerprint):
        raise ValueError(
            f"{source}: the layout record does not match its fingerprint (the file is damaged)"
        )
    return layout


@dataclass
class LoadedModel:
    """A model read back from a model file.

    Attributes
    ----------
    model : nn.Module
        In eval mode, on the CPU (or ``map_location``).
    model_config, preprocessing, train_config, history, class_names, metadata
        The stored records (see the module docstring).
    training_events : TrainingEvents or None
        The event-file rows the model was trained on, when the file records them.
    layout : EventLayout or None
        The layout of the raw events the model takes (ADC2021 for files written before
        layouts were recorded); None for a model fed its encoder inputs directly.
    """

    model: nn.Module
    model_config: dict[str, Any]
    preprocessing: dict[str, Any] | None = None
    train_config: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    training_events: TrainingEvents | None = None
    layout: EventLayout | None = ADC2021

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    def embed(
        self,
        data: Events | np.ndarray | torch.Tensor,
        batch_size: int = 4096,
        device: str | torch.device | None = "cpu",
        *,
        sample_seed: int | None = None,
    ) -> np.ndarray:
        """:func:`contrastx.embed.embed` with this model."""
        from .model import embed

        return embed(
            self.model, data, batch_size=batch_size, device=device, sample_seed=sample_seed
        )


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
    training_events: TrainingEvents | None = None,
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
    training_events : TrainingEvents, optional
        The event file and rows the model was trained on.

    The layout of the events the model takes (its ``layout`` attribute; ADC2021 for a
    module without one) is recorded; without ``preprocessing``, a model with a
    :class:`~contrastx.embed.encoders.LayoutScaler` records that scaler's state.
    """
    from .model import model_layout

    if training_events is not None and not isinstance(training_events, TrainingEvents):
        raise TypeError(
            f"training_events must be a TrainingEvents; got {type(training_events).__name__}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if preprocessing is None:
        preprocessing = _layout_preprocessing(model)
    layout = model_layout(model)
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
        "weights_sha256": weights_sha256(state),
    }
    if layout is not None:
        payload["layout"] = layout.to_json()
        payload["layout_sha256"] = layout.fingerprint
    if training_events is not None:
        payload["training_events"] = json.dumps(training_events.header(), sort_keys=True)
        payload["training_rows"] = torch.from_numpy(training_events.train_rows)
        payload["validation_rows"] = torch.from_numpy(training_events.validation_rows)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Read a file written by :func:`save_model`; the model is returned in eval mode.

    The weights are verified against the file's SHA-256 checksum, and their names and
    shapes against the stored architecture; a file without a checksum (from an older
    contrastx) loads with a warning.

    Raises
    ------
    FileNotFoundError
        Missing file.
    ValueError
        Not a contrastx model file, corrupted weights (checksum mismatch), or weights
        that do not fit the stored architecture; the one-line message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    payload = load_torch_file(path, "contrastx model file", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a contrastx model file")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written by a newer contrastx (format {payload['format_version']})"
        )
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a contrastx model file (no state_dict)")
    odd = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if odd is not None:
        raise ValueError(f"{path}: state_dict entry {odd!r} is not a tensor")
    stored = payload.get("weights_sha256")
    if stored is None:
        logger.warning(
            "%s: no weights checksum (written by an older contrastx); the weights cannot be "
            "verified",
            path,
        )
    elif weights_sha256(state) != stored:
        raise ValueError(
            f"{path}: the weights do not match the file's SHA-256 checksum; the file is "
            "corrupted (copy or train it again)"
        )
    from .model import model_layout

    model_config = json.loads(payload["model_config"])
    preprocessing = json.loads(payload["preprocessing"])
    stored = _stored_layout(payload, path)
    model = build_from_config(model_config, preprocessing=preprocessing, layout=stored)
    check_state_dict(model, state, path)
    model.load_state_dict(state)
    model.to(map_location).eval()
    layout = model_layout(model)
    if stored is not None and layout is not None and stored != layout:
        raise ValueError(
            f"{path}: the layout record ({stored.name!r}) is not the layout of the model's "
            f"preprocessing ({layout.name!r}); the file is damaged"
        )
    return LoadedModel(
        model=model,
        model_config=model_config,
        preprocessing=preprocessing,
        train_config=json.loads(payload["train_config"]),
        history=json.loads(payload["history"]),
        class_names=json.loads(payload["class_names"]),
        metadata=json.loads(payload["metadata"]),
        training_events=_training_events_from_payload(payload, path),
        layout=layout,
    )
