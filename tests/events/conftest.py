"""The skip of the tests that need the optional Pythia generator (``pytest.mark.pythia``)."""

from __future__ import annotations

import importlib

import pytest

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
