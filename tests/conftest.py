"""Shared fixtures: small random event samples in the ADC2021 layout and in any layout."""

from __future__ import annotations

import numpy as np
import pytest
from contrastx.events import Events
from contrastx.events.layout import N_OBJECTS, SLOT_ETA_MAX


def random_events(n: int, seed: int = 0, n_processes: int = 4) -> Events:
    """Random but layout-valid events: pT-ordered groups with zero padding."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n, N_OBJECTS, 3), dtype=np.float32)
    p[:, 0, 0] = rng.exponential(40.0, n) + 1.0
    p[:, 0, 2] = rng.uniform(-np.pi, np.pi, n)
    for lo, hi in ((1, 5), (5, 9), (9, 19)):
        k = hi - lo
        mult = rng.integers(0, k + 1, n)
        pt = np.sort(rng.exponential(30.0, (n, k)) + 3.0, axis=1)[:, ::-1]
        filled = np.arange(k)[None, :] < mult[:, None]
        p[:, lo:hi, 0] = np.where(filled, pt, 0)
        eta_max = SLOT_ETA_MAX[lo]  # inside the group's acceptance, as in real events
        eta = np.clip(rng.normal(0, 1.5, (n, k)), -eta_max, eta_max)
        p[:, lo:hi, 1] = np.where(filled, eta, 0)
        p[:, lo:hi, 2] = np.where(filled, rng.uniform(-np.pi, np.pi, (n, k)), 0)
    labels = rng.integers(0, n_processes, n)
    return Events(p, labels=labels, metadata={"maker": "random_events", "seed": seed})


@pytest.fixture
def make_events():
    """Factory fixture: ``make_events(n, seed=0, n_processes=4)``."""
    return random_events


@pytest.fixture
def events() -> Events:
    return random_events(500, seed=1)


@pytest.fixture(scope="session")
def random_layout_events():
    """``random_layout_events(layout, n, seed=0, n_processes=3)`` of tests/events/conftest.py:
    random but valid events in any layout."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "events" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_events_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.random_layout_events


@pytest.fixture(scope="module")
def local_dask():
    """``(cluster, client)``: a Dask ``LocalCluster`` of 2 single-thread worker processes
    and a client to it, for one test module (skips without Dask)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()
