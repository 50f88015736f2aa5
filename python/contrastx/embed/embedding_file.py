"""Embedding files (HDF5), the hand-over from an encoder to NPLM / CATHODE.

Layout:

* dataset ``embedding``: (N, D) float32;
* dataset ``labels``: (N,) int64, attribute ``process_names`` (label k names
  ``process_names[k]``; -1 is unknown);
* optional dataset ``EvtId`` (N,) int64;
* root attributes ``format = "contrastx-embedding"``, ``format_version``,
  ``source_file`` (the event file embedded), ``model_config`` (JSON) and
  ``metadata`` (JSON);
* root attributes ``layout`` (JSON, :meth:`contrastx.events.EventLayout.to_json`) and
  ``layout_sha256`` (its fingerprint): the event layout of the embedded events, when
  the writer gives it (files without them read back ``layout = None``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..events.io import open_h5
from ..events.layout import EventLayout, LayoutError

FORMAT_NAME = "contrastx-embedding"
FORMAT_VERSION = 1

__all__ = ["EmbeddingData", "read_embedding", "write_embedding"]


@dataclass
class EmbeddingData:
    """Contents of an embedding file (see the module docstring).

    ``layout`` is the event layout of the embedded events, or None when the file does
    not record it.
    """

    embedding: np.ndarray
    labels: np.ndarray
    process_names: tuple[str, ...]
    source_file: str = ""
    model_config: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    event_ids: np.ndarray | None = None
    layout: EventLayout | None = None

    def select(self, process: str) -> np.ndarray:
        """Embedding rows of one process."""
        if process not in self.process_names:
            raise ValueError(
                f"unknown process {process!r}; this file has {list(self.process_names)}"
            )
        return self.embedding[self.labels == self.process_names.index(process)]


def write_embedding(
    path: str | os.PathLike,
    embedding: np.ndarray,
    labels: np.ndarray,
    process_names: Sequence[str],
    *,
    source_file: str | os.PathLike = "",
    model_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    event_ids: np.ndarray | None = None,
    layout: EventLayout | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an embedding file.

    ``layout`` (the event layout of the embedded events) is recorded with its
    fingerprint when given.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        On mismatched shapes or a non-finite embedding.
    OSError
        If the file cannot be created, or another process holds it (see
        :func:`contrastx.events.io.open_h5`).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True)")
    z = np.asarray(embedding, dtype=np.float32)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"embedding must be (N, D) and labels (N,); got {z.shape}, {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers; got {y.dtype}")
    if not np.isfinite(z).all():
        raise ValueError("embedding contains NaN or inf")
    if layout is not None and not isinstance(layout, EventLayout):
        raise TypeError(f"layout must be an EventLayout; got {type(layout).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_h5(path, "w", what="embedding file") as f:
        f.create_dataset("embedding", data=z)
        ds = f.create_dataset("labels", data=y.astype(np.int64))
        ds.attrs["process_names"] = [str(p) for p in process_names]
        if event_ids is not None:
            f.create_dataset("EvtId", data=np.asarray(event_ids, dtype=np.int64))
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["source_file"] = str(source_file)
        f.attrs["model_config"] = json.dumps(model_config or {}, sort_keys=True)
        f.attrs["metadata"] = json.dumps(metadata or {}, sort_keys=True, default=str)
        if layout is not None:
            f.attrs["layout"] = layout.to_json()
            f.attrs["layout_sha256"] = layout.fingerprint
    return path


def read_embedding(path: str | os.PathLike) -> EmbeddingData:
    """Read a file written by :func:`write_embedding`.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If it is not a readable HDF5 file, is corrupted, or another process holds it.
    ValueError
        If it is not a contrastx embedding file or lacks a dataset or attribute.
    """
    path = Path(path)
    with open_h5(path, "r", what="embedding file") as f:
        if f.attrs.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: not a contrastx embedding file")
        missing = [k for k in ("embedding", "labels") if k not in f]
        if missing:
            raise ValueError(
                f"{path}: no dataset {missing[0]!r} in this embedding file "
                f"(top-level keys: {sorted(f.keys())})"
            )
        if "process_names" not in f["labels"].attrs:
            raise ValueError(f"{path}: dataset 'labels' has no 'process_names' attribute")
        layout = _read_layout(f, path)
        try:
            return EmbeddingData(
                embedding=f["embedding"][...],
                labels=f["labels"][...],
                process_names=tuple(str(p) for p in f["labels"].attrs["process_names"]),
                source_file=str(f.attrs.get("source_file", "")),
                model_config=json.loads(f.attrs.get("model_config", "{}")),
                metadata=json.loads(f.attrs.get("metadata", "{}")),
                event_ids=f["EvtId"][...] if "EvtId" in f else None,
                layout=layout,
            )
        except OSError as err:
            raise OSError(f"{path}: cannot read the embedding file (corrupted?): {err}") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: an attribute is not valid JSON ({err})") from None


def _read_layout(f: Any, path: Path) -> EventLayout | None:
    raw = f.attrs.get("layout")
    if raw is None:
        return None
    try:
        layout = EventLayout.from_json(raw, where=f"{path}: attribute 'layout'")
    except (LayoutError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: unreadable layout attribute ({err})") from None
    stored = f.attrs.get("layout_sha256")
    if stored is not None and str(stored) != layout.fingerprint:
        raise ValueError(
            f"{path}: the layout attribute does not match its fingerprint 'layout_sha256' "
            "(the file is damaged)"
        )
    return layout
