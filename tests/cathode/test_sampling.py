"""SR template: KDE of m inside the window, oversampling, hybrid component proportions."""

from __future__ import annotations

import numpy as np
import pytest
from contrastx.cathode import MassKDE, TemplateComponent, TemplateOptions, make_template
from contrastx.options import OptionsError, from_mapping
from scipy import stats

WINDOW = (3.44, 3.56)


def falling_m(n: int, seed: int) -> np.ndarray:
    """A steeply falling m spectrum truncated to the window (like a dijet mass)."""
    rng = np.random.default_rng(seed)
    out = WINDOW[0] + rng.exponential(0.05, 4 * n)
    return out[out < WINDOW[1]][:n]


class LinearFlow:
    """Stand-in flow: x = (m, 2 m) + seeded noise, so samples reveal their m."""

    def sample(self, m, *, seed):
        rng = np.random.default_rng(seed)
        m = np.asarray(m)
        return np.stack([m, 2 * m], axis=1) + rng.normal(0, 0.01, (len(m), 2))


def test_kde_samples_stay_in_the_window_and_follow_the_sr_distribution():
    m_sr = falling_m(3000, seed=0)
    kde = MassKDE(bandwidth=0.05).fit(m_sr, WINDOW)
    draws = kde.sample(20_000, seed=1)
    assert ((draws >= WINDOW[0]) & (draws < WINDOW[1])).all()
    assert stats.ks_2samp(draws, m_sr).pvalue > 0.01
    # the test has power: a flat spectrum in the same window is rejected outright
    flat = np.random.default_rng(2).uniform(*WINDOW, 20_000)
    assert stats.ks_2samp(flat, m_sr).pvalue < 1e-6
    # a kernel much wider than the window is still cut to it (reject and redraw)
    wide = MassKDE(bandwidth=5.0).fit(m_sr, WINDOW).sample(5000, seed=3)
    assert ((wide >= WINDOW[0]) & (wide < WINDOW[1])).all()


def test_kde_bandwidth_is_relative_to_the_spread_of_m():
    m_sr = falling_m(2000, seed=4)
    kde = MassKDE(bandwidth=0.2).fit(m_sr, WINDOW)
    assert kde.scale_ == pytest.approx(0.2 * m_sr.std())
    a = kde.sample(100, seed=5)
    np.testing.assert_array_equal(a, kde.sample(100, seed=5))
    assert not np.array_equal(a, kde.sample(100, seed=6))


@pytest.mark.parametrize(
    ("m_sr", "window", "error", "message"),
    [
        (np.array([3.45, 3.6]), WINDOW, ValueError, r"1 of 2 m_sr value\(s\) lie outside"),
        (np.array([]), WINDOW, ValueError, "m_sr is empty"),
        (np.array([3.45, np.nan]), WINDOW, ValueError, "m_sr holds 1 non-finite"),
        (np.array([3.45]), (3.5, 3.4), ValueError, "window must have lo < hi"),
    ],
)
def test_kde_bad_input(m_sr, window, error, message):
    with pytest.raises(error, match=message):
        MassKDE(0.1).fit(m_sr, window)


def test_kde_bad_settings():
    with pytest.raises(ValueError, match="bandwidth must be"):
        MassKDE(0.0)
    with pytest.raises(RuntimeError, match="not fitted"):
        MassKDE(0.1).sample(3)
    with pytest.raises(OptionsError, match=r"cathode\.template\.oversampling must be > 0"):
        TemplateOptions(oversampling=0.0)
    assert from_mapping(TemplateOptions, {"kde_bandwidth": 0.1}).kde_bandwidth == 0.1


def test_template_oversamples_and_weights_sum_to_the_sr_count():
    m_sr = falling_m(1000, seed=7)
    x, m, w = make_template(LinearFlow(), m_sr, TemplateOptions(oversampling=4.0), seed=1,
                            window=WINDOW)  # fmt: skip
    assert x.shape == (4000, 2) and m.shape == (4000,) and w.shape == (4000,)
    assert ((m >= WINDOW[0]) & (m < WINDOW[1])).all()
    np.testing.assert_allclose(x[:, 0], m, atol=0.05)  # the flow was sampled at these m
    np.testing.assert_allclose(w, 0.25)
    assert w.sum() == pytest.approx(1000)
    again = make_template(LinearFlow(), m_sr, TemplateOptions(), seed=1, window=WINDOW)
    np.testing.assert_array_equal(again[0], x)


def test_hybrid_template_gets_each_component_its_expected_yield():
    m_sr = falling_m(1000, seed=8)
    rng = np.random.default_rng(9)
    higgs = TemplateComponent(
        x=rng.normal(50, 1, (50, 2)), m=rng.uniform(3.48, 3.52, 50), expected_events=100.0,
        name="higgs",
    )  # fmt: skip
    other = TemplateComponent(
        x=rng.normal(-5, 1, (200, 2)), m=rng.uniform(*WINDOW, 200), expected_events=20.0,
        name="other",
    )  # fmt: skip
    x, m, w = make_template(
        LinearFlow(), m_sr, TemplateOptions(oversampling=2.0), seed=0, extra=[higgs, other],
        window=WINDOW,
    )  # fmt: skip
    assert len(x) == 2000 + 50 + 200
    flow_part, higgs_part, other_part = w[:2000], w[2000:2050], w[2050:]
    assert flow_part.sum() == pytest.approx(1000 - 120)
    assert higgs_part.sum() == pytest.approx(100.0)
    assert other_part.sum() == pytest.approx(20.0)
    np.testing.assert_allclose(higgs_part, 2.0)
    np.testing.assert_array_equal(x[2000:2050], higgs.x)
    np.testing.assert_array_equal(m[2050:], other.m)
    assert w.sum() == pytest.approx(1000)
    # the expected fraction of Higgs-like events in the template is 100 / 1000
    assert w[x[:, 0] > 20].sum() / w.sum() == pytest.approx(0.1, abs=1e-9)


@pytest.mark.parametrize(
    ("component", "error", "message"),
    [
        (
            TemplateComponent(np.ones((5, 2)), np.full(5, 3.5), 1000.0, "big"),
            ValueError,
            "expect 1000 events but the signal region holds only 100",
        ),
        (
            TemplateComponent(np.ones((5, 2)), np.full(5, 3.7), 1.0, "off"),
            ValueError,
            r"off: 5 of 5 event\(s\) lie outside the signal region",
        ),
        (
            TemplateComponent(np.ones((5, 3)), np.full(5, 3.5), 1.0, "wide"),
            ValueError,
            r"wide.x must have 2 feature\(s\)",
        ),
        (
            TemplateComponent(np.ones((5, 2)), np.full(4, 3.5), 1.0, "short"),
            ValueError,
            "short: x has 5 events but m has 4",
        ),
        (
            TemplateComponent(np.ones((5, 2)), np.full(5, 3.5), -1.0, "neg"),
            ValueError,
            "neg.expected_events must be a finite number >= 0",
        ),
        ({"x": np.ones((5, 2))}, TypeError, "extra must be a TemplateComponent"),
    ],
)
def test_hybrid_bad_components_are_refused(component, error, message):
    with pytest.raises(error, match=message):
        make_template(LinearFlow(), falling_m(100, seed=1), seed=0, extra=component,
                      window=WINDOW)  # fmt: skip


def test_template_bad_input():
    with pytest.raises(ValueError, match="m_sr is empty"):
        make_template(LinearFlow(), np.array([]), window=WINDOW)
    with pytest.raises(ValueError, match="outside the window"):
        make_template(LinearFlow(), np.array([3.5, 3.9]), window=WINDOW)
    with pytest.raises(TypeError, match="TemplateOptions"):
        make_template(LinearFlow(), np.array([3.5]), {"oversampling": 4.0})


def test_template_from_a_fitted_flow(toy_flow):
    flow = toy_flow[0]
    m_sr = np.random.default_rng(3).uniform(0.4, 0.6, 500)
    x, m, w = make_template(flow, m_sr, TemplateOptions(), seed=2, window=(0.4, 0.6))
    assert x.shape == (2000, 2) and np.isfinite(x).all()
    assert ((m >= 0.4) & (m < 0.6)).all()
    assert w.sum() == pytest.approx(500)
