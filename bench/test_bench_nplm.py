"""NPLM toy throughput: the shared-reference engine's strategies vs the paper-exact mode.

Problem (the issue's benchmark point): N_R = 2e5, N(B) = 2e4, M = 1000, d = 4, Gaussian
background pool of N_R + 10 N(B) events (so the toys draw N(B) events without
replacement from a data pool of 10 N(B): pool fraction f = 0.1, as ``contrastx-toys``
does by default), float64 kernels, Falkon-matching CG solver, on the CPU.

* ``pool``: the whitened data pool Z_P = K(pool, C) T^-1 is stored once (float64, or
  float32 for ``pool_f32``) and a block of toys' CG operators run on it: on the CPU the
  native kernel over each toy's selected rows (float64 arithmetic); ``pool_dense`` is the
  same with two dense GEMMs over the whole pool per iteration (the GPU path). These use
  the default ``'average'`` CG preconditioner; ``pool_falkon`` is ``pool`` with Falkon's
  (the previous path), in the same run;
* ``stream``: one whitened data Gram per toy (O(N_D M^2)), batched CG on the M x M
  systems -- the engine's previous path;
* ``paper``: reference and centres re-drawn per toy, one full fit per toy.

The one-off setup (reference draw, centres, the reference's whitened Gram, Z_P) is timed
separately, with its parts (``setup_parts_s``); every engine after the first loads the
reference system from a reference cache (``reference_cache``) that the first one writes,
and ``setup_cached`` compares that with a cold setup; ``setup_methods`` compares the
cold setup's whitening methods (triangular solve per tile, the previous path, against
T^-1 column-blocked GEMMs with a SYRK reference Gram) and the pool's storage dtype.
``setup_previous`` times the cold setup against the previous path (torch kernel tiles, SciPy
SYRK) in the same run; ``pool_i16`` stores the pool in 16 bits, ``pool_tight`` runs the
previous default CG tolerance.
``accuracy`` runs the exact one-step solve (dense Cholesky per toy, ``stream``) on the
first toys of the ``pool``, ``pool_falkon`` and ``setup_*`` rounds and records their
largest relative t difference. CG iterations per toy are in every entry's
``extra_info``. Toys/s are steady-state rates, and "incl. setup" rates are for 250 + 250
toys. Paper scale is measured end to end by ``contrastx-toys --paper --n 250`` (README);
CONTRASTX_BENCH_NPLM_SCALE=5 runs this bench at N_R = 1e6, N(B) = 1e5 (~9 GB for Z_P).

Run::

    python -m pytest bench/test_bench_nplm.py --benchmark-only -s

Environment overrides: CONTRASTX_BENCH_NPLM_SCALE (multiplies N_R and N(B), default 1),
CONTRASTX_BENCH_NPLM_TOYS (pool toys per round, default 64; stream uses 4),
CONTRASTX_BENCH_NPLM_ACCURACY_TOYS (toys of the exact comparison, default 8),
CONTRASTX_BENCH_DEVICE.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from contrastx.nplm.options import DEFAULT_CG_TOL as FALKON_TOL
from contrastx.nplm.toys import ToyConfig, ToyEngine
from contrastx.ops import nystrom

SCALE = float(os.environ.get("CONTRASTX_BENCH_NPLM_SCALE", "1"))
N_REF = int(200_000 * SCALE)
N_BKG = 20_000.0 * SCALE
POOL_FACTOR = 10
M, D = 1000, 4
N_TOYS = int(os.environ.get("CONTRASTX_BENCH_NPLM_TOYS", "64"))
DEVICE = os.environ.get("CONTRASTX_BENCH_DEVICE", "cpu")
RATES: dict[str, float] = {}
SETUP: dict[str, float] = {}
ITERS: dict[str, float] = {}
T_FIRST: dict[str, np.ndarray] = {}
N_ACCURACY = int(os.environ.get("CONTRASTX_BENCH_NPLM_ACCURACY_TOYS", "8"))


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N_REF + int(POOL_FACTOR * N_BKG), D))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    """One reference cache for the module: the first engine writes it, the others load."""
    return str(tmp_path_factory.mktemp("nplm-reference-cache"))


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


def _prepared(
    pool: np.ndarray, config: ToyConfig, setup_method: str = "blocked"
) -> tuple[ToyEngine, float, float]:
    """A prepared engine, its setup wall time and its setup CPU time (all threads)."""
    eng = ToyEngine(pool, config=config, device=DEVICE, setup_method=setup_method)
    wall, cpu = time.perf_counter(), time.process_time()
    eng.prepare()
    return eng, time.perf_counter() - wall, time.process_time() - cpu


def _bench_shared(benchmark, pool, cache_dir, name: str, n_toys: int, **kw) -> None:
    cfg = _config("shared", max_block=n_toys, reference_cache=cache_dir, **kw)
    eng, setup, setup_cpu = _prepared(pool, cfg)
    counter = iter(range(10_000))
    cpu: list[float] = []

    def run_block():
        start = next(counter) * n_toys
        c0 = time.process_time()
        out = list(eng.run(range(start, start + n_toys), block_seconds=None))
        cpu.append(time.process_time() - c0)
        return out

    blocks = benchmark.pedantic(run_block, rounds=2, iterations=1, warmup_rounds=0)
    rate = n_toys / benchmark.stats.stats.mean
    RATES[name], SETUP[name] = rate, setup
    iters = [int(i) for b in blocks for i in b.n_iter]
    ITERS[name] = float(np.mean(iters))
    first = list(eng.run(range(N_ACCURACY), block_seconds=None))
    T_FIRST[name] = np.concatenate([b.t for b in first])
    total_500 = setup + 500 / rate
    benchmark.extra_info.update(
        strategy=eng.strategy_,
        preconditioner=cfg.preconditioner,
        cg_tol=cfg.solver_options.resolved_cg_tol,
        toys_per_s=rate,
        seconds_per_toy=1.0 / rate,
        cpu_seconds_per_toy=min(cpu) / n_toys,
        setup_s=setup,
        setup_cpu_s=setup_cpu,
        setup_parts_s=dict(eng.setup_seconds_),
        reference_cache_hit=eng.reference_cache_hit_,
        seconds_for_500_incl_setup=total_500,
        cg_iters_mean=float(np.mean(iters)),
        cg_iters_min=min(iters),
        cg_iters_max=max(iters),
        N_R=N_REF,
        N_B=N_BKG,
        N_pool=int(eng.data_pool_index_.size),
        M=M,
        d=D,
        device=DEVICE,
        load_average=os.getloadavg(),
    )
    parts = ", ".join(f"{k} {v:.1f}" for k, v in eng.setup_seconds_.items())
    print(
        f"\n{name} ({eng.strategy_}, {cfg.preconditioner}): setup {setup:.1f} s ({parts}; "
        f"cache {'hit' if eng.reference_cache_hit_ else 'miss'}), {rate:.3f} toys/s "
        f"({min(cpu) / n_toys:.3f} CPU s per toy), CG iterations {min(iters)}-{max(iters)} "
        f"(mean {np.mean(iters):.1f}); 500 toys incl. setup {total_500:.0f} s; "
        f"load {os.getloadavg()[0]:.1f}"
    )


def _ratio(benchmark, faster: str, slower: str, label: str) -> None:
    """Record and print RATES[faster] / RATES[slower] when both ran in this session."""
    if faster in RATES and slower in RATES:
        ratio = RATES[faster] / RATES[slower]
        benchmark.extra_info[f"{faster}_over_{slower}"] = ratio
        print(
            f"{label} = {ratio:.2f}x; CG iterations per toy {ITERS[faster]:.1f} vs "
            f"{ITERS[slower]:.1f}"
        )


def test_bench_shared_pool(benchmark, pool, cache_dir):
    _bench_shared(benchmark, pool, cache_dir, "pool", N_TOYS, strategy="pool")


def test_bench_shared_pool_falkon(benchmark, pool, cache_dir):
    """The previous path: Falkon's preconditioner and tolerance, in the same run."""
    _bench_shared(
        benchmark, pool, cache_dir, "pool_falkon", N_TOYS, strategy="pool", preconditioner="falkon"
    )
    _ratio(benchmark, "pool", "pool_falkon", "pool ('average') / pool_falkon")


def test_bench_shared_pool_dense(benchmark, pool, cache_dir):
    _bench_shared(
        benchmark, pool, cache_dir, "pool_dense", N_TOYS, strategy="pool", pool_backend="torch"
    )
    _ratio(benchmark, "pool", "pool_dense", "pool (selected rows) / pool_dense (dense GEMMs)")


def test_bench_shared_pool_f32(benchmark, pool, cache_dir):
    _bench_shared(
        benchmark, pool, cache_dir, "pool_f32", N_TOYS, strategy="pool", pool_dtype="float32"
    )


def test_bench_shared_pool_i16(benchmark, pool, cache_dir):
    """16-bit pool storage (int16 with row and column scales): a quarter of float64's
    memory; against the float32 pool of the same run."""
    _bench_shared(
        benchmark, pool, cache_dir, "pool_i16", N_TOYS, strategy="pool", pool_dtype="int16"
    )
    _ratio(benchmark, "pool_i16", "pool_f32", "pool_i16 / pool_f32")


def test_bench_shared_pool_tight(benchmark, pool, cache_dir):
    """The previous 'average' default tolerance (a hundredth of Falkon's, 3.2e-6) against
    the current one (1e-5), in the same run: CG iterations and toys/s."""
    _bench_shared(
        benchmark, pool, cache_dir, "pool_tight", N_TOYS, strategy="pool", cg_tol=1e-2 * FALKON_TOL
    )
    _ratio(benchmark, "pool", "pool_tight", "pool (tol 1e-5) / pool_tight (tol 3.2e-6)")


def test_bench_shared_stream(benchmark, pool, cache_dir):
    _bench_shared(benchmark, pool, cache_dir, "stream", 4, strategy="stream")


def test_bench_setup_cached(benchmark, pool, tmp_path):
    """Setup with a cold reference cache (computes and writes it) vs a warm one (loads)."""
    cfg = _config("shared", strategy="pool", reference_cache=str(tmp_path))
    cold, cold_s, cold_cpu = _prepared(pool, cfg)
    assert not cold.reference_cache_hit_

    def warm_setup():
        return _prepared(pool, cfg)

    warm, warm_s, warm_cpu = benchmark.pedantic(warm_setup, rounds=1, iterations=1)
    assert warm.reference_cache_hit_
    benchmark.extra_info.update(
        cold_setup_s=cold_s,
        cold_setup_cpu_s=cold_cpu,
        cold_parts_s=dict(cold.setup_seconds_),
        warm_setup_s=warm_s,
        warm_setup_cpu_s=warm_cpu,
        warm_parts_s=dict(warm.setup_seconds_),
        cache_bytes=cold.reference_cache_path_.stat().st_size,
        load_average=os.getloadavg(),
    )
    print(
        f"\nsetup: cold {cold_s:.1f} s (reference {cold.setup_seconds_['reference']:.1f} s), "
        f"cached {warm_s:.1f} s (reference {warm.setup_seconds_['reference']:.2f} s); "
        f"load {os.getloadavg()[0]:.1f}"
    )


def test_bench_setup_methods(benchmark, pool):
    """Cold setup (no reference cache) of the 'pool' strategy: the triangular solve per tile
    (``setup_method="solve"``, the previous path) against the blocked whitening (T^-1
    column-blocked GEMMs, SYRK reference Gram), float64 and float32 pool storage, in the
    same run; setup CPU seconds, pool bytes, and the first toys' t (compared with the exact
    step by ``test_bench_accuracy``)."""
    rows = {}

    def setups():
        for name, method, pool_dtype in (
            ("setup_solve", "solve", "float64"),
            ("setup_blocked", "blocked", "float64"),
            ("setup_blocked_f32", "blocked", "float32"),
        ):
            cfg = _config("shared", strategy="pool", pool_dtype=pool_dtype)
            eng, wall, cpu = _prepared(pool, cfg, setup_method=method)
            first = list(eng.run(range(N_ACCURACY), block_seconds=None))
            T_FIRST[name] = np.concatenate([b.t for b in first])
            ITERS[name] = float(np.mean([i for b in first for i in b.n_iter]))
            rows[name] = dict(
                setup_s=wall,
                setup_cpu_s=cpu,
                parts_s=dict(eng.setup_seconds_),
                pool_bytes=eng._zpool.element_size() * eng._zpool.numel(),
            )
            del eng, first

    benchmark.pedantic(setups, rounds=1, iterations=1)
    ref = T_FIRST["setup_solve"]
    msg = "\ncold setup (CPU s):"
    for name, row in rows.items():
        row["max_rel_t_vs_solve"] = float(np.max(np.abs(T_FIRST[name] / ref - 1.0)))
        benchmark.extra_info[name] = row
        msg += (
            f" {name} {row['setup_cpu_s']:.1f} (wall {row['setup_s']:.1f}, pool "
            f"{row['pool_bytes'] / 2**30:.2f} GiB, t vs solve {row['max_rel_t_vs_solve']:.1e});"
        )
    benchmark.extra_info["load_average"] = os.getloadavg()
    print(msg + f" load {os.getloadavg()[0]:.1f}")


def _previous_gram_update(gram, z):
    """The previous path's Gram update: SciPy's SYRK (OpenBLAS) on the upper triangle."""
    from scipy.linalg.blas import dsyrk

    res = dsyrk(1.0, z.numpy().T, beta=1.0, c=gram.numpy().T, trans=0, lower=1, overwrite_c=1)
    if not np.shares_memory(res, gram.numpy()):
        gram.numpy().T[...] = res


def _previous_tile(x, centers, sigma, out=None):
    """The previous path's kernel tile: the torch expression, a fresh tensor per tile."""
    k = torch.mm(x, centers.T).mul_(-2.0)
    k.add_((x * x).sum(1, keepdim=True)).add_((centers * centers).sum(1)).clamp_(min=0.0)
    return k.mul_(-0.5 / sigma**2).exp_()


def test_bench_setup_previous(benchmark, pool, monkeypatch):
    """Cold setup of the 'pool' strategy (float32 pool) against the previous path in the same
    run: torch kernel tiles in fresh tensors and SciPy's SYRK for the reference Gram (whose
    OpenBLAS threads spin between calls and slow torch's), against the native tile into one
    reused buffer and the upper-triangular torch GEMMs; setup parts and the first toys' t."""
    rows = {}

    def setup(name):
        cfg = _config("shared", strategy="pool", pool_dtype="float32")
        eng, wall, cpu = _prepared(pool, cfg)
        first = list(eng.run(range(N_ACCURACY), block_seconds=None))
        T_FIRST[name] = np.concatenate([b.t for b in first])
        ITERS[name] = float(np.mean([i for b in first for i in b.n_iter]))
        rows[name] = dict(setup_s=wall, setup_cpu_s=cpu, parts_s=dict(eng.setup_seconds_))

    def both():
        setup("setup_current")
        with monkeypatch.context() as m:
            m.setattr(nystrom, "_gram_upper_update", _previous_gram_update)
            m.setattr(nystrom, "gaussian_kernel", _previous_tile)
            setup("setup_previous")

    benchmark.pedantic(both, rounds=1, iterations=1)
    ratio = rows["setup_previous"]["setup_s"] / rows["setup_current"]["setup_s"]
    rel = float(np.max(np.abs(T_FIRST["setup_current"] / T_FIRST["setup_previous"] - 1)))
    benchmark.extra_info.update(rows, previous_over_current=ratio, max_rel_t=rel)
    benchmark.extra_info["load_average"] = os.getloadavg()
    print(
        "\ncold setup: "
        + "; ".join(
            f"{k} {v['setup_s']:.1f} s ("
            + ", ".join(f"{p} {x:.1f}" for p, x in v["parts_s"].items())
            + ")"
            for k, v in rows.items()
        )
        + f"; previous / current = {ratio:.2f}x; t differs by {rel:.1e}"
    )


def test_bench_accuracy(benchmark, pool, cache_dir):
    """The exact one-step t (dense Cholesky of each toy's M x M system) of the first toys,
    against the pool runs' t: the largest relative difference per path."""
    cfg = _config("shared", strategy="stream", solver="exact", reference_cache=cache_dir)
    eng, _, _ = _prepared(pool, cfg)

    def exact():
        return np.concatenate([b.t for b in eng.run(range(N_ACCURACY), block_seconds=None)])

    t_exact = benchmark.pedantic(exact, rounds=1, iterations=1)
    msg = "\nmax |t / t_exact - 1| over the first toys:"
    for name, t in T_FIRST.items():
        rel = float(np.max(np.abs(t / t_exact - 1.0)))
        benchmark.extra_info[f"{name}_max_rel_t"] = rel
        msg += f" {name} {rel:.1e} ({ITERS[name]:.1f} CG iterations);"
    print(msg)


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
    for name in ("pool", "pool_falkon", "pool_dense", "pool_f32", "pool_i16", "stream"):
        if name in RATES:
            ratio = RATES[name] / rate
            benchmark.extra_info[f"{name}_over_paper"] = ratio
            msg += f"; {name} / paper = {ratio:.1f}x"
    print(msg)
