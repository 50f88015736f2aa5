"""FeatureScaler: exact inverse, finite values at and beyond the bounds, Jacobian, state."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from contrastx.cathode import FeatureScaler


def bounded_data(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Columns like the LHCO features: a mass >= 0, a ratio in [0, 1], an unbounded one."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.exponential(0.1, n), rng.beta(2.0, 3.0, n), rng.normal(5.0, 2.0, n)], axis=1
    )


@pytest.mark.parametrize("logit", [True, False, [True, True, False]])
def test_inverse_is_exact_and_training_data_are_standardised(logit):
    x = bounded_data()
    scaler = FeatureScaler(logit=logit).fit(x)
    z = scaler.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0, rtol=1e-12)
    back = scaler.inverse_transform(z)
    np.testing.assert_allclose(back, x, rtol=1e-12, atol=1e-14)


def test_values_at_and_beyond_the_bounds_stay_finite(caplog):
    x = bounded_data()
    scaler = FeatureScaler(logit=True, margin=0.01).fit(x)
    lo, hi = scaler.low_, scaler.high_
    probes = np.array(
        [
            x.min(axis=0),
            x.max(axis=0),
            lo,  # exactly on the lower bound: logit(0) would be -inf
            hi,  # exactly on the upper bound: logit(1) would be +inf
            lo - 1.0,
            hi + 1.0,
            np.full(3, -1e300),
            np.full(3, 1e300),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="contrastx.cathode.preprocessing"):
        z = scaler.transform(probes)
    assert np.isfinite(z).all()
    assert np.isfinite(scaler.log_abs_det_jacobian(probes)).all()
    # the first two rows are inside the bounds and invert exactly; the rest are clipped
    np.testing.assert_allclose(scaler.inverse_transform(z[:2]), probes[:2], rtol=1e-12)
    assert "clipped" in caplog.text and "feature 0: 6" in caplog.text
    # clipped values come back inside [low_, high_], never beyond
    back = scaler.inverse_transform(z)
    assert ((back >= lo) & (back <= hi)).all()


def test_inverse_of_extreme_z_lands_inside_the_bounds():
    scaler = FeatureScaler(logit=[True, True, False]).fit(bounded_data())
    z = np.array([[-1e4, 1e4, 3.0], [50.0, -50.0, -3.0], [1e308, -1e308, 0.0]])
    x = scaler.inverse_transform(z)
    assert np.isfinite(x).all()
    assert ((x[:, :2] >= scaler.low_[:2]) & (x[:, :2] <= scaler.high_[:2])).all()
    with pytest.raises(ValueError, match="non-finite"):
        scaler.inverse_transform(np.array([[np.inf, 0.0, 0.0]]))


@pytest.mark.parametrize("logit", [True, [False, True, False]])
def test_log_abs_det_jacobian_matches_finite_differences(logit):
    x = bounded_data(200, seed=3)
    scaler = FeatureScaler(logit=logit).fit(x)
    h = 1e-6 * (scaler.high_ - scaler.low_ if np.all(scaler.logit_) else np.ptp(x, axis=0))
    numeric = np.zeros(len(x))
    for j in range(x.shape[1]):  # the transform is elementwise: the Jacobian is diagonal
        up, down = x.copy(), x.copy()
        up[:, j] += h[j]
        down[:, j] -= h[j]
        dz = (scaler.transform(up)[:, j] - scaler.transform(down)[:, j]) / (2 * h[j])
        numeric += np.log(np.abs(dz))
    np.testing.assert_allclose(scaler.log_abs_det_jacobian(x), numeric, rtol=1e-6, atol=1e-6)


def test_state_dict_round_trip_through_json_is_exact():
    x = bounded_data()
    scaler = FeatureScaler(logit=[True, False, True], margin=0.05).fit(x)
    again = FeatureScaler.from_state_dict(json.loads(json.dumps(scaler.state_dict())))
    probe = bounded_data(100, seed=9)
    np.testing.assert_array_equal(again.transform(probe), scaler.transform(probe))
    z = scaler.transform(probe)
    np.testing.assert_array_equal(again.inverse_transform(z), scaler.inverse_transform(z))
    np.testing.assert_array_equal(
        again.log_abs_det_jacobian(probe), scaler.log_abs_det_jacobian(probe)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "other"}, "not a contrastx-feature-scaler"),
        ({"version": 99}, "version 99"),
        ({"std": [1.0, 0.0, 1.0]}, "std > 0"),
        ({"mean": [0.0, 1.0]}, "mean must be 3 finite numbers"),
        ({"low": [0.0, float("nan"), 0.0]}, "low must be 3 finite"),
    ],
)
def test_inconsistent_states_are_refused(change, message):
    state = FeatureScaler().fit(bounded_data()).state_dict()
    state.update(change)
    with pytest.raises(ValueError, match=message):
        FeatureScaler.from_state_dict(state)


def test_bad_input_gets_clear_errors():
    x = bounded_data(50)
    with pytest.raises(ValueError, match=r"feature 1 is constant"):
        FeatureScaler().fit(np.stack([x[:, 0], np.full(50, 0.3)], axis=1))
    bad = x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"event 7, feature 2"):
        FeatureScaler().fit(bad)
    with pytest.raises(ValueError, match="2-D"):
        FeatureScaler().fit(x[:, 0])
    with pytest.raises(ValueError, match="at least 2 events"):
        FeatureScaler().fit(x[:1])
    with pytest.raises(ValueError, match="logit lists 2 flags for 3"):
        FeatureScaler(logit=[True, False]).fit(x)
    scaler = FeatureScaler().fit(x)
    with pytest.raises(ValueError, match=r"must have 3 feature\(s\)"):
        scaler.transform(x[:, :2])
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureScaler().transform(x)
    with pytest.raises(TypeError, match="logit must be"):
        FeatureScaler(logit="yes")
    with pytest.raises(ValueError, match="margin"):
        FeatureScaler(margin=-0.1)
