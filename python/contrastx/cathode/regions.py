"""Signal region and sidebands in a resonant variable m.

CATHODE splits events by a resonant variable m (a dijet mass, or any observable): the
background density p(x | m) is learned in the *sidebands* (SB) and interpolated into the
*signal region* (SR). :class:`Regions` holds the windows, validates them (ordered,
finite, disjoint) and turns an m column into SR / SB masks.

Every window is half-open, ``lo <= m < hi``, so windows that touch (an SR ``[3.44,
3.56)`` between sidebands ``[3.3, 3.44)`` and ``[3.56, 3.7)``) never share an event.
Events outside every window are allowed and simply unused.

Example
-------
>>> import numpy as np
>>> from contrastx.cathode import Regions
>>> regions = Regions.around(3.44, 3.56, outer=(3.3, 3.7))
>>> regions.sidebands
((3.3, 3.44), (3.56, 3.7))
>>> m = np.array([3.35, 3.5, 3.6, 3.9])
>>> regions.signal_mask(m).tolist(), regions.sideband_mask(m).tolist()
([False, True, False, False], [True, False, True, False])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Regions", "check_mass", "check_window"]


def check_mass(m: Any, name: str = "m") -> np.ndarray:
    """``m`` as a finite 1-D float64 array, or a clear error naming ``name``.

    Raises
    ------
    TypeError
        ``m`` is not numeric.
    ValueError
        ``m`` is not 1-D or holds NaN / inf (the message gives the count and first index).
    """
    try:
        arr = np.asarray(m)
    except Exception as err:  # ragged lists and similar
        raise TypeError(f"{name} must be a 1-D numeric array; got {type(m).__name__}") from err
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a 1-D numeric array; got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per event); got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf), "
            f"first at index {first}: {arr[first]}"
        )
    return arr


def check_window(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{where} must be a pair (lo, hi); got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"{where} must hold two numbers; got {value!r}")
        out.append(float(v))
    lo, hi = out
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{where} must be finite; got ({lo}, {hi})")
    if not lo < hi:
        raise ValueError(f"{where} must have lo < hi; got ({lo}, {hi})")
    return lo, hi


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    # half-open windows [lo, hi): touching ends do not overlap
    return a[0] < b[1] and b[0] < a[1]


@dataclass(frozen=True)
class Regions:
    """Signal region and sidebands: half-open windows ``lo <= m < hi`` in m.

    Parameters
    ----------
    signal_region : (float, float)
        The SR window ``(lo, hi)``.
    sidebands : sequence of (float, float)
        One or more SB windows, disjoint from the SR and from each other (they may touch
        it). Sorted by ``lo`` on construction.

    Raises
    ------
    ValueError
        A window that is not a finite pair with ``lo < hi``, no sideband, or windows that
        overlap (the message names both).
    """

    signal_region: tuple[float, float]
    sidebands: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        sr = check_window(self.signal_region, "signal_region")
        sbs = self.sidebands
        if isinstance(sbs, (str, bytes)) or not isinstance(sbs, Sequence):
            raise TypeError(f"sidebands must be a sequence of (lo, hi) pairs; got {sbs!r}")
        if len(sbs) == 0:
            raise ValueError("sidebands must hold at least one (lo, hi) window; got none")
        windows = [check_window(w, f"sidebands[{i}]") for i, w in enumerate(sbs)]
        for i, w in enumerate(windows):
            if _overlap(w, sr):
                raise ValueError(
                    f"sidebands[{i}] = {w} overlaps the signal_region {sr}; windows are "
                    "half-open [lo, hi) and may touch but not overlap"
                )
            for j in range(i):
                if _overlap(w, windows[j]):
                    raise ValueError(
                        f"sidebands[{j}] = {windows[j]} and sidebands[{i}] = {w} overlap"
                    )
        object.__setattr__(self, "signal_region", sr)
        object.__setattr__(self, "sidebands", tuple(sorted(windows)))

    @classmethod
    def around(cls, lo: float, hi: float, *, outer: tuple[float, float]) -> Regions:
        """SR ``[lo, hi)`` with the sidebands ``[outer_lo, lo)`` and ``[hi, outer_hi)``.

        A sideband of zero width (``outer_lo == lo`` or ``hi == outer_hi``) is dropped, so
        a one-sided sideband is ``Regions.around(lo, hi, outer=(lo, hi2))``.

        Raises
        ------
        ValueError
            ``outer`` does not contain ``[lo, hi)``, or both sidebands are empty.
        """
        sr = check_window((lo, hi), "signal_region")
        o_lo, o_hi = check_window(outer, "outer")
        if not (o_lo <= sr[0] and sr[1] <= o_hi):
            raise ValueError(f"outer = ({o_lo}, {o_hi}) must contain the signal region {sr}")
        sbs = tuple(w for w in ((o_lo, sr[0]), (sr[1], o_hi)) if w[0] < w[1])
        if not sbs:
            raise ValueError(f"outer = ({o_lo}, {o_hi}) equals the signal region: no sidebands")
        return cls(sr, sbs)

    # ----------------------------------------------------------------------- masks
    @property
    def span(self) -> tuple[float, float]:
        """``(lowest lo, highest hi)`` over all windows."""
        los = [self.signal_region[0], *(w[0] for w in self.sidebands)]
        his = [self.signal_region[1], *(w[1] for w in self.sidebands)]
        return min(los), max(his)

    def signal_mask(self, m: Any) -> np.ndarray:
        """Boolean mask of the events in the signal region (``m`` checked: 1-D, finite)."""
        m = check_mass(m)
        lo, hi = self.signal_region
        return (m >= lo) & (m < hi)

    def sideband_mask(self, m: Any) -> np.ndarray:
        """Boolean mask of the events in any sideband (``m`` checked: 1-D, finite)."""
        m = check_mass(m)
        mask = np.zeros(m.shape, dtype=bool)
        for lo, hi in self.sidebands:
            mask |= (m >= lo) & (m < hi)
        return mask

    def counts(self, m: Any) -> dict[str, int]:
        """Events per window: ``{"signal_region": n, "sidebands[0]": n, ..., "outside": n}``."""
        m = check_mass(m)
        out = {"signal_region": int(self.signal_mask(m).sum())}
        for i, (lo, hi) in enumerate(self.sidebands):
            out[f"sidebands[{i}]"] = int(((m >= lo) & (m < hi)).sum())
        out["outside"] = int(len(m) - sum(out.values()))
        return out

    def check(self, m: Any, *, min_events: int = 1) -> dict[str, int]:
        """Validate the windows on data ``m``; returns :meth:`counts`.

        Parameters
        ----------
        m : array_like, shape (n,)
            The resonant variable of every event.
        min_events : int
            Fewest events every window (the SR and each sideband) must hold.

        Raises
        ------
        ValueError
            ``m`` empty, non-finite or not 1-D; every event outside every window; or a
            window with fewer than ``min_events`` events (the message names the window
            and lists every count).
        """
        m = check_mass(m)
        if len(m) == 0:
            raise ValueError("m is empty: no events to split into signal region and sidebands")
        counts = self.counts(m)
        listing = ", ".join(f"{k} {v}" for k, v in counts.items())
        if counts["outside"] == len(m):
            raise ValueError(
                f"all {len(m)} events lie outside every window (m in [{m.min():g}, "
                f"{m.max():g}]; windows span [{self.span[0]:g}, {self.span[1]:g}))"
            )
        windows = {"signal_region": self.signal_region}
        windows.update({f"sidebands[{i}]": w for i, w in enumerate(self.sidebands)})
        for key, window in windows.items():
            if counts[key] < min_events:
                raise ValueError(
                    f"{key} [{window[0]:g}, {window[1]:g}) holds {counts[key]} event(s), "
                    f"fewer than {min_events}; counts: {listing}"
                )
        return counts

    # ----------------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-friendly form: ``{"signal_region": [lo, hi], "sidebands": [[lo, hi]]}``."""
        return {
            "signal_region": list(self.signal_region),
            "sidebands": [list(w) for w in self.sidebands],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Regions:
        """Inverse of :meth:`to_dict`; unknown or missing keys are errors naming the key."""
        if not isinstance(data, Mapping):
            raise TypeError(f"regions must be a table; got {type(data).__name__}")
        unknown = sorted(set(data) - {"signal_region", "sidebands"})
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(unknown)} in regions; known: signal_region, sidebands"
            )
        for key in ("signal_region", "sidebands"):
            if key not in data:
                raise ValueError(f"regions: missing key {key!r}")
        return cls(data["signal_region"], data["sidebands"])
