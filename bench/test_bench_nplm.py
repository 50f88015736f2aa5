"""NPLM toy throughput: the shared-reference engine's strategies vs the paper-exact mode.

Problem (the issue's benchmark point): N_R = 2e5, N(B) = 2e4, M = 1000, d = 4, Gaussian
background pool of N_R + 10 N(B) events (so the toys draw N(B) events without
replacement from a data pool of 10 N(B): pool fraction f = 0.1, as ``contrastx-toys``
does by default), float64 kernels, Falkon-matching CG solver, on the CPU.

* ``pool``: the whitened data pool Z_P = K(pool, C) T^-1 is stored once (float64, or
  float32 for ``pool_f32``) and a block of toys' CG operators run on it: on the CPU the
  native kernel over each toy's selected rows (float64 arithmetic); ``pool_dense`` is the
  same with two dense GEMMs over the whole pool per iteration (the GPU path);
* ``stream``: one whitened data Gram per toy (O(N_D M^2)), batched CG on the M x M
  systems -- the engine's previous path;
* ``paper``: reference and centres re-drawn per toy, one full fit per toy.

The one-off setup (reference draw, centres, the reference's whitened Gram, Z_P) is timed
separately; toys/s are steady-state rates, and "incl. setup" rates are for 250 + 250
toys. Paper scale is measured end to end by ``contrastx-toys --paper --n 250`` (README);
CONTRASTX_BENCH_NPLM_SCALE=5 runs this bench at N_R = 1e6, N(B) = 1e5 (~9 GB for Z_P).

Run::

    python -m pytest bench/test_bench_nplm.py --benchmark-only -s

Environment overrides: CONTRASTX_BENCH_NPLM_SCALE (multiplies N_R and N(B), default 1),
CONTRASTX_BENCH_NPLM_TOYS (pool toys per round, default 64; stream uses 4),
CONTRASTX_BENCH_DEVICE.
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
POOL_FACTOR = 10
M, D = 1000, 4
N_TOYS = int(os.environ.get("CONTRASTX_BENCH_NPLM_TOYS", "64"))
DEVICE = os.environ.get("CONTRASTX_BENCH_DEVICE", "cpu")
RATES: dict[str, float] = {}
SETUP: dict[str, float] = {}


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_REF + int(POOL_FACTOR * N_BKG), D))


def _config(mode: str, **kw) -> ToyConfig:
    return ToyConfig(
        n_ref=N_REF,
        n_bkg=N_BKG,
        M=M,
        mode=mode,
        seed=1,
        pool_memory_bytes=12 * 2**30,
        memory_bytes=2 * 2**30,
        **kw,
    )


def _bench_shared(benchmark, pool, name: str, n_toys: int, **kw) -> None:
    eng = ToyEngine(pool, config=_config("shared", max_block=n_toys, **kw), device=DEVICE)
    t0 = time.perf_counter()
    eng.prepare()
    setup = time.perf_counter() - t0
    counter = iter(range(10_000))

    def run_block():
        start = next(counter) * n_toys
        return list(eng.run(range(start, start + n_toys)))

    blocks = benchmark.pedantic(run_block, rounds=2, iterations=1, warmup_rounds=0)
    rate = n_toys / benchmark.stats.stats.mean
    RATES[name], SETUP[name] = rate, setup
    iters = [int(i) for b in blocks for i in b.n_iter]
    total_500 = setup + 500 / rate
    benchmark.extra_info.update(
        strategy=eng.strategy_,
        toys_per_s=rate,
        setup_s=setup,
        seconds_for_500_incl_setup=total_500,
        cg_iters_mean=float(np.mean(iters)),
        N_R=N_REF,
        N_B=N_BKG,
        N_pool=int(eng.data_pool_index_.size),
        M=M,
        d=D,
        device=DEVICE,
    )
    print(
        f"\n{name} ({eng.strategy_}): setup {setup:.1f} s, {rate:.3f} toys/s, "
        f"CG iterations {min(iters)}-{max(iters)} (mean {np.mean(iters):.1f}); "
        f"500 toys incl. setup {total_500:.0f} s"
    )


def test_bench_shared_pool(benchmark, pool):
    _bench_shared(benchmark, pool, "pool", N_TOYS, strategy="pool")


def test_bench_shared_pool_dense(benchmark, pool):
    _bench_shared(benchmark, pool, "pool_dense", N_TOYS, strategy="pool", pool_backend="torch")
    if "pool" in RATES:
        ratio = RATES["pool"] / RATES["pool_dense"]
        benchmark.extra_info["pool_over_pool_dense"] = ratio
        print(f"pool (selected rows) / pool_dense (dense GEMMs) = {ratio:.1f}x")


def test_bench_shared_pool_f32(benchmark, pool):
    _bench_shared(benchmark, pool, "pool_f32", N_TOYS, strategy="pool", pool_dtype="float32")


def test_bench_shared_stream(benchmark, pool):
    _bench_shared(benchmark, pool, "stream", 4, strategy="stream")


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
    for name in ("pool", "pool_dense", "pool_f32", "stream"):
        if name in RATES:
            ratio = RATES[name] / rate
            benchmark.extra_info[f"{name}_over_paper"] = ratio
            msg += f"; {name} / paper = {ratio:.1f}x"
    print(msg)
