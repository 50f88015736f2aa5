import numpy as np
import pytest
from contrastx.events import Preprocessor


def test_pt_standardisation_matches_direct_formula(events):
    pre = Preprocessor("pt").fit(events)
    pt = events.particles[..., 0].astype(np.float64)
    filled = pt > 0
    assert pre.mean_ == pytest.approx(pt[filled].mean(), rel=1e-12)
    assert pre.std_ == pytest.approx(pt[filled].std(), rel=1e-9)
    z = pre.transform(events)
    assert z.dtype == np.float32 and z.shape == events.particles.shape
    np.testing.assert_allclose(
        z[..., 0][filled], (pt[filled] - pt[filled].mean()) / pt[filled].std(), rtol=1e-5, atol=1e-6
    )
    # eta and phi untouched on filled slots, padding exactly zero everywhere
    np.testing.assert_array_equal(z[..., 1:][filled], events.particles[..., 1:][filled])
    assert (z[~filled] == 0).all()
    assert np.array_equal(events.particles, events.particles)  # input not modified
    np.testing.assert_allclose(
        pre.inverse_transform(z, filled), events.particles, rtol=1e-5, atol=1e-4
    )


def test_log_pt_variant(events):
    pre = Preprocessor("log_pt").fit(events)
    pt = events.particles[..., 0].astype(np.float64)
    filled = pt > 0
    lp = np.log(pt[filled])
    z = pre.transform(events)
    np.testing.assert_allclose(z[..., 0][filled], (lp - lp.mean()) / lp.std(), rtol=1e-5, atol=1e-5)
    assert (z[~filled] == 0).all()


def test_streaming_fit_equals_full_fit(make_events):
    ev = make_events(2000, seed=4)
    full = Preprocessor("log_pt").fit(ev)
    chunked = Preprocessor("log_pt").fit(ev[i : i + 300] for i in range(0, 2000, 300))
    assert chunked.mean_ == pytest.approx(full.mean_, rel=1e-12)
    assert chunked.std_ == pytest.approx(full.std_, rel=1e-9)


def test_save_load_gives_identical_transform(tmp_path, events):
    pre = Preprocessor("pt").fit(events)
    pre.save(tmp_path / "pre.json")
    back = Preprocessor.load(tmp_path / "pre.json")
    assert np.array_equal(back.transform(events), pre.transform(events))
    assert Preprocessor.from_state_dict(pre.state_dict()).std_ == pre.std_


def test_errors(events):
    with pytest.raises(ValueError, match="kind must be one of"):
        Preprocessor("sqrt")
    with pytest.raises(RuntimeError, match="not fitted"):
        Preprocessor().transform(events)
    with pytest.raises(ValueError, match="no filled object slot"):
        Preprocessor().fit(np.zeros((5, 19, 3)))
    with pytest.raises(ValueError, match="shape"):
        Preprocessor().fit(np.zeros((5, 19)))
