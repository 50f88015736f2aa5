"""CWoLa classifier: out-of-fold scoring by construction, weights, early stopping, sklearn glue.

Several tests are the defects users of sk_cathode's classifier wrapper hit: its validation
split leaked into training, sample weights were ignored, the training and validation sets
were rescored after every added tree (quadratic cost), the restored model reported the
wrong best iteration, and scikit-learn >= 1.6's fitted check failed on it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from contrastx.cathode import classifier as clf_mod
from contrastx.cathode.classifier import ClassifierOptions, CWoLaClassifier
from contrastx.options import OptionsError
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

SMALL = {"n_models": 2, "max_iter": 30}
ES = {"early_stopping": True, "min_leaf_fraction": 0.0}  # the early-stopping path


def _toy(seed: int, n_data: int = 300, n_template: int = 600, d: int = 3, n_signal: int = 60):
    rng = np.random.default_rng(seed)
    xd = rng.normal(size=(n_data, d))
    xd[:n_signal, 0] = rng.normal(2.5, 0.3, n_signal)
    xt = rng.normal(size=(n_template, d))
    return xd, xt


class Recorder:
    """Records what every fold model was trained on and what it scored.

    Rows are identified by an ID in the last feature column of the *raw* features, so the
    recording sits where raw rows meet a model: the per-model fit (``_fit_one``: training
    folds, including the rows it holds out for early stopping) and the model's
    prediction (``FoldModel.predict_proba``). The early-stopping split and the arrays
    handed to scikit-learn are recorded too.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: dict[int, set[int]] = {}
        self.fits: list[dict] = []
        self.scored: list[tuple[int, np.ndarray]] = []
        rec = self
        orig_fit_one = clf_mod._fit_one
        orig_split = clf_mod._validation_split
        orig_hgb_fit = HistGradientBoostingClassifier.fit
        orig_proba = clf_mod.FoldModel.predict_proba

        def fit_one(x, y, w, opts, rng):
            part = {"x": x, "ids": x[:, -1].astype(int), "y": y, "w": w}
            rec.fits.append(part)
            fm = orig_fit_one(x, y, w, opts, rng)
            part["fm"] = fm
            rec.seen[id(fm)] = set(part["ids"].tolist())
            return fm

        def split(y, fraction, rng):
            mask = orig_split(y, fraction, rng)
            rec.fits[-1]["val_mask"] = mask
            return mask

        def hgb_fit(est, X, y, sample_weight=None, **kw):
            rec.fits[-1]["sklearn"] = {"X": X, "y": y, "w": sample_weight, **kw}
            return orig_hgb_fit(est, X, y, sample_weight, **kw)

        def proba(fm, x):
            rec.scored.append((id(fm), x[:, -1].astype(int)))
            return orig_proba(fm, x)

        monkeypatch.setattr(clf_mod, "_fit_one", fit_one)
        monkeypatch.setattr(clf_mod, "_validation_split", split)
        monkeypatch.setattr(HistGradientBoostingClassifier, "fit", hgb_fit)
        monkeypatch.setattr(clf_mod.FoldModel, "predict_proba", proba)


def _with_ids(xd, xt, seed=0):
    """Append a shuffled (uninformative) event ID column; returns the ID of every row of
    [data, template] as well."""
    nd = xd.shape[0]
    ids = np.random.default_rng(seed).permutation(nd + xt.shape[0])
    return np.c_[xd, ids[:nd]], np.c_[xt, ids[nd:]], ids


def test_every_data_event_is_scored_only_by_models_that_never_saw_it(monkeypatch):
    xd, xt, ids = _with_ids(*_toy(0))
    rec = Recorder(monkeypatch)
    opts = ClassifierOptions(n_models=3, ensemble_size=1, n_folds=4, max_iter=15)
    clf = CWoLaClassifier(opts).fit(xd, xt, seed=5)
    nd = xd.shape[0]
    assert len(rec.fits) == 3 * 4
    scored_by = defaultdict(list)
    for est_id, scored_ids in rec.scored:
        assert not (set(scored_ids.tolist()) & rec.seen[est_id]), "scored by its own model"
        for i in scored_ids.tolist():
            scored_by[i].append(est_id)
    # each data and template event got exactly one out-of-fold score per model
    for i in range(xd.shape[0] + xt.shape[0]):
        assert len(scored_by[i]) == 3, i
    # the recorded fold assignment is what happened: models_[m][f] saw exactly the
    # events whose fold in model m is not f, and nothing of fold f
    for m in range(3):
        folds = np.r_[clf.data_folds_[m], clf.template_folds_[m]]
        assert np.bincount(clf.data_folds_[m]).tolist() == [75, 75, 75, 75]
        for f in range(4):
            seen = rec.seen[id(clf.models_[m][f])]
            assert seen == set(ids[folds != f].tolist())
    # the stored out-of-fold scores are the fold models' predictions
    for m in range(3):
        for i in (0, 17, nd - 1):
            fm = clf.models_[m][clf.data_folds_[m, i]]
            assert clf.model_scores_[m, i] == pytest.approx(fm.predict_proba(xd[i : i + 1])[0])


def test_validation_split_comes_from_training_folds_and_never_trains(monkeypatch):
    xd, xt, ids = _with_ids(*_toy(1))
    rec = Recorder(monkeypatch)
    clf = CWoLaClassifier(ClassifierOptions(n_models=1, ensemble_size=1, max_iter=10, **ES))
    clf.fit(xd, xt, seed=2)
    folds = np.r_[clf.data_folds_[0], clf.template_folds_[0]]
    for f, part in enumerate(rec.fits):
        assert set(part["ids"].tolist()) == set(ids[folds != f].tolist())  # fold f untouched
        val = part["val_mask"]
        given = part["sklearn"]
        # the trees are fitted on the rest, the early-stopping loss is on the held-out rows
        assert given["X"].shape[0] == (~val).sum() and given["X_val"].shape[0] == val.sum()
        assert np.array_equal(given["y"], part["y"][~val])
        assert np.array_equal(given["y_val"], part["y"][val])
        binning = part["fm"].binning
        assert np.array_equal(given["X"], binning.transform(part["x"][~val]))
        assert np.array_equal(given["X_val"], binning.transform(part["x"][val]))
        # both classes in the validation set, in the configured proportion
        assert val.sum() == pytest.approx(0.2 * val.size, abs=2)
        assert set(np.unique(part["y"][val])) == {0, 1}


def test_sample_weights_change_training_and_the_validation_loss(monkeypatch):
    # Data and template from the same distribution; template events at x0 < 0 get
    # weight 0.05, so the weighted template lives at x0 > 0 and data at x0 < 0 look
    # anomalous. A classifier that ignored the weights would score both halves alike.
    rng = np.random.default_rng(3)
    xd, xt = rng.normal(size=(600, 2)), rng.normal(size=(1200, 2))
    wt = np.where(xt[:, 0] < 0, 0.05, 1.0)
    xd_id, xt_id, ids = _with_ids(xd, xt)
    row_of_id = np.argsort(ids)
    rec = Recorder(monkeypatch)
    opts = ClassifierOptions(n_models=2, max_iter=40, **ES)
    CWoLaClassifier(opts).fit(xd_id, xt_id, w_template=wt, seed=0)
    n_data = xd.shape[0]
    for part in rec.fits:
        rows, val, given = row_of_id[part["ids"]], part["val_mask"], part["sklearn"]
        is_t = rows >= n_data
        assert np.array_equal(is_t, part["y"] == 0)
        assert np.array_equal(part["w"][is_t], wt[rows[is_t] - n_data])
        for w_given, mask in ((given["w"], ~val), (given["sample_weight_val"], val)):
            # the template weights times one class factor, in training and validation
            ratio = w_given[is_t[mask]] / part["w"][mask & is_t]
            assert np.allclose(ratio, ratio[0])
            # balanced: both classes carry the same summed weight
            y = part["y"][mask]
            assert w_given[y == 1].sum() == pytest.approx(w_given[y == 0].sum())
    s = CWoLaClassifier(opts).fit_predict(xd, xt, w_template=wt, seed=0)
    assert s[xd[:, 0] < 0].mean() > s[xd[:, 0] > 0].mean() + 0.1
    s_unweighted = CWoLaClassifier(opts).fit_predict(xd, xt, seed=0)
    assert abs(s_unweighted[xd[:, 0] < 0].mean() - s_unweighted[xd[:, 0] > 0].mean()) < 0.05


def _staged_losses(est, x, y, w):
    out = []
    p0 = np.average(y, weights=w)
    raw0 = np.full(y.size, np.log(p0 / (1 - p0)))
    for raw in [raw0, *est.staged_decision_function(x)]:
        p = 1 / (1 + np.exp(-raw))
        out.append(-np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=w))
    return np.array(out)


def test_predictions_use_the_best_iteration_not_the_last(monkeypatch):
    # a fast learner on a small noisy sample overfits: the validation loss has a minimum
    # well before the n_iter_no_change trees grown after it
    xd, xt, _ = _with_ids(*_toy(4, n_data=200, n_template=200, n_signal=40))
    rec = Recorder(monkeypatch)
    opts = ClassifierOptions(
        n_models=1, ensemble_size=1, max_iter=200, learning_rate=0.5, min_samples_leaf=5,
        n_iter_no_change=15, **ES,
    )  # fmt: skip
    clf = CWoLaClassifier(opts).fit(xd, xt, seed=1)
    assert len(rec.fits) == 5
    stopped_early = 0
    for f, part in enumerate(rec.fits):
        fm, given = clf.models_[0][f], part["sklearn"]
        assert fm is part["fm"]
        losses = _staged_losses(
            fm.estimator, given["X_val"], given["y_val"], given["sample_weight_val"]
        )
        assert np.allclose(fm.validation_loss, losses, rtol=1e-6)
        expected_best = max(int(np.argmin(losses)), 1)
        assert fm.best_iteration == expected_best == clf.best_iterations_[0, f]
        assert clf.n_iter_[0, f] == fm.estimator.n_iter_
        stopped_early += fm.estimator.n_iter_ > fm.best_iteration
        # the prediction is the staged prediction at the best iteration
        x = xd[:20]
        staged = list(fm.estimator.staged_decision_function(fm.binning.transform(x)))
        assert np.allclose(fm.decision_function(x), staged[expected_best - 1])
    assert stopped_early == 5  # trees after the best exist, and are not used


def test_without_explicit_validation_set_support_same_best_iteration(monkeypatch):
    # scikit-learn < 1.7 has no X_val in fit: the fallback grows every tree and reads
    # the validation loss stage by stage; the loss curve matches the X_val path.
    xd, xt = _toy(5, n_data=200, n_template=200, n_signal=40)
    opts = ClassifierOptions(
        n_models=1, ensemble_size=1, max_iter=40, learning_rate=0.5, min_samples_leaf=5, **ES
    )
    new = CWoLaClassifier(opts).fit(xd, xt, seed=3)
    monkeypatch.setattr(clf_mod, "_FIT_TAKES_VALIDATION_SET", False)
    old = CWoLaClassifier(opts).fit(xd, xt, seed=3)
    for f in range(5):
        a, b = new.models_[0][f], old.models_[0][f]
        assert b.n_iter == 40
        n = a.validation_loss.size
        assert np.allclose(a.validation_loss, b.validation_loss[:n], rtol=1e-9)
        assert b.best_iteration == max(int(np.argmin(b.validation_loss)), 1)
    assert np.all(np.isfinite(old.scores_))


def test_cost_is_linear_in_the_number_of_trees(monkeypatch):
    # Count single-tree evaluations during a fit: growing T trees with early stopping
    # costs one validation-set evaluation per tree and one held-out evaluation per used
    # tree. Rescoring after every tree (sk_cathode) would cost ~T^2 / 2.
    calls = {"n": 0}
    for name in ("predict", "predict_binned"):
        orig = getattr(TreePredictor, name)

        def counted(self, *a, _orig=orig, **k):
            calls["n"] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(TreePredictor, name, counted)
    xd, xt = _toy(6, n_data=400, n_template=400)
    opts = ClassifierOptions(n_models=1, ensemble_size=1, max_iter=60, n_iter_no_change=60, **ES)
    clf = CWoLaClassifier(opts).fit(xd, xt, seed=0)
    grown, used = int(clf.n_iter_.sum()), int(clf.best_iterations_.sum())
    assert grown >= 5 * 50  # enough trees for quadratic rescoring to show
    assert calls["n"] <= grown + used + 5
    quadratic = sum(t * (t + 1) // 2 for t in clf.n_iter_.ravel())
    assert calls["n"] < quadratic / 10


def test_leaves_scale_with_the_training_set():
    xd, xt = _toy(12, n_data=1000, n_template=2000)
    clf = CWoLaClassifier(ClassifierOptions(n_models=1, ensemble_size=1, max_iter=5))
    clf.fit(xd, xt, seed=0)
    n_train = 3000 * 4 // 5
    for fm in clf.models_[0]:
        assert fm.estimator.min_samples_leaf == int(np.ceil(0.02 * n_train)) == 48
        assert fm.n_iter == fm.best_iteration == 5  # no early stopping: every tree is used
    opts = ClassifierOptions(n_models=1, ensemble_size=1, max_iter=5, min_leaf_fraction=0.0)
    clf = CWoLaClassifier(opts).fit(xd, xt, seed=0)
    assert {fm.estimator.min_samples_leaf for fm in clf.models_[0]} == {20}


def test_sklearn_fitted_check_and_clone():
    clf = CWoLaClassifier(ClassifierOptions(**SMALL))
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError, match="not fitted"):
        clf.predict(np.zeros((3, 3)))
    xd, xt = _toy(7)
    clf.fit(xd, xt, seed=0)
    check_is_fitted(clf)  # scikit-learn >= 1.6 needs the estimator tags for this
    assert clf.n_features_in_ == 3
    twin = clone(clf)
    assert twin.options == clf.options
    with pytest.raises(NotFittedError):
        check_is_fitted(twin)


def test_ensembles_scores_and_reproducibility():
    xd, xt = _toy(8)
    opts = ClassifierOptions(n_models=4, ensemble_size=2, max_iter=20)
    clf = CWoLaClassifier(opts).fit(xd, xt, seed=11)
    assert clf.model_scores_.shape == (4, 300)
    assert clf.ensemble_scores_.shape == (2, 300)
    assert np.allclose(clf.ensemble_scores_[1], clf.model_scores_[2:4].mean(axis=0))
    assert np.allclose(clf.scores_, clf.model_scores_.mean(axis=0))
    assert np.allclose(clf.template_scores_, clf.model_template_scores_.mean(axis=0))
    # different models use different fold assignments
    assert not np.array_equal(clf.data_folds_[0], clf.data_folds_[1])
    x_new = np.random.default_rng(0).normal(size=(50, 3))
    assert np.allclose(clf.predict(x_new), clf.predict_ensembles(x_new).mean(axis=0))
    # the signal (first 60 data events) scores higher
    assert clf.scores_[:60].mean() > clf.scores_[60:].mean() + 0.1
    again = CWoLaClassifier(opts).fit_predict(xd, xt, seed=11)
    assert np.array_equal(again, clf.scores_)
    other = CWoLaClassifier(opts).fit_predict(xd, xt, seed=12)
    assert not np.array_equal(other, clf.scores_)


def test_progress_callback():
    xd, xt = _toy(9)
    seen = []
    CWoLaClassifier(ClassifierOptions(**SMALL)).fit(
        xd, xt, seed=0, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(i, 10) for i in range(1, 11)]


def test_bad_input_gets_clear_errors():
    xd, xt = _toy(10)
    clf = CWoLaClassifier(ClassifierOptions(**SMALL))
    bad = xd.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"x_data contains NaN or inf \(first at row 7"):
        clf.fit(bad, xt)
    with pytest.raises(ValueError, match="x_template has 2 features; expected 3"):
        clf.fit(xd, xt[:, :2])
    with pytest.raises(ValueError, match=r"w_template must have shape \(600,\)"):
        clf.fit(xd, xt, w_template=np.ones(5))
    with pytest.raises(ValueError, match="w_template must be >= 0"):
        clf.fit(xd, xt, w_template=-np.ones(600))
    with pytest.raises(ValueError, match=r"x_template has 6 events; .* at least"):
        clf.fit(xd, xt[:6])
    with pytest.raises(TypeError, match="x_data must be numeric"):
        clf.fit(np.array([["a", "b"]] * 20), xt)
    with pytest.raises(TypeError, match="options must be a ClassifierOptions"):
        CWoLaClassifier({"n_folds": 3})
    with pytest.raises(OptionsError, match=r"n_models .* multiple of .*ensemble_size"):
        ClassifierOptions(n_models=3, ensemble_size=2)
    with pytest.raises(OptionsError, match=r"cathode\.classifier\.n_folds must be >= 2"):
        ClassifierOptions(n_folds=1)
    clf.fit(xd, xt)
    with pytest.raises(ValueError, match="x has 2 features; expected 3"):
        clf.predict(xd[:, :2])
