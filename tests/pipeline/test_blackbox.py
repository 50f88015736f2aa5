"""Black-box search: splits, Bonferroni, signal vs background, the fast black-box file."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from contrastx.cli.blackbox import main
from contrastx.events import read_events
from contrastx.nplm.blackbox import (
    BlackBoxConfig,
    global_significance,
    read_truth,
    run_black_box,
    split_indices,
    write_fast_black_box,
)
from scipy import stats

TINY = {"n_splits": 3, "n_resample": 2, "n_ref": 1200, "M": 40, "n_null": 12, "seed": 1}


def test_split_indices_partition() -> None:
    parts = split_indices(10, 3)
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    shuffled = split_indices(10, 3, shuffle=True, seed=2)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="cannot cut"):
        split_indices(2, 3)


def test_global_significance_is_bonferroni_by_hand() -> None:
    z = np.array([0.3, 3.1, -0.5, 1.2])
    p, zg, best = global_significance(z)
    p_hand = min(1.0, 4 * stats.norm.sf(3.1))
    assert best == 1
    assert p == pytest.approx(p_hand, rel=1e-10)
    assert zg == pytest.approx(stats.norm.isf(p_hand), rel=1e-8)
    # Capped at p = 1 (Z = -inf is not useful: Phi^-1(0)); tiny p stays finite.
    p1, _, _ = global_significance([0.0, -1.0])
    assert p1 == 1.0
    _p2, z2, _ = global_significance([40.0], n_tests=10)
    # log p = log 10 + log Phi(-40): Z a little below 40, and Phi(-Z) = 10 Phi(-40).
    assert math.isfinite(z2) and 39.9 < z2 < 40.0
    assert stats.norm.logsf(z2) == pytest.approx(math.log(10) + stats.norm.logsf(40.0), rel=1e-6)


def test_global_spread_ignores_runs_capped_at_p_one() -> None:
    bb, pool = _sample(False, 3)
    res = run_black_box(bb, pool, BlackBoxConfig(**TINY))
    runs = res.global_z_runs
    finite = runs[np.isfinite(runs)]
    expected = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
    assert math.isfinite(res.global_z_std) and res.global_z_std == pytest.approx(expected)
    capped = dataclasses.replace(res, global_z_runs=np.array([-np.inf, 0.5, 1.5]))
    assert capped.global_z_std == pytest.approx(np.std([0.5, 1.5], ddof=1))


def _sample(signal: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(4000, 3))
    bb = rng.normal(size=(1500, 3))
    if signal:  # a strong, localised excess in the last split
        bb[1100:1200] = rng.normal(size=(100, 3)) * 0.3 + 1.5
    return bb, pool


def test_signal_black_box_beats_background_only() -> None:
    cfg = BlackBoxConfig(**TINY)
    bb, pool = _sample(True, 0)
    sig = run_black_box(bb, pool, cfg)
    bb0, pool0 = _sample(False, 0)
    bkg = run_black_box(bb0, pool0, cfg)
    assert sig.best_split == 2
    assert sig.global_z > bkg.global_z + 3.0
    assert sig.t.shape == (3, 2) and sig.z_mean.shape == (3,)
    # Global Z is the best split's mean Z, Bonferroni-corrected with k = 3 (hand formula).
    p_hand = min(1.0, 3 * stats.norm.sf(sig.z_mean.max()))
    assert sig.global_z == pytest.approx(stats.norm.isf(p_hand), rel=1e-8)
    assert sig.global_p == pytest.approx(p_hand, rel=1e-8)
    # z from the chi^2 with dof = null mean
    assert sig.dof == pytest.approx(sig.t_null.mean())
    z00 = stats.norm.isf(stats.chi2.sf(sig.t[0, 0], sig.dof))
    assert sig.z[0, 0] == pytest.approx(z00, rel=1e-6, abs=1e-9)
    # Scores of the best split: one per event, in (0, 1), excess events score high.
    assert sig.best_scores.shape == (sig.best_indices.size,)
    inj = np.isin(sig.best_indices, np.arange(1100, 1200))
    assert sig.best_scores[inj].mean() > sig.best_scores[~inj].mean()
    d = sig.as_dict()
    json.dumps(d)
    assert "split 2" in sig.table_markdown("x") and "**" in sig.table_markdown("x")


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="same D"):
        run_black_box(np.zeros((10, 2)), np.zeros((10, 3)), BlackBoxConfig(**TINY))
    with pytest.raises(ValueError, match="n_null"):
        BlackBoxConfig(n_null=1)


def test_fast_black_box_file_hides_labels(tmp_path: Path) -> None:
    bb, truth = tmp_path / "bb.h5", tmp_path / "truth.h5"
    info = write_fast_black_box(bb, truth, n_background=400, signal="Ato4l", fraction=0.05, seed=4)
    assert info["n_signal"] == 20 and info["n_events"] == 420
    ev = read_events(bb)
    assert (ev.labels == -1).all()
    assert ev.event_ids.tolist() == list(range(420))
    tr = read_truth(truth)
    assert tr.event_ids.tolist() == list(range(420))
    assert int((tr.labels == tr.process_names.index("Ato4l")).sum()) == 20
    assert tr.info["signal"] == "Ato4l" and tr.signal == "Ato4l" and tr.is_signal.sum() == 20
    with pytest.raises(FileExistsError):
        write_fast_black_box(bb, truth, n_background=400, signal="Ato4l", fraction=0.05)


def test_cli_blind_search(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            "--make-black-box", "--black-box", str(tmp_path / "bb.h5"), "--n-background", "1500",
            "--fraction", "0.05", "--model", "leading_pt", "--n-splits", "2",
            "--n-resample", "2", "--n-ref", "800", "--M", "30", "--n-null", "6",
            "--out", str(out), "--map-method", "pca",
        ]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "blackbox.json").read_text())
    assert summary["result"]["n_splits"] == 2
    assert summary["truth"]["n_signal"] == 75
    assert (out / "splits.png").is_file() and (out / "score_map.png").is_file()
    assert "global" in (out / "table.md").read_text()
    assert main(["--black-box", str(tmp_path / "missing.h5"), "--out", str(out)]) == 2
