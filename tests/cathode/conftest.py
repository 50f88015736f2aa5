"""Shared CATHODE test helpers: an analytic conditional toy and a small fitted flow.

The toy: m ~ U(0, 1) and x | m ~ N(mu(m), Sigma) in two dimensions, with a mean linear in
m and a correlated covariance, so the true log p(x | m) is known in closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

TOY_SLOPE = np.array([2.0, -1.5])
TOY_OFFSET = np.array([0.5, 1.0])
TOY_COV = np.array([[0.30, 0.12], [0.12, 0.20]])


def toy_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, m)``: n events of the analytic conditional toy."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.0, 1.0, n)
    x = TOY_OFFSET + m[:, None] * TOY_SLOPE + rng.multivariate_normal([0, 0], TOY_COV, n)
    return x, m


def toy_log_prob(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The exact log p(x | m) of the toy."""
    r = x - (TOY_OFFSET + m[:, None] * TOY_SLOPE)
    inv = np.linalg.inv(TOY_COV)
    quad = np.einsum("ni,ij,nj->n", r, inv, r)
    return -0.5 * quad - 0.5 * np.log(np.linalg.det(2 * np.pi * TOY_COV))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small flows run fastest on one thread (and the test machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_flow():
    """A small MAF ensemble fitted on 3000 toy events (shared by flow and sampling tests).

    Two flows x three best epochs; about a second on one CPU thread.
    """
    from contrastx.cathode import ConditionalFlow, FlowOptions

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, m = toy_sample(3000, seed=1)
        opts = FlowOptions(
            kind="maf",
            transforms=2,
            hidden_features=(32, 32),
            epochs=12,
            batch_size=256,
            lr=1e-2,
            patience=None,
            n_best_epochs=3,
            n_flows=2,
            logit=False,
        )
        flow = ConditionalFlow(opts).fit(x, m, seed=0, progress=False)
    finally:
        torch.set_num_threads(before)
    return flow, x, m
