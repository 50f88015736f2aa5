"""Strict JSON for result files: ``null`` where a number is not finite, never bare NaN.

Python's :func:`json.dumps` writes ``NaN``, ``Infinity`` and ``-Infinity`` by default,
which are not JSON: other readers (``jq``, JavaScript, most JSON libraries) reject the
file. :func:`json_ready` turns every non-finite float into ``None`` (and NumPy values
into Python ones); :func:`dumps` then writes with ``allow_nan=False``, so a non-finite
number that slipped through raises instead of producing an invalid file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["dumps", "json_ready"]


def json_ready(obj: Any) -> Any:
    """A copy of ``obj`` that :func:`json.dumps` writes as strict JSON.

    Non-finite floats (Python or NumPy) become ``None``; NumPy arrays become lists and
    NumPy scalars Python scalars; tuples become lists, mapping keys strings and paths
    strings. Other objects are returned unchanged.
    """
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        return json_ready(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`json_ready` ``(obj)`` with ``allow_nan=False``.

    Keyword arguments (``indent``, ``sort_keys``, ``default``, ...) are passed on.
    """
    return json.dumps(json_ready(obj), allow_nan=False, **kwargs)
