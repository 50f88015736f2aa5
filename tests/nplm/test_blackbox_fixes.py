"""Black-box search: capped global significance, per-event scores, pool size, truth files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from contrastx._json import dumps
from contrastx.nplm.blackbox import (
    BlackBoxConfig,
    global_significance,
    read_event_scores,
    read_truth,
    required_pool_size,
    run_black_box,
    write_event_scores,
)
from contrastx.nplm.statistics import empirical_z_limit

TINY = {"n_splits": 3, "n_resample": 2, "n_ref": 1200, "M": 40, "n_null": 12}


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_capped_global_significance_is_a_bound_and_null_in_json() -> None:
    # Background only, every split below its expectation: Bonferroni p is capped at 1.
    rng = np.random.default_rng(4)
    pool, bb = rng.normal(size=(4000, 2)), rng.normal(size=(900, 2))
    res = run_black_box(bb, pool, BlackBoxConfig(**TINY, seed=4))
    assert res.global_p == 1.0 and res.global_z == -np.inf
    assert res.global_p_capped
    assert res.global_text() == "< 0 (Bonferroni p = 1)"
    assert "< 0 (Bonferroni p = 1)" in res.table_markdown("x")
    assert "inf" not in res.table_markdown("x")
    d = _strict(dumps(res.as_dict()))
    assert d["global_z"] is None and d["global_p_capped"] is True
    assert d["global_z_text"] == "< 0 (Bonferroni p = 1)"
    json.dumps(res.as_dict(), allow_nan=False)  # as_dict itself holds no inf/NaN


def test_uncapped_global_significance_prints_value_and_spread() -> None:
    rng = np.random.default_rng(0)
    pool, bb = rng.normal(size=(4000, 2)), rng.normal(size=(900, 2))
    res = run_black_box(bb, pool, BlackBoxConfig(**TINY, seed=0))
    assert 0 < res.global_p < 1 and not res.global_p_capped
    assert res.global_text() == f"{res.global_z:.2f} ± {res.global_z_std:.2f}"


def test_empirical_split_below_every_null_toy_has_a_finite_z() -> None:
    # Background only, 7 null toys: some runs have t below every null toy (empirical
    # p = 1). Their Z was -inf and global_significance refused the split means.
    rng = np.random.default_rng(2)
    pool, bb = rng.normal(size=(4000, 2)), rng.normal(size=(900, 2))
    cfg = BlackBoxConfig(**{**TINY, "n_resample": 3, "n_null": 7}, z_method="empirical", seed=2)
    res = run_black_box(bb, pool, cfg)
    below = res.t < res.t_null.min()
    assert below.any()  # the case this test is about
    limit = empirical_z_limit(7)
    assert np.isfinite(res.z).all() and np.isfinite(res.z_mean).all()
    np.testing.assert_allclose(res.z[below], -limit, rtol=1e-12)
    assert (res.z >= -limit - 1e-12).all() and (res.z <= limit + 1e-12).all()
    assert np.isfinite(res.z_std).all()
    assert 0 < res.global_p <= 1


def test_global_significance_takes_a_split_without_any_excess() -> None:
    # A split with Z = -inf (p = 1) is never the best one and changes nothing else.
    p, z, best = global_significance([-np.inf, 1.0, 0.5])
    assert best == 1 and (p, z) == pytest.approx(global_significance([0.0, 1.0, 0.5])[:2])
    assert global_significance([-np.inf, -np.inf]) == (1.0, -np.inf, 0)
    for bad in ([np.nan, 1.0], [np.inf, 1.0], []):
        with pytest.raises(ValueError, match="z_split"):
            global_significance(bad)


def test_every_event_is_scored_and_saved(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(4000, 3))
    bb = rng.normal(size=(1500, 3))
    bb[1100:1200] = rng.normal(size=(100, 3)) * 0.3 + 1.5  # excess in the last split
    res = run_black_box(bb, pool, BlackBoxConfig(**TINY, seed=1))
    n = bb.shape[0]
    assert res.scores.shape == res.scores_std.shape == res.scores_best_run.shape == (n,)
    assert ((res.scores > 0) & (res.scores < 1)).all() and (res.scores_std >= 0).all()
    assert res.event_split.tolist() == [0] * 500 + [1] * 500 + [2] * 500
    # Fig. V's scores are the best split's events in its run with the largest t.
    np.testing.assert_array_equal(res.best_scores, res.scores_best_run[res.best_indices])
    # The injected events dominate the most anomalous ones.
    top = res.top_events(20)
    assert top.size == 20 and np.all(np.diff(res.scores[top]) <= 0)
    assert np.isin(top, np.arange(1100, 1200)).mean() >= 0.8
    ids = 10_000 + np.arange(n)
    path = write_event_scores(tmp_path / "scores.h5", res, ids)
    back = read_event_scores(path)
    assert back["row"].tolist() == list(range(n)) and back["EvtId"].tolist() == ids.tolist()
    np.testing.assert_array_equal(back["score"], res.scores)
    np.testing.assert_array_equal(back["split"], res.event_split)
    with pytest.raises(ValueError, match="event_ids has 3 entries"):
        write_event_scores(tmp_path / "bad.h5", res, [1, 2, 3])


def test_pool_too_small_fails_before_any_fit() -> None:
    rng = np.random.default_rng(0)
    cfg = BlackBoxConfig(**TINY, seed=0)
    bb = rng.normal(size=(900, 2))
    need = required_pool_size(cfg.n_ref, 300.0)
    assert need == cfg.n_ref + int(np.ceil(300 + 6 * np.sqrt(300) + 10))
    pool = rng.normal(size=(need - 1, 2))  # >= n_ref, too few for the null toys
    said: list[str] = []
    with pytest.raises(ValueError, match=f"has {need - 1} events; the search needs at least"):
        run_black_box(bb, pool, cfg, progress=said.append)
    assert said == []  # no split was fitted
    run_black_box(bb, rng.normal(size=(need, 2)), cfg)  # exactly enough is enough


# ------------------------------------------------------------------------- truth
def test_truth_adc2021_signal_id_lists(tmp_path: Path) -> None:
    path = tmp_path / "key.npz"
    np.savez(path, signal_EvtId=np.array([7, 3]), background_EvtId=np.array([1, 2, 5]))
    tr = read_truth(path)
    assert tr.signal_mask([1, 3, 5, 7]).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match=r"key\.npz: 1 of the 2 black-box event ids .*first: 9"):
        tr.signal_mask([9, 1])
    # Only the signal ids: every other id is background.
    only = tmp_path / "sig.npz"
    np.savez(only, signal_ids=np.array([4]))
    assert read_truth(only).signal_mask([3, 4, 5]).tolist() == [False, True, False]
    both = tmp_path / "both.npz"
    np.savez(both, signal_EvtId=np.array([1, 2]), background_EvtId=np.array([2, 3]))
    with pytest.raises(ValueError, match=r"both\.npz: 1 event ids are in both 'signal_EvtId'"):
        read_truth(both)


def test_truth_adc2021_labels_aligned_by_id(tmp_path: Path) -> None:
    h5 = tmp_path / "truth.h5"
    with h5py.File(h5, "w") as f:
        f["EvtId"] = np.array([10, 11, 12, 13])
        f["is_signal"] = np.array([0, 1, 0, 1])
    assert read_truth(h5).signal_mask([13, 12, 11]).tolist() == [True, False, True]
    # Process labels with names: the non-background processes are the signal.
    npz = tmp_path / "labels.npz"
    np.savez(
        npz,
        EvtId=np.array([0, 1, 2]),
        labels=np.array([0, 4, 1]),
        process_names=np.array(["W", "QCD", "Z", "ttbar", "Ato4l"]),
    )
    tr = read_truth(npz)
    assert tr.signal == "Ato4l" and tr.is_signal.tolist() == [False, True, False]
    assert read_truth(npz, signal="QCD").is_signal.tolist() == [False, False, True]
    with pytest.raises(ValueError, match=r"labels\.npz: signal 'Nope' is not one of"):
        read_truth(npz, signal="Nope")


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"foo": np.arange(3)}, r"bad\.npz: not a black-box truth file: .*keys: \['foo'\]"),
        ({"EvtId": np.arange(3)}, r"bad\.npz: event ids in 'EvtId' but no labels"),
        (
            {"EvtId": np.arange(3), "labels": np.arange(2)},
            r"bad\.npz: key 'labels' has 2 entries but 'EvtId' has 3",
        ),
        (
            {"EvtId": np.arange(3), "labels": np.array([0, 2, 1])},
            r"bad\.npz: key 'labels' must be 0 \(background\) or 1 \(signal\)",
        ),
        ({"EvtId": np.array([1, 1]), "is_signal": np.array([0, 1])}, "event id 1 appears 2"),
        ({"EvtId": np.array([0.5]), "is_signal": np.array([1])}, "key 'EvtId' must be a 1-D"),
    ],
)
def test_truth_errors_name_file_and_key(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        read_truth(path)


def test_truth_unreadable_or_missing(tmp_path: Path) -> None:
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz: not a readable \.npz truth file"):
        read_truth(bad)
    with pytest.raises(FileNotFoundError, match=r"nothere\.h5"):
        read_truth(tmp_path / "nothere.h5")


def test_truth_of_a_pythia_black_box_file(tmp_path: Path) -> None:
    # The layout contrastx-generate --black-box writes: EvtId, labels with process_names,
    # and the generation metadata (naming the signal) as JSON in the root attribute.
    path = tmp_path / "bb.truth.h5"
    with h5py.File(path, "w") as f:
        f["EvtId"] = np.arange(4)
        ds = f.create_dataset("labels", data=np.array([0, 5, 1, 5]))
        ds.attrs["process_names"] = ["W", "QCD", "Z", "ttbar", "Ato4l", "LQ_btau"]
        f.attrs["metadata"] = json.dumps({"signal": "LQ_btau", "seed": 3})
    tr = read_truth(path)
    assert tr.signal == "LQ_btau" and tr.is_signal.tolist() == [False, True, False, True]
    assert tr.info["seed"] == 3
