"""NPLM toy throughput: the shared-reference batched engine vs the paper-exact mode.

Problem (the issue's benchmark point): N_R = 2e5, N(B) = 2e4, M = 1000, d = 4, Gaussian
background pool, float64, Falkon-matching CG solver, on the CPU. The shared engine's
one-off setup (reference draw, centres, the reference's whitened Gram) is timed
separately; toys/s are steady-state rates. The paper-exact mode re-draws reference and
centres and runs a full fit per toy, so only a couple of its toys are timed.

Run::

    PYTHONPATH=python python -m pytest bench/test_bench_nplm.py --benchmark-only -s

Environment overrides: CONTRASTX_BENCH_NPLM_SCALE (multiplies N_R and N(B), default 1),
CONTRASTX_BENCH_NPLM_TOYS (shared toys per round, default 4), CONTRASTX_BENCH_DEVICE.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from contrastx.nplm.toys import ToyConfig, ToyEngine

SCALE = float(os.environ.get("CONTRASTX_BENCH_NPLM_SCALE", "1"))
N_REF = int(200_000 * SCALE)
N_BKG = 20_000.0 * SCALE
M, D = 1000, 4
N_TOYS = int(os.environ.get("CONTRASTX_BENCH_NPLM_TOYS", "4"))
DEVICE = os.environ.get("CONTRASTX_BENCH_DEVICE", "cpu")
RATES: dict[str, float] = {}


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_REF + int(5 * N_BKG), D))


def _config(mode: str) -> ToyConfig:
    return ToyConfig(n_ref=N_REF, n_bkg=N_BKG, M=M, mode=mode, seed=1)


def test_bench_shared_reference(benchmark, pool):
    eng = ToyEngine(pool, config=_config("shared"), device=DEVICE)
    t0 = time.perf_counter()
    eng.prepare()
    setup = time.perf_counter() - t0
    counter = iter(range(10_000))

    def run_block():
        start = next(counter) * N_TOYS
        return [b for b in eng.run(range(start, start + N_TOYS))]

    blocks = benchmark.pedantic(run_block, rounds=2, iterations=1, warmup_rounds=0)
    per_round = benchmark.stats.stats.mean
    rate = N_TOYS / per_round
    RATES["shared"] = rate
    benchmark.extra_info.update(
        toys_per_s=rate,
        setup_s=setup,
        toys_per_s_incl_setup_250=250 / (setup + 250 / rate),
        cg_iters=[int(i) for b in blocks for i in b.n_iter],
        N_R=N_REF,
        N_B=N_BKG,
        M=M,
        d=D,
        device=DEVICE,
    )
    print(
        f"\nshared: setup {setup:.2f} s, {rate:.3f} toys/s "
        f"({250 / (setup + 250 / rate):.3f} toys/s for 250 toys incl. setup)"
    )


def test_bench_paper_exact(benchmark, pool):
    eng = ToyEngine(pool, config=_config("paper"), device=DEVICE)
    eng.prepare()
    counter = iter(range(10_000))

    def run_one():
        return list(eng.run([next(counter)]))

    benchmark.pedantic(run_one, rounds=2, iterations=1, warmup_rounds=0)
    rate = 1.0 / benchmark.stats.stats.mean
    RATES["paper"] = rate
    benchmark.extra_info.update(toys_per_s=rate, N_R=N_REF, N_B=N_BKG, M=M, d=D, device=DEVICE)
    msg = f"\npaper-exact: {rate:.4f} toys/s"
    if "shared" in RATES:
        ratio = RATES["shared"] / rate
        benchmark.extra_info["shared_over_paper"] = ratio
        msg += f"; shared / paper = {ratio:.1f}x"
    print(msg)
