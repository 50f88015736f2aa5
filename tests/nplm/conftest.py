"""Fixtures for the NPLM tests: the Falkon reference cases and small synthetic problems."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def cases_dir() -> Path | None:
    """``$CONTRASTX_NPLM_CASES`` or ``<repo>/../shared/nplm-cases`` if it exists."""
    env = os.environ.get("CONTRASTX_NPLM_CASES")
    path = Path(env) if env else REPO.parent / "shared" / "nplm-cases"
    return path if (path / "case1" / "params.json").is_file() else None


def load_case(name: str) -> dict:
    root = cases_dir()
    if root is None:
        pytest.skip(
            "Falkon reference cases not found: set CONTRASTX_NPLM_CASES or place them at "
            f"{REPO.parent / 'shared' / 'nplm-cases'}"
        )
    d = root / name
    out = {
        k: np.load(d / f"{k}.npy")
        for k in (
            "ref",
            "data",
            "centers",
            "centers_idx",
            "centers_y",
            "alpha",
            "f_ref",
            "f_data",
            "f_exact_1step",
            "f_exact_converged",
        )
    }
    out["params"] = json.loads((d / "params.json").read_text())
    out["result"] = json.loads((d / "result.json").read_text())
    return out


@pytest.fixture(scope="module", params=["case1", "case2"])
def falkon_case(request) -> dict:
    return load_case(request.param)


def blobs(n_ref: int, n_data: int, d: int = 2, shift: float = 0.0, seed: int = 0):
    """Gaussian reference and data; ``shift`` moves 10 % of the data to make a bump."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n_ref, d))
    data = rng.normal(size=(n_data, d))
    if shift:
        k = n_data // 10
        data[:k] = rng.normal(loc=shift, scale=0.3, size=(k, d))
    return data, ref


@pytest.fixture
def make_blobs():
    """Factory fixture: ``make_blobs(n_ref, n_data, d=2, shift=0.0, seed=0) -> (data, ref)``."""
    return blobs


@pytest.fixture
def case_loader():
    """Factory fixture: ``case_loader("case1")`` (skips if the cases are absent)."""
    return load_case
