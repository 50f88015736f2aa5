"""CATHODE end to end on a toy with a localized signal; baselines; bad input.

The toy: m ~ U(0, 3); background x | m ~ N(a + b m, Sigma) in four dimensions; the
signal sits at m ~ 1.5 (inside the signal region [1.2, 1.8)) and is localized in two of
the four features. A Gaussian density with a mean linear in m, fitted in the tests,
stands in for the flow where the flow itself is not under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from contrastx.cathode import (
    Cathode,
    CathodeOptions,
    ConditionalFlow,
    FlowOptions,
    Template,
    TemplateComponent,
    evaluate_classifier,
    idealized_template,
    max_sic,
    supervised_classifier,
)
from contrastx.options import OptionsError, from_mapping, replace_flat

SR = (1.2, 1.8)
SB = (0.0, 1.2, 1.8, 3.0)
A = np.array([0.0, 1.0, -0.5, 0.3])
B = np.array([0.8, -0.4, 0.3, 0.0])
COV = np.array(
    [[1.0, 0.3, 0.0, 0.0], [0.3, 1.0, 0.2, 0.0], [0.0, 0.2, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
SIGNAL_MEAN = np.array([2.2, -0.6, 0.0, 0.0])
N_SIGNAL = 75


def background(n: int, rng: np.random.Generator, m: np.ndarray | None = None):
    if m is None:
        m = rng.uniform(0.0, 3.0, n)
    x = A + m[:, None] * B + rng.multivariate_normal(np.zeros(4), COV, m.size)
    return x, m


def signal(n: int, rng: np.random.Generator):
    m = rng.normal(1.5, 0.05, n)
    x = rng.normal(0.0, 1.0, (n, 4))
    x[:, :2] = SIGNAL_MEAN[:2] + rng.normal(0.0, 0.2, (n, 2))
    x[:, 2:] = A[2:] + m[:, None] * B[2:] + x[:, 2:]
    return x, m


class GaussianDensity:
    """Test stand-in for the flow: x | m ~ N(c + d m, S), fitted by least squares."""

    def fit(self, x, m):
        design = np.c_[np.ones_like(m), m]
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        self.coef = coef
        self.chol = np.linalg.cholesky(np.cov((x - design @ coef).T))
        self.n_features_ = x.shape[1]
        return self

    def sample(self, m, *, seed=0):
        rng = np.random.default_rng(seed)
        mean = np.c_[np.ones_like(m), m] @ self.coef
        return mean + rng.normal(size=(m.size, self.n_features_)) @ self.chol.T


def options(**changes) -> CathodeOptions:
    base = CathodeOptions(signal_region=SR, sidebands=SB)
    return replace_flat(base, **{"n_models": 2, "max_iter": 60, **changes})


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(2024)
    xb, mb = background(12_000, rng)
    xs, ms = signal(N_SIGNAL, rng)
    x, m = np.r_[xb, xs], np.r_[mb, ms]
    is_signal = np.r_[np.zeros(mb.size, bool), np.ones(ms.size, bool)]
    sr = (m >= SR[0]) & (m < SR[1])
    n_sr_bkg = int((sr & ~is_signal).sum())
    # independent samples: the idealized template, the evaluation set, supervised training
    x_ideal, _ = background(4 * n_sr_bkg, rng, m=rng.uniform(*SR, 4 * n_sr_bkg))
    xe_b, _ = background(20_000, rng, m=rng.uniform(*SR, 20_000))
    xe_s, _ = signal(2000, rng)
    x_eval, y_eval = np.r_[xe_b, xe_s], np.r_[np.zeros(20_000), np.ones(2000)]
    xt_b, _ = background(6000, rng, m=rng.uniform(*SR, 6000))
    xt_s, _ = signal(2000, rng)
    return {
        "x": x, "m": m, "is_signal": is_signal, "x_ideal": x_ideal,
        "x_eval": x_eval, "y_eval": y_eval, "x_sup_sig": xt_s, "x_sup_bkg": xt_b,
    }  # fmt: skip


def test_baselines_order_as_expected(toy):
    """random < CATHODE (stand-in density) and idealized; supervised >= idealized."""
    rng = np.random.default_rng(0)
    opts = options()
    x_eval, y_eval = toy["x_eval"], toy["y_eval"]
    random_sic = max_sic(y_eval, rng.random(y_eval.size), min_background_events=100).value

    ideal = Cathode(opts).fit(toy["x"], toy["m"], template=idealized_template(toy["x_ideal"]))
    ideal_sic = ideal.score(x_eval, y_eval)["max_sic"]["value"]
    assert ideal.fit_info_["template_source"] == "idealized"
    assert ideal.fit_info_["n_template"] == toy["x_ideal"].shape[0]

    sb = (toy["m"] < SR[0]) | (toy["m"] >= SR[1])
    density = GaussianDensity().fit(toy["x"][sb], toy["m"][sb])
    cathode = Cathode(opts).fit(toy["x"], toy["m"], flow=density)
    res = cathode.score(x_eval, y_eval)
    cathode_sic = res["max_sic"]["value"]
    n_sr = int(cathode.signal_mask_.sum())
    assert cathode.fit_info_["n_template"] == round(4.0 * n_sr)
    assert cathode.fit_info_["flow_trained"] is False

    sup = supervised_classifier(toy["x_sup_sig"], toy["x_sup_bkg"], options=opts.classifier)
    sup_sic = evaluate_classifier(sup, x_eval, y_eval, min_background_events=100)["max_sic"]
    sup_sic = sup_sic["value"]

    assert random_sic < 1.5
    assert ideal_sic > 2 * random_sic
    assert cathode_sic > 2 * random_sic
    assert sup_sic >= ideal_sic
    # ensemble spread is reported
    ens = res["ensembles"]
    assert ens["n"] == 1 and len(ens["max_sic"]) == 1
    assert res["max_sic"]["background_efficiency"] >= 100 / 20_000


def test_out_of_fold_scores_rank_the_injected_signal(toy):
    sb = (toy["m"] < SR[0]) | (toy["m"] >= SR[1])
    density = GaussianDensity().fit(toy["x"][sb], toy["m"][sb])
    cathode = Cathode(options(n_models=4)).fit(toy["x"], toy["m"], flow=density)
    sr = cathode.signal_mask_
    assert cathode.anomaly_scores_.shape == (int(sr.sum()),)
    assert cathode.ensemble_scores_.shape == (2, int(sr.sum()))
    y_sr = toy["is_signal"][sr].astype(int)
    metrics = cathode.score_signal_region(y_sr)
    assert metrics["n_signal"] == N_SIGNAL
    assert metrics["auc"] > 0.6
    assert len(metrics["ensembles"]["max_sic"]) == 2
    assert metrics["ensembles"]["max_sic_std"] >= 0
    assert cathode.sideband_scores_.shape == (int(cathode.sideband_mask_.sum()),)


def test_full_pipeline_with_the_flow(toy, tmp_path):
    """flow=None trains a (small) ConditionalFlow on the sidebands and samples it."""
    saved = []
    opts = options(
        transforms=2, hidden_features=(32, 32), epochs=4, batch_size=256, lr=3e-3,
        n_best_epochs=2, patience=None, logit=False,
    )  # fmt: skip
    cathode = Cathode(opts).fit(
        toy["x"], toy["m"], progress=False, on_flow_fitted=lambda f: saved.append(f)
    )
    assert isinstance(cathode.flow_, ConditionalFlow) and saved == [cathode.flow_]
    assert cathode.fit_info_["flow_trained"] is True
    assert cathode.flow_.fit_info_["n_train"] + cathode.flow_.fit_info_["n_validation"] == int(
        cathode.sideband_mask_.sum()
    )
    lo, hi = SR
    assert ((cathode.m_template_ >= lo) & (cathode.m_template_ < hi)).all()
    res = cathode.score(toy["x_eval"], toy["y_eval"])
    assert res["max_sic"]["value"] > 1.5
    # a saved flow is reused: the same template, no training
    path = cathode.flow_.save(tmp_path / "flow.pt")
    again = Cathode(opts).fit(toy["x"], toy["m"], flow=ConditionalFlow.load(path))
    assert again.fit_info_["flow_trained"] is False
    assert np.allclose(again.x_template_, cathode.x_template_)
    assert np.allclose(again.anomaly_scores_, cathode.anomaly_scores_)


def test_hybrid_template_weights_reach_the_classifier(toy):
    rng = np.random.default_rng(5)
    sb = (toy["m"] < SR[0]) | (toy["m"] >= SR[1])
    density = GaussianDensity().fit(toy["x"][sb], toy["m"][sb])
    x_h, m_h = background(400, rng, m=rng.uniform(*SR, 400))
    extra = TemplateComponent(x_h, m_h, expected_events=100.0, name="higgs")
    cathode = Cathode(options()).fit(toy["x"], toy["m"], flow=density, extra_background=extra)
    n_sr = int(cathode.signal_mask_.sum())
    w = cathode.w_template_
    assert w.sum() == pytest.approx(n_sr)
    assert w[-400:].sum() == pytest.approx(100.0)
    assert cathode.x_template_.shape[0] == round(4 * n_sr) + 400


def test_no_signal_no_sculpting(toy):
    """Without signal and with a perfect template: AUC ~ 0.5 and no bump in the SR m.

    (The toy's features depend on m, so a cut on any score that uses them reshapes the
    sidebands, which span a wide m range: the check rightly reports that there.)
    """
    bkg = ~toy["is_signal"]
    x, m = toy["x"][bkg], toy["m"][bkg]
    cathode = Cathode(options()).fit(x, m, template=idealized_template(toy["x_ideal"]))
    rng = np.random.default_rng(9)
    x_true, _ = background(3000, rng, m=rng.uniform(*SR, 3000))
    test = cathode.sculpting_test(x_true)
    assert abs(test.auc - 0.5) < 3 * test.auc_error
    checks = cathode.mass_sculpting()
    assert [c["efficiency"] for c in checks] == [0.2, 0.05]
    for check in checks:
        assert not check["signal_region"].sculpted(alpha=0.001), check["efficiency"]
        assert check["signal_region"].efficiency == pytest.approx(check["efficiency"], abs=0.01)


def test_options_from_toml_table():
    opts = from_mapping(
        CathodeOptions,
        {"signal_region": [1.2, 1.8], "sidebands": [0.0, 1.2, 1.8, 3.0], "n_models": 4,
         "flow": {"epochs": 3}, "template": {"oversampling": 2.0}},
    )  # fmt: skip
    assert opts.classifier.n_models == 4 and opts.flow.epochs == 3
    assert opts.template.oversampling == 2.0
    assert opts.regions().sidebands == ((0.0, 1.2), (1.8, 3.0))
    with pytest.raises(OptionsError, match=r"unknown key cathode\.n_model;"):
        from_mapping(CathodeOptions, {"n_model": 4})
    with pytest.raises(OptionsError, match="sidebands must be pairs"):
        CathodeOptions(signal_region=SR, sidebands=(0.0, 1.0, 2.0))
    with pytest.raises(OptionsError, match="overlaps the signal_region"):
        CathodeOptions(signal_region=SR, sidebands=(0.0, 1.5))
    with pytest.raises(OptionsError, match=r"cathode\.signal_region is not set"):
        Cathode(CathodeOptions())


def test_bad_input_gets_clear_errors(toy):
    x, m = toy["x"], toy["m"]
    cathode = Cathode(options())
    ideal = idealized_template(toy["x_ideal"])
    with pytest.raises(ValueError, match="lie outside every window"):
        cathode.fit(x, m + 10.0, template=ideal)
    with pytest.raises(ValueError, match=r"signal_region \[1.2, 1.8\) holds 0 event"):
        keep = (m < SR[0]) | (m >= SR[1])
        cathode.fit(x[keep], m[keep], template=ideal)
    with pytest.raises(ValueError, match=r"sidebands\[1\] \[1.8, 3\) holds 0 event"):
        keep = m < SR[1]
        cathode.fit(x[keep], m[keep], template=ideal)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 3"):
        cathode.fit(bad, m, template=ideal)
    bad_m = m.copy()
    bad_m[5] = np.inf
    with pytest.raises(ValueError, match="m holds 1 non-finite value"):
        cathode.fit(x, bad_m, template=ideal)
    with pytest.raises(ValueError, match="x has 12075 events but m has 12074"):
        cathode.fit(x, m[:-1], template=ideal)
    with pytest.raises(ValueError, match=r"template\.x has 3 features; expected 4"):
        cathode.fit(x, m, template=Template(toy["x_ideal"][:, :3]))
    with pytest.raises(ValueError, match="either flow or template"):
        cathode.fit(x, m, template=ideal, flow=GaussianDensity())
    density = GaussianDensity().fit(x[:, :3], m)
    with pytest.raises(ValueError, match="the flow models 3 features but x has 4"):
        cathode.fit(x, m, flow=density)
    with pytest.raises(RuntimeError, match="not fitted"):
        cathode.predict(x)
    with pytest.raises(TypeError, match="options must be a CathodeOptions"):
        Cathode(FlowOptions())
