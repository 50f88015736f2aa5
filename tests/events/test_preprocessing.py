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


# ---------------------------------------------------------------------- layout-aware mode


def test_pt_mode_is_bit_identical_to_the_original(events):
    """The ADC2021 "pt" mode keeps the statistics and outputs saved models were made with."""
    pre = Preprocessor("pt").fit(events)
    pt = events.particles[..., 0].astype(np.float64)
    v = pt[pt > 0]
    n, total, sumsq = v.size, float(v.sum()), float(np.square(v).sum())
    mean = total / n
    std = float(np.sqrt(max(sumsq / n - mean * mean, 0.0)))
    assert pre.mean_ == mean and pre.std_ == std  # exactly, not approximately
    expected = events.particles.copy()
    filled = pt > 0
    expected[..., 0][filled] = ((v - mean) / std).astype(np.float32)
    expected[~filled] = 0.0
    assert np.array_equal(pre.transform(events), expected)
    assert set(pre.state_dict()) == {"kind", "mean", "std", "n_fitted"}


def brute_force_statistics(ev, layout):
    """Mean/std of every object feature over filled encoder objects, by explicit loops."""
    values = [[] for _ in range(layout.n_features)]
    encoder = set(layout.encoder_slots.tolist())
    for e in range(len(ev)):
        for s in range(layout.n_objects):
            if s not in encoder or ev.particles[e, s, 0] <= 0:
                continue
            for f, feat in enumerate(layout.features):
                x = float(ev.particles[e, s, f])
                values[f].append(np.log1p(x) if feat.log else x)
    return np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])


def test_layout_statistics_over_filled_encoder_objects_only(layout_events):
    from contrastx.events.layout import DIPHOTON

    ev = layout_events(DIPHOTON, 300, seed=7)
    pre = Preprocessor("layout", DIPHOTON).fit(ev)
    mean, std = brute_force_statistics(ev, DIPHOTON)
    one_hot = DIPHOTON.one_hot_features
    np.testing.assert_allclose(pre.object_mean_[~one_hot], mean[~one_hot], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pre.object_std_[~one_hot], std[~one_hot], rtol=1e-9)
    assert (pre.object_mean_[one_hot] == 0).all() and (pre.object_std_[one_hot] == 1).all()
    enc = ev.particles[:, DIPHOTON.encoder_slots]
    assert pre.n_fitted_ == int((enc[..., 0] > 0).sum()) and pre.n_events_ == 300
    # padding is left out: counting the padded zeros would pull the log-pT mean down
    logpt = np.log1p(enc[..., 0])
    assert logpt.mean() < pre.object_mean_[0] - 0.5
    # the photons (not encoder inputs) play no part
    p = ev.particles.copy()
    p[:, DIPHOTON.group_slots("photon"), 0] *= 10
    shifted = type(ev)(p, event_features=ev.event_features, layout=DIPHOTON)
    again = Preprocessor("layout", DIPHOTON).fit(shifted)
    assert np.array_equal(again.object_mean_, pre.object_mean_)


def test_layout_transform_padding_one_hot_and_event_features(layout_events):
    from contrastx.events.layout import DIPHOTON

    ev = layout_events(DIPHOTON, 400, seed=8)
    pre = Preprocessor("layout", DIPHOTON).fit(ev)
    z = pre.transform(ev)
    filled = ev.object_mask
    assert z.dtype == np.float32 and z.shape == ev.particles.shape
    assert (z[~filled] == 0).all()  # padding stays exactly zero
    one_hot = DIPHOTON.one_hot_features
    assert np.array_equal(z[..., one_hot], ev.particles[..., one_hot])  # 0/1 untouched
    logged = DIPHOTON.log_features
    raw = ev.particles[filled].astype(np.float64)
    raw[:, logged] = np.log1p(raw[:, logged])
    expected = (raw - pre.object_mean_) / pre.object_std_
    np.testing.assert_allclose(z[filled], expected, rtol=1e-5, atol=1e-5)
    # standardised over the fitted encoder objects: mean 0, std 1 per non-one-hot feature
    enc = z[:, DIPHOTON.encoder_slots][filled[:, DIPHOTON.encoder_slots]][:, ~one_hot]
    np.testing.assert_allclose(enc.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(enc.std(0), 1, rtol=1e-4)
    # event-level features: each on its own; m_gg (not an encoder input) left out
    e = pre.transform_event_features(ev)
    assert e.shape == (400, 2)
    n_jets, ht = ev.event_feature("n_jets"), np.log1p(ev.event_feature("ht").astype(np.float64))
    np.testing.assert_allclose(e[:, 0], (n_jets - n_jets.mean()) / n_jets.std(), atol=1e-5)
    np.testing.assert_allclose(e[:, 1], (ht - ht.mean()) / ht.std(), atol=1e-5)
    inputs = pre.encoder_inputs(ev)
    assert inputs.objects.shape == (400, 11, 12) and inputs.mask.shape == (400, 11)
    assert np.array_equal(inputs.objects, z[:, :11]) and np.array_equal(inputs.mask, filled[:, :11])
    assert np.array_equal(inputs.event_features, e)
    np.testing.assert_allclose(pre.inverse_transform(z, filled), ev.particles, rtol=1e-4, atol=1e-4)


def test_layout_streaming_fit_and_saved_state(tmp_path, layout_events):
    from contrastx.events.layout import DIPHOTON

    ev = layout_events(DIPHOTON, 500, seed=9)
    full = Preprocessor("layout", DIPHOTON).fit(ev)
    chunked = Preprocessor("layout", DIPHOTON).fit(ev[i : i + 70] for i in range(0, 500, 70))
    np.testing.assert_allclose(chunked.object_mean_, full.object_mean_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked.object_std_, full.object_std_, rtol=1e-10)
    np.testing.assert_allclose(chunked.event_std_, full.event_std_, rtol=1e-10)
    full.save(tmp_path / "pre.json")
    back = Preprocessor.load(tmp_path / "pre.json")
    assert back.layout == DIPHOTON and back.kind == "layout"
    assert np.array_equal(back.transform(ev), full.transform(ev))
    assert np.array_equal(back.transform_event_features(ev), full.transform_event_features(ev))
    state = full.state_dict()
    state["object_std"] = state["object_std"][:-1]
    with pytest.raises(ValueError, match=r"object_std must be 12 finite numbers for layout"):
        Preprocessor.from_state_dict(state)
    state = full.state_dict()
    state["layout"] = {**state["layout"], "groups": []}
    with pytest.raises(ValueError, match=r"invalid preprocessor state: .*groups must hold"):
        Preprocessor.from_state_dict(state)


def test_layout_mode_errors(layout_events, events):
    from contrastx.events.layout import ADC2021, DIPHOTON

    ev = layout_events(DIPHOTON, 50, seed=1)
    with pytest.raises(ValueError, match=r"kind 'pt' is the ADC2021 pT scaling; layout 'diph"):
        Preprocessor("pt", DIPHOTON)
    with pytest.raises(ValueError, match=r"preprocessor is for layout 'adc2021'; got events in"):
        Preprocessor("layout").fit(ev)
    with pytest.raises(ValueError, match=r"event-level encoder features \(n_jets, ht\): pass Ev"):
        Preprocessor("layout", DIPHOTON).fit(ev.particles)
    with pytest.raises(ValueError, match=r"no event-level features; use kind 'layout'"):
        Preprocessor("pt").fit(events).transform_event_features(events)
    p = ev.particles.copy()
    p[..., DIPHOTON.feature_index("btag")] = 0
    flat = type(ev)(p, event_features=ev.event_features, layout=DIPHOTON)
    with pytest.raises(ValueError, match=r"object feature\(s\) btag have zero spread"):
        Preprocessor("layout", DIPHOTON).fit(flat)
    # the layout mode applies to ADC2021 arrays too (no event-level features there)
    pre = Preprocessor("layout", ADC2021).fit(events.particles)
    assert pre.event_mean_.shape == (0,) and (pre.transform(events)[~events.object_mask] == 0).all()
