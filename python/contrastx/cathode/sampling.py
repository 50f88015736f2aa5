"""The background template in the signal region: KDE of m, flow samples, hybrid parts.

CATHODE's template is made by drawing m from a kernel density estimate of the SR data's
m values, several times as many as there are SR events (``oversampling``), and sampling
the sideband-trained flow p(x | m) at those m. A *hybrid* template adds simulated
resonant background components (e.g. a Standard Model Higgs peak that the sideband flow
cannot know about) with their expected yields.

Weights: the template's weights sum to the number of SR data events, so a template event
counts as the expected number of background events it stands for. Each simulated
component ``i`` gets ``expected_events_i`` in total; the flow samples share the rest,
``n_SR - sum_i expected_events_i``.

Example
-------
>>> import numpy as np
>>> kde = MassKDE(bandwidth=0.1).fit(np.linspace(3.45, 3.55, 100), window=(3.44, 3.56))
>>> m = kde.sample(1000, seed=0)
>>> bool(((m >= 3.44) & (m < 3.56)).all())
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..options import option, options
from .preprocessing import check_features
from .regions import check_mass, check_window

__all__ = ["MassKDE", "TemplateComponent", "TemplateOptions", "make_template"]

logger = logging.getLogger(__name__)

_MAX_ROUNDS = 1000


@options(section="cathode.template")
class TemplateOptions:
    """The synthetic background template in the signal region."""

    oversampling: float = option(
        4.0, "Flow samples per signal-region data event (CATHODE: 4).", gt=0
    )
    kde_bandwidth: float = option(
        0.01,
        "Width of the Gaussian kernels of the KDE of the signal-region m values, as a "
        "multiple of their standard deviation (the scalar bw_method of "
        "scipy.stats.gaussian_kde). Small values follow the observed m values closely.",
        gt=0,
    )


class MassKDE:
    """Gaussian KDE of the SR m values, sampled inside the SR window (reject and redraw).

    Parameters
    ----------
    bandwidth : float
        Kernel width as a multiple of the standard deviation of the fitted m values.

    Attributes
    ----------
    values_ : ndarray
        The fitted m values.
    window_ : (float, float)
        Samples lie in ``[lo, hi)``.
    scale_ : float
        Kernel standard deviation in units of m.
    """

    def __init__(self, bandwidth: float = 0.01) -> None:
        if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)):
            raise TypeError(f"bandwidth must be a number; got {bandwidth!r}")
        if not (np.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth must be a finite number > 0; got {bandwidth}")
        self.bandwidth = float(bandwidth)

    def fit(self, m_sr: Any, window: tuple[float, float]) -> MassKDE:
        """Fit to the SR m values ``m_sr``, all of which must lie in ``window`` = [lo, hi).

        Raises
        ------
        ValueError
            Empty or non-finite ``m_sr``, a bad window, or values outside the window
            (the message gives their count and range).
        """
        m = check_mass(m_sr, "m_sr")
        lo, hi = check_window(window, "window")
        if len(m) == 0:
            raise ValueError("m_sr is empty: no signal-region events to fit the KDE on")
        outside = (m < lo) | (m >= hi)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} of {len(m)} m_sr value(s) lie outside the window "
                f"[{lo:g}, {hi:g}) (m_sr in [{m.min():g}, {m.max():g}])"
            )
        self.values_ = m.copy()
        self.window_ = (lo, hi)
        self.scale_ = self.bandwidth * float(m.std())
        return self

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` values from the KDE restricted to the window (seeded)."""
        if not hasattr(self, "values_"):
            raise RuntimeError("MassKDE is not fitted; call fit(m_sr, window) first")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be an integer >= 0; got {n!r}")
        rng = np.random.default_rng(seed)
        lo, hi = self.window_
        out = np.empty(int(n))
        todo = np.arange(int(n))
        for _ in range(_MAX_ROUNDS):
            if todo.size == 0:
                return out
            draw = self.values_[rng.integers(len(self.values_), size=todo.size)]
            draw = draw + self.scale_ * rng.standard_normal(todo.size)
            ok = (draw >= lo) & (draw < hi)
            out[todo[ok]] = draw[ok]
            todo = todo[~ok]
        raise RuntimeError(  # pragma: no cover - every kernel sits inside the window
            f"KDE sampling accepted too few values in [{lo:g}, {hi:g}); bandwidth too large?"
        )


@dataclass(frozen=True)
class TemplateComponent:
    """Simulated events added to the template with their expected SR yield.

    Parameters
    ----------
    x : array_like, shape (n, n_features)
        Simulated events (e.g. SM Higgs) in the same features as the data.
    m : array_like, shape (n,)
        Their resonant variable; all must lie in the signal region.
    expected_events : float
        Expected number of such events in the SR data (the weights of the component
        sum to it).
    name : str
        Label for messages.
    """

    x: Any
    m: Any
    expected_events: float
    name: str = "extra"


def _seed_pair(seed: int) -> tuple[int, int]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer; got {seed!r}")
    a, b = np.random.SeedSequence(int(seed)).generate_state(2)
    return int(a), int(b)


def make_template(
    flow: Any,
    m_sr: Any,
    options: TemplateOptions | None = None,
    seed: int = 0,
    extra: TemplateComponent | Sequence[TemplateComponent] | None = None,
    *,
    window: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic SR background: flow samples at KDE-drawn m, plus simulated components.

    Parameters
    ----------
    flow : ConditionalFlow
        A fitted flow, or any object with ``sample(m, *, seed) -> (len(m), d)``.
    m_sr : array_like, shape (n_sr,)
        m of the SR data events.
    options : TemplateOptions, optional
        Oversampling and KDE bandwidth (default ``TemplateOptions()``).
    seed : int
        Seeds the KDE draws and the flow samples.
    extra : TemplateComponent or sequence of them, optional
        Hybrid template: simulated resonant background with its expected SR yield.
    window : (float, float), optional
        The SR window ``[lo, hi)`` (pass ``regions.signal_region``); default: from the
        smallest to just above the largest ``m_sr``.

    Returns
    -------
    x_template : ndarray, shape (n_template, d)
        ``round(oversampling * n_sr)`` flow samples first, then each component's events.
    m_template : ndarray, shape (n_template,)
    weights : ndarray, shape (n_template,)
        Sum to ``n_sr`` (see the module docstring).

    Raises
    ------
    ValueError
        Empty ``m_sr``, component events outside the window or with the wrong number of
        features, or component yields that leave nothing for the flow part.
    """
    if options is None:
        options = TemplateOptions()
    if not isinstance(options, TemplateOptions):
        raise TypeError(f"options must be a TemplateOptions; got {type(options).__name__}")
    m_sr = check_mass(m_sr, "m_sr")
    if len(m_sr) == 0:
        raise ValueError("m_sr is empty: no signal-region events to build a template for")
    if window is None:
        window = (float(m_sr.min()), float(np.nextafter(m_sr.max(), np.inf)))
    lo, hi = check_window(window, "window")
    components = _components(extra)
    kde_seed, flow_seed = _seed_pair(seed)

    n_sr = len(m_sr)
    n_flow = max(1, round(options.oversampling * n_sr))
    m_flow = MassKDE(options.kde_bandwidth).fit(m_sr, (lo, hi)).sample(n_flow, seed=kde_seed)
    x_flow = np.asarray(flow.sample(m_flow, seed=flow_seed), dtype=np.float64)
    if x_flow.ndim != 2 or len(x_flow) != n_flow:
        raise ValueError(
            f"flow.sample returned shape {x_flow.shape}; expected ({n_flow}, n_features)"
        )
    d = x_flow.shape[1]

    xs, ms, ws = [x_flow], [m_flow], []
    expected = 0.0
    for comp in components:
        x_c = check_features(comp.x, f"{comp.name}.x", n_features=d)
        m_c = check_mass(comp.m, f"{comp.name}.m")
        if len(m_c) != len(x_c):
            raise ValueError(
                f"{comp.name}: x has {len(x_c)} events but m has {len(m_c)}; they must match"
            )
        if len(x_c) == 0:
            raise ValueError(f"{comp.name}: no events")
        outside = (m_c < lo) | (m_c >= hi)
        if outside.any():
            raise ValueError(
                f"{comp.name}: {int(outside.sum())} of {len(m_c)} event(s) lie outside the "
                f"signal region [{lo:g}, {hi:g})"
            )
        e = comp.expected_events
        if (
            isinstance(e, bool)
            or not isinstance(e, (int, float))
            or not (np.isfinite(e) and e >= 0)
        ):
            raise ValueError(f"{comp.name}.expected_events must be a finite number >= 0; got {e!r}")
        expected += float(e)
        xs.append(x_c)
        ms.append(m_c)
        ws.append(np.full(len(x_c), float(e) / len(x_c)))
    rest = n_sr - expected
    if components and not rest > 0:
        raise ValueError(
            f"the simulated components expect {expected:g} events but the signal region "
            f"holds only {n_sr}: nothing is left for the flow part"
        )
    weights = np.concatenate([np.full(n_flow, rest / n_flow), *ws])
    if components:
        logger.info(
            "hybrid template: %d flow samples for %.1f expected events, %s",
            n_flow, rest,
            ", ".join(f"{c.name}: {len(w)} events for {c.expected_events:g}"
                      for c, w in zip(components, ws)),
        )  # fmt: skip
    return np.concatenate(xs), np.concatenate(ms), weights


def _components(extra: Any) -> list[TemplateComponent]:
    if extra is None:
        return []
    if isinstance(extra, TemplateComponent):
        return [extra]
    if isinstance(extra, Sequence) and all(isinstance(c, TemplateComponent) for c in extra):
        names = [c.name for c in extra]
        if len(set(names)) != len(names):
            raise ValueError(f"template components need distinct names; got {names}")
        return list(extra)
    raise TypeError(
        f"extra must be a TemplateComponent or a sequence of them; got {type(extra).__name__}"
    )
