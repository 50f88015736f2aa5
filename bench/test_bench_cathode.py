"""CATHODE's stages at the LHC Olympics R&D sizes: flow training, sampling, k-fold BDTs.

Run with ``pytest bench/test_bench_cathode.py --benchmark-only``. Needs the shared
``lhco-rd-sr`` folder (skipped without it); real sizes: the 84,522 sideband events of
``bench/cathode_lhco.py``'s split, a 4x template of its 35,478 signal-region events.
torch runs on one thread, as the bench and the CLI do.

* flow training: one epoch of the default flow (NSF 4 x 64) and, as the baseline in the
  same run, of CATHODE's original affine MAF (15 x 128, batch 256); ``extra_info`` holds
  events/s and the ratio.
* sampling: 4x the SR events from the default flow (one epoch trained), events/s.
* classifier: one k-fold CWoLa model (5 folds, 100 trees, 2 % leaves) on SR data vs the
  template; the baseline is scikit-learn's ``HistGradientBoostingClassifier`` fitted the
  way sk_cathode does (its own weighted binning, default threads) on the same folds.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from contrastx.cathode import (
    FLOW_PRESETS,
    ClassifierOptions,
    ConditionalFlow,
    CWoLaClassifier,
    FlowOptions,
)
from contrastx.options import from_mapping, replace_flat

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "lhco-rd-sr"
SR, OUTER = (3.44, 3.56), (3.3, 3.7)


@pytest.fixture(scope="module")
def lhco():
    files = [DATA / f"innerdata_{k}.npy" for k in ("train", "val")]
    if not all(f.is_file() for f in files):
        pytest.skip(f"LHCO R&D data not found in {DATA}")
    data = np.concatenate([np.load(f) for f in files])
    m, x = data[:, 0], data[:, 1:5]
    sr = (m >= SR[0]) & (m < SR[1])
    sb = (m >= OUTER[0]) & (m < OUTER[1]) & ~sr
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {"x_sb": x[sb], "m_sb": m[sb], "x_sr": x[sr], "m_sr": m[sr]}
    torch.set_num_threads(threads)


def _one_epoch(opts: FlowOptions) -> FlowOptions:
    return replace_flat(opts, epochs=1, n_flows=1, n_best_epochs=1, patience=None)


@pytest.fixture(scope="module")
def trained_flow(lhco):
    flow = ConditionalFlow(_one_epoch(FlowOptions()))
    return flow.fit(lhco["x_sb"], lhco["m_sb"], seed=0, progress=False)


_FLOW_RATES: dict[str, float] = {}


@pytest.mark.parametrize("preset", ["default", "cathode"])
def test_bench_flow_training(benchmark, lhco, preset):
    opts = FlowOptions() if preset == "default" else from_mapping(FlowOptions, FLOW_PRESETS[preset])
    opts = _one_epoch(opts)

    def fit():
        return ConditionalFlow(opts).fit(lhco["x_sb"], lhco["m_sb"], seed=0, progress=False)

    flow = benchmark.pedantic(fit, rounds=1, iterations=1)
    n_train = flow.fit_info_["n_train"]
    rate = n_train / benchmark.stats.stats.min
    _FLOW_RATES[preset] = rate
    benchmark.extra_info.update(train_events=n_train, events_per_s=round(rate))
    if preset == "cathode" and "default" in _FLOW_RATES:
        benchmark.extra_info["default_speedup"] = round(_FLOW_RATES["default"] / rate, 2)
    print(f"\nflow {preset}: {rate:,.0f} training events/s (1 epoch, {n_train} events)")


def test_bench_flow_sampling(benchmark, lhco, trained_flow):
    rng = np.random.default_rng(0)
    m = rng.choice(lhco["m_sr"], size=4 * len(lhco["m_sr"]))
    benchmark.pedantic(lambda: trained_flow.sample(m, seed=1), rounds=3, iterations=1)
    rate = len(m) / benchmark.stats.stats.min
    benchmark.extra_info.update(events=len(m), events_per_s=round(rate))
    print(f"\nflow sampling: {rate:,.0f} events/s ({len(m)} events)")


@pytest.fixture(scope="module")
def template(lhco, trained_flow):
    rng = np.random.default_rng(2)
    m = rng.choice(lhco["m_sr"], size=4 * len(lhco["m_sr"]))
    return trained_flow.sample(m, seed=3)


_BDT_SECONDS: dict[str, float] = {}


@pytest.mark.parametrize("impl", ["contrastx", "sklearn"])
def test_bench_cwola_kfold(benchmark, lhco, template, impl):
    opts = replace_flat(ClassifierOptions(), n_models=1, ensemble_size=1)
    if impl == "contrastx":

        def run():
            return CWoLaClassifier(opts).fit(lhco["x_sr"], template, seed=0)

    else:
        from sklearn.ensemble import HistGradientBoostingClassifier

        x = np.concatenate([lhco["x_sr"], template])
        y = np.r_[np.ones(len(lhco["x_sr"])), np.zeros(len(template))]
        w = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
        folds = np.random.default_rng(0).integers(0, opts.n_folds, size=len(y))

        def run():
            for f in range(opts.n_folds):
                train = folds != f
                HistGradientBoostingClassifier(
                    max_iter=opts.max_iter,
                    early_stopping=False,
                    min_samples_leaf=int(opts.min_leaf_fraction * train.sum()),
                    random_state=0,
                ).fit(x[train], y[train], sample_weight=w[train])

    t = time.perf_counter()
    benchmark.pedantic(run, rounds=1, iterations=1)
    _BDT_SECONDS[impl] = time.perf_counter() - t
    benchmark.extra_info.update(
        folds=opts.n_folds, trees=opts.max_iter, data=len(lhco["x_sr"]), template=len(template)
    )
    if impl == "sklearn" and "contrastx" in _BDT_SECONDS:
        benchmark.extra_info["contrastx_speedup"] = round(
            _BDT_SECONDS["sklearn"] / _BDT_SECONDS["contrastx"], 2
        )
    print(f"\nCWoLa k-fold ({impl}): {_BDT_SECONDS[impl]:.1f} s for {opts.n_folds} folds")
