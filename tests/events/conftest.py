"""The skip of the Pythia generator tests (``pytest.mark.pythia``); random events in any layout."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from contrastx.events import Events

PYTHIA_DEPENDENCIES = ("pythia8mc", "fastjet")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pythia: needs pythia8mc and fastjet (contrastx[pythia]); skipped otherwise"
    )


@pytest.fixture(scope="module", autouse=True)
def _skip_without_pythia(request: pytest.FixtureRequest) -> None:
    """Skip a module marked ``pythia`` (before its module fixtures run) without the extras."""
    if request.node.get_closest_marker("pythia") is None:
        return
    missing = []
    for name in PYTHIA_DEPENDENCIES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pytest.skip(
            f"Pythia generator tests need {' and '.join(missing)}: pip install 'contrastx[pythia]'"
        )


def random_layout_events(layout, n: int, seed: int = 0, n_processes: int = 3):
    """Random but valid events in any layout (a test helper, not physics).

    Every group gets a random multiplicity (groups of one slot are always filled),
    pT-ordered with padding last; eta inside the acceptance (0 where it must be),
    phi in [-pi, pi], other features inside their declared range (non-negative where
    logged), one-hot columns from the layout; event features the same way.
    """
    rng = np.random.default_rng(seed)
    p = np.zeros((n, layout.n_objects, layout.n_features), dtype=np.float32)
    for g in layout.groups:
        sl = layout.group_slots(g.name)
        k = g.count
        mult = np.full(n, 1) if k == 1 else rng.integers(0, k + 1, n)
        filled = np.arange(k)[None, :] < mult[:, None]
        for i, f in enumerate(layout.features):
            if f.one_hot is not None:
                continue
            if f.name == "pt":
                v = np.sort(rng.exponential(30.0, (n, k)) + 5.0, axis=1)[:, ::-1]
            elif f.name == "eta":
                lim = 2.5 if g.eta_max is None else 0.99 * g.eta_max
                v = rng.uniform(-lim, lim, (n, k))
            elif f.name == "phi":
                v = rng.uniform(-np.pi, np.pi, (n, k))
            elif f.low is not None and f.high is not None:
                v = rng.uniform(f.low, f.high, (n, k))
            elif f.log or f.low is not None:
                v = (f.low or 0.0) + rng.exponential(10.0, (n, k))
            else:
                v = rng.normal(0.0, 1.0, (n, k))
            if g.order_by == f.name and f.name != "pt":
                v = np.sort(v, axis=1)[:, ::-1]
            p[:, sl, i] = np.where(filled, v, 0)
    layout.fill_one_hot(p)
    ef = np.zeros((n, layout.n_event_features), dtype=np.float32)
    for j, f in enumerate(layout.event_features):
        if f.low is not None and f.high is not None:
            ef[:, j] = rng.uniform(f.low, f.high, n)
        elif f.log or f.low is not None:
            ef[:, j] = (f.low or 0.0) + rng.exponential(50.0, n)
        else:
            ef[:, j] = rng.normal(0.0, 1.0, n)
    labels = rng.integers(0, n_processes, n)
    return Events(
        p,
        labels=labels,
        process_names=tuple(f"p{i}" for i in range(n_processes)),
        layout=layout,
        event_features=ef,
    )


@pytest.fixture
def layout_events():
    """Factory fixture: ``layout_events(layout, n, seed=0, n_processes=3)``."""
    return random_layout_events
