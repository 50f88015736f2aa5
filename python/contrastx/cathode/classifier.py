"""CWoLa classifier of CATHODE: signal-region data against a background template.

The classifier learns to tell SR data (label 1) from a background template (label 0);
its output ranks events by how anomalous they are (Metodiev, Nachman, Thaler,
arXiv 1708.02949; Hallin et al., arXiv 2109.00546).

Choices
-------
* **Trees, scikit-learn's** :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.
  Tree ensembles stay robust where neural CWoLa classifiers collapse on noisy features
  (Finke et al., "Back to the roots", arXiv 2309.13111). We decided against
  ``xgboost``: its default Linux wheel pulls a large CUDA runtime, while
  HistGradientBoosting is already a dependency, is as fast on the few features CATHODE
  uses, and takes an explicit validation set for early stopping.
* **k-fold, every data event scored out of fold.** Data and template are each split
  into ``n_folds`` folds; the models of fold *k* train on the other folds only (their
  early-stopping validation set is carved from those training folds, never from fold
  *k*), and score fold *k*. The fold of every event is kept (:attr:`data_folds_`).
* **Ensembles.** ``n_models`` such k-fold classifiers (own seed, own fold assignment)
  are grouped into ensembles of ``ensemble_size`` (the second paper: 20 BDTs in 10
  ensembles of 2); the per-ensemble scores are kept so the spread of any metric across
  ensembles can be reported as the training systematic.
* **Weights.** Sample weights (e.g. a hybrid template's) are used in training *and* in
  the early-stopping loss; ``class_weight="balanced"`` rescales each class to the same
  summed weight (sums of weights, not event counts).
* **Binning.** Features are binned once per model with unweighted quantiles before
  the trees (see :class:`Binning`), which spares scikit-learn's weighted binning.
* **Regularisation.** Leaves hold at least ``min_leaf_fraction`` of the training events
  and a fixed number of trees is grown: with a signal of a percent of the data, small
  leaves and a validation-loss stopping rule both stop at the level of the fluctuations
  between data and template (the loss is dominated by the background).
* **Early stopping without waste** (optional). The validation loss is updated one tree
  at a time by scikit-learn (cost linear in the number of trees); the model then
  predicts with the trees up to the *best* iteration (:attr:`best_iterations_`), not
  with the ``n_iter_no_change`` worse trees grown after it.

Example
-------
>>> import numpy as np
>>> from contrastx.cathode import ClassifierOptions, CWoLaClassifier
>>> rng = np.random.default_rng(0)
>>> x_data, x_template = rng.normal(size=(400, 3)), rng.normal(size=(800, 3))
>>> clf = CWoLaClassifier(ClassifierOptions(n_models=2, max_iter=20))
>>> clf.fit_predict(x_data, x_template, seed=1).shape
(400,)
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from contrastx.options import OptionsError, option, options

logger = logging.getLogger(__name__)

__all__ = [
    "CWoLaClassifier",
    "ClassifierOptions",
    "as_features",
    "as_weights",
]

_FIT_TAKES_VALIDATION_SET = (
    "X_val" in inspect.signature(HistGradientBoostingClassifier.fit).parameters
)
"""scikit-learn >= 1.7 accepts an explicit validation set in ``fit``."""

DATA_LABEL = 1
TEMPLATE_LABEL = 0


@options(section="cathode.classifier")
class ClassifierOptions:
    """Settings of the CWoLa classifier (HistGradientBoosting, k-fold, ensembles)."""

    n_folds: int = option(
        5,
        "Folds: every data event is scored by models trained on the other folds only.",
        ge=2,
    )
    n_models: int = option(
        10,
        "Independent k-fold classifiers (own seed and fold assignment); every data event "
        "gets one out-of-fold score from each, and the reported score is their mean. "
        "The second paper trains 20.",
        ge=1,
    )
    ensemble_size: int = option(
        2,
        "Models averaged into one ensemble; metrics are also computed per ensemble and "
        "their spread is reported as the training systematic. n_models must be a "
        "multiple of it.",
        ge=1,
    )
    max_iter: int = option(100, "Boosting iterations (trees) per model.", ge=1)
    max_leaf_nodes: int = option(31, "Most leaves per tree.", ge=2)
    learning_rate: float = option(0.1, "Boosting learning rate (shrinkage).", gt=0.0)
    min_samples_leaf: int = option(
        20, "Fewest training events in a leaf (see also min_leaf_fraction).", ge=1
    )
    min_leaf_fraction: float = option(
        0.02,
        "Fewest training events in a leaf as a fraction of the events a model is fitted "
        "on; the larger of this and min_samples_leaf applies. Large leaves are what lets "
        "a classifier pick out a signal of a percent or less of the data: small leaves "
        "fit the statistical fluctuations between data and template instead.",
        ge=0.0,
        lt=0.5,
    )
    l2_regularization: float = option(0.0, "L2 penalty on leaf values.", ge=0.0)
    max_bins: int = option(255, "Histogram bins per feature.", ge=2, le=255)
    early_stopping: bool = option(
        False,
        "Stop adding trees when the validation loss has not improved for n_iter_no_change "
        "iterations and predict with the trees up to the best iteration; the validation "
        "set is taken from the training folds only. Off by default: with a signal of a "
        "percent of the data the validation loss is dominated by the background and "
        "reaches its minimum after a few trees, long before the signal is resolved.",
    )
    early_stopping_fraction: float = option(
        0.2,
        "Share of each training fold set (per class) held out as the early-stopping "
        "validation set.",
        gt=0.0,
        lt=1.0,
    )
    n_iter_no_change: int = option(
        10, "Iterations without validation-loss improvement before stopping.", ge=1
    )
    n_threads: int = option(
        1,
        "OpenMP threads of each tree fit and prediction (0: scikit-learn's default, all "
        "cores). One thread is the default because the trees are small and many: "
        "HistGradientBoosting's threads spin-wait, and on a machine with other busy "
        "processes two threads ran one fit many times slower than one.",
        ge=0,
    )
    class_weight: str = option(
        "balanced",
        "'balanced' rescales data and template to the same summed weight (sample weights "
        "included); 'none' uses the sample weights as given.",
        choices=("balanced", "none"),
    )

    @property
    def n_ensembles(self) -> int:
        """Number of ensembles, ``n_models // ensemble_size``."""
        return self.n_models // self.ensemble_size

    def _check(self) -> None:
        if self.n_models % self.ensemble_size:
            raise OptionsError(
                f"cathode.classifier.n_models ({self.n_models}) must be a multiple of "
                f"cathode.classifier.ensemble_size ({self.ensemble_size})"
            )


# ----------------------------------------------------------------------- validation
def as_features(x: Any, name: str, n_features: int | None = None) -> np.ndarray:
    """``x`` as a finite (N, D) float64 array; clear errors otherwise.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    ValueError
        On a wrong shape, a feature count other than ``n_features``, or NaN/inf.
    """
    if x is None:
        raise TypeError(f"{name} must be an array of shape (N, D); got None")
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D); got {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features; expected {n_features}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} contains NaN or inf (first at row {bad[0]}, feature {bad[1]}: "
            f"{arr[bad[0], bad[1]]})"
        )
    return arr


def as_weights(w: Any, n: int, name: str) -> np.ndarray:
    """Per-event weights as a finite, non-negative (n,) float64 array (ones if None)."""
    if w is None:
        return np.ones(n)
    arr = np.asarray(w)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one weight per event); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0; got min {arr.min()}")
    if n and arr.sum() <= 0:
        raise ValueError(f"{name} sum to 0")
    return arr


# ----------------------------------------------------------------------- one model
@dataclass
class Binning:
    """Per-feature bin thresholds (unweighted quantiles), applied before the trees.

    scikit-learn >= 1.6 computes its bin edges from *weighted* percentiles, one sort per
    edge and feature, whenever a fit has sample weights (and class balancing always
    does): on ~10^5 events this costs seconds per fit, more than the trees. We bin
    with unweighted quantile midpoints of the training rows (what scikit-learn does
    without weights), so each model receives at most ``max_bins`` distinct values per
    feature and skips its own, weighted, binning. Weights still enter every tree and the
    early-stopping loss.
    """

    thresholds: list[np.ndarray]

    @classmethod
    def fit(cls, x: np.ndarray, max_bins: int) -> Binning:
        out = []
        percentiles = np.linspace(0, 100, max_bins + 1)[1:-1]
        for col in x.T:
            distinct = np.unique(col)
            if distinct.size <= max_bins:
                thr = 0.5 * (distinct[:-1] + distinct[1:])
            else:
                thr = np.unique(np.percentile(col, percentiles, method="midpoint"))
            out.append(thr)
        return cls(out)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Bin index of every value (``x <= thresholds[i]`` -> bin ``i``), as float."""
        out = np.empty(x.shape, dtype=np.float64)
        for j, thr in enumerate(self.thresholds):
            out[:, j] = np.searchsorted(thr, x[:, j], side="left")
        return out


@dataclass
class FoldModel:
    """One fitted tree ensemble: the model of one fold of one k-fold classifier.

    Attributes
    ----------
    estimator : HistGradientBoostingClassifier
        Fitted on :attr:`binning`-transformed features.
    binning : Binning
    best_iteration : int
        Trees used for prediction (the iteration with the lowest validation loss, at
        least 1); ``estimator.n_iter_`` trees were grown.
    validation_loss : numpy.ndarray
        Weighted validation log-loss after 0, 1, ... trees (empty without early
        stopping).
    """

    estimator: HistGradientBoostingClassifier
    binning: Binning
    best_iteration: int
    validation_loss: np.ndarray

    @property
    def n_iter(self) -> int:
        """Trees grown."""
        return int(self.estimator.n_iter_)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of 'data' with the first :attr:`best_iteration` trees."""
        xb = self.binning.transform(x)
        if self.best_iteration >= self.n_iter:
            return np.asarray(self.estimator.decision_function(xb), dtype=np.float64)
        stages = self.estimator.staged_decision_function(xb)
        for _ in range(self.best_iteration - 1):
            next(stages)
        return np.asarray(next(stages), dtype=np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(data | x) with the first :attr:`best_iteration` trees."""
        return expit(self.decision_function(x))


def min_leaf(opts: ClassifierOptions, n_fit: int) -> int:
    """Fewest events per leaf for a model fitted on ``n_fit`` events."""
    return max(opts.min_samples_leaf, math.ceil(opts.min_leaf_fraction * n_fit))


def _balanced(w: np.ndarray, y: np.ndarray, class_weight: str) -> np.ndarray:
    """Weights with each class rescaled to the same sum (if balanced); mean 1."""
    w = w.astype(np.float64, copy=True)
    if class_weight == "balanced":
        for c in (0, 1):
            s = w[y == c].sum()
            if s > 0:
                w[y == c] /= s
    total = w.sum()
    return w * (w.size / total) if total > 0 else w


def _validation_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stratified early-stopping split: True for validation rows (>= 1 per class)."""
    is_val = np.zeros(y.size, dtype=bool)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        n_val = round(fraction * idx.size)
        n_val = min(max(n_val, 1), idx.size - 1)
        is_val[rng.choice(idx, n_val, replace=False)] = True
    return is_val


def _fit_one(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    opts: ClassifierOptions,
    rng: np.random.Generator,
) -> FoldModel:
    """Fit one model on the training folds (x, y, w), early stopping on a split of them."""
    est_kwargs = dict(
        loss="log_loss",
        learning_rate=opts.learning_rate,
        max_iter=opts.max_iter,
        max_leaf_nodes=opts.max_leaf_nodes,
        l2_regularization=opts.l2_regularization,
        max_bins=opts.max_bins,
        random_state=int(rng.integers(2**31 - 1)),
    )
    if not opts.early_stopping:
        binning = Binning.fit(x, opts.max_bins)
        est = HistGradientBoostingClassifier(
            early_stopping=False, min_samples_leaf=min_leaf(opts, y.size), **est_kwargs
        )
        est.fit(binning.transform(x), y, sample_weight=_balanced(w, y, opts.class_weight))
        return FoldModel(est, binning, int(est.n_iter_), np.empty(0))
    val = _validation_split(y, opts.early_stopping_fraction, rng)
    fit = ~val
    est_kwargs["min_samples_leaf"] = min_leaf(opts, int(fit.sum()))
    binning = Binning.fit(x[fit], opts.max_bins)
    x_fit, x_val = binning.transform(x[fit]), binning.transform(x[val])
    w_fit = _balanced(w[fit], y[fit], opts.class_weight)
    w_val = _balanced(w[val], y[val], opts.class_weight)
    if _FIT_TAKES_VALIDATION_SET:
        est = HistGradientBoostingClassifier(
            early_stopping=True,
            scoring="loss",
            n_iter_no_change=opts.n_iter_no_change,
            tol=0.0,
            **est_kwargs,
        )
        est.fit(x_fit, y[fit], w_fit, X_val=x_val, y_val=y[val], sample_weight_val=w_val)
        val_loss = -np.asarray(est.validation_score_, dtype=np.float64)
    else:  # scikit-learn < 1.7: grow every tree, then read the loss stage by stage
        est = HistGradientBoostingClassifier(early_stopping=False, **est_kwargs)
        est.fit(x_fit, y[fit], w_fit)
        p0 = np.average(y[fit], weights=w_fit)  # the model's baseline (0 trees)
        val_loss = _staged_log_loss(est, p0, x_val, y[val], w_val)
    best = max(int(np.argmin(val_loss)), 1)
    return FoldModel(est, binning, best, val_loss)


def _staged_log_loss(
    est: HistGradientBoostingClassifier, p0: float, x: np.ndarray, y: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """Weighted log-loss after 0, 1, ..., n_iter_ trees (cost linear in the trees)."""
    p0 = float(np.clip(p0, 1e-12, 1 - 1e-12))
    losses = [_log_loss(np.full(y.size, np.log(p0 / (1 - p0))), y, w)]
    losses += [_log_loss(raw, y, w) for raw in est.staged_decision_function(x)]
    return np.asarray(losses)


def _log_loss(raw: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    # log(1 + e^-z) for y = 1, log(1 + e^z) for y = 0
    z = np.where(y == 1, raw, -raw)
    return float(np.average(np.logaddexp(0.0, -z), weights=w))


# ----------------------------------------------------------------------- the classifier
class CWoLaClassifier(BaseEstimator):
    """k-fold, ensembled CWoLa classifier: SR data (label 1) against a template (label 0).

    Parameters
    ----------
    options : ClassifierOptions, optional
        Settings (default ``ClassifierOptions()``).

    Attributes
    ----------
    scores_ : numpy.ndarray, shape (n_data,)
        Out-of-fold P(data | x) of every data event, averaged over the ``n_models``
        models (each score from models that never saw the event).
    template_scores_ : numpy.ndarray, shape (n_template,)
        The same for the template events.
    model_scores_, model_template_scores_ : numpy.ndarray, shape (n_models, n)
        Out-of-fold scores of each k-fold model.
    ensemble_scores_, ensemble_template_scores_ : numpy.ndarray, shape (n_ensembles, n)
        Mean over the models of each ensemble (consecutive groups of ``ensemble_size``).
    data_folds_, template_folds_ : numpy.ndarray of int, shape (n_models, n)
        The fold of every event in every model: the event was scored by
        ``models_[m][data_folds_[m, i]]`` and used to train every other fold's model.
    models_ : list of list of FoldModel
        ``models_[m][k]``: model *m*, fold *k*.
    best_iterations_, n_iter_ : numpy.ndarray of int, shape (n_models, n_folds)
        Trees used for prediction and trees grown.

    Notes
    -----
    A scikit-learn estimator (``get_params``, tags, ``__sklearn_is_fitted__``), so
    :func:`sklearn.utils.validation.check_is_fitted` works with scikit-learn >= 1.6,
    whose fitted check needs the estimator tags.
    """

    def __init__(self, options: ClassifierOptions | None = None) -> None:
        if options is None:
            options = ClassifierOptions()
        if not isinstance(options, ClassifierOptions):
            raise TypeError(f"options must be a ClassifierOptions; got {type(options).__name__}")
        self.options = options

    # -------------------------------------------------------------------- sklearn glue
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "models_")

    def _require_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                "this CWoLaClassifier is not fitted yet; call fit or fit_predict first"
            )

    @property
    def n_features_in_(self) -> int:
        self._require_fitted()
        return self._n_features

    # -------------------------------------------------------------------- fitting
    def fit(
        self,
        x_data: Any,
        x_template: Any,
        *,
        w_data: Any = None,
        w_template: Any = None,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> CWoLaClassifier:
        """Train every fold of every model; see :meth:`fit_predict`."""
        opts = self.options
        xd = as_features(x_data, "x_data")
        xt = as_features(x_template, "x_template", xd.shape[1])
        wd = as_weights(w_data, xd.shape[0], "w_data")
        wt = as_weights(w_template, xt.shape[0], "w_template")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer; got {seed!r}")
        need = 2 * opts.n_folds
        for name, n in (("x_data", xd.shape[0]), ("x_template", xt.shape[0])):
            if n < need:
                raise ValueError(
                    f"{name} has {n} events; the CWoLa classifier needs at least "
                    f"2 x n_folds = {need} (n_folds = {opts.n_folds})"
                )
        with self._threads():
            return self._fit(xd, xt, wd, wt, int(seed), progress)

    def _threads(self) -> Any:
        n = self.options.n_threads
        return threadpool_limits(limits=n, user_api="openmp") if n else contextlib.nullcontext()

    def _fit(
        self,
        xd: np.ndarray,
        xt: np.ndarray,
        wd: np.ndarray,
        wt: np.ndarray,
        seed: int,
        progress: Callable[[int, int], None] | None,
    ) -> CWoLaClassifier:
        opts = self.options
        x = np.concatenate([xd, xt])
        y = np.concatenate(
            [np.full(xd.shape[0], DATA_LABEL), np.full(xt.shape[0], TEMPLATE_LABEL)]
        ).astype(np.int64)
        w = np.concatenate([wd, wt])
        nd, nt, k = xd.shape[0], xt.shape[0], opts.n_folds

        seeds = np.random.SeedSequence([seed, 0x0C0A]).spawn(opts.n_models)
        data_folds = np.empty((opts.n_models, nd), dtype=np.int64)
        template_folds = np.empty((opts.n_models, nt), dtype=np.int64)
        model_scores = np.empty((opts.n_models, nd))
        model_template_scores = np.empty((opts.n_models, nt))
        models: list[list[FoldModel]] = []
        total, done = opts.n_models * k, 0
        for m in range(opts.n_models):
            rng = np.random.default_rng(seeds[m])
            data_folds[m] = _fold_assignment(nd, k, rng)
            template_folds[m] = _fold_assignment(nt, k, rng)
            folds = np.concatenate([data_folds[m], template_folds[m]])
            fold_models = []
            for f in range(k):
                train = folds != f
                fm = _fit_one(x[train], y[train], w[train], opts, rng)
                held = np.flatnonzero(~train)
                p = fm.predict_proba(x[held])  # data and template of fold f in one pass
                is_data = held < nd
                model_scores[m, held[is_data]] = p[is_data]
                model_template_scores[m, held[~is_data] - nd] = p[~is_data]
                fold_models.append(fm)
                done += 1
                logger.debug(
                    "model %d fold %d: %d trees grown, best %d", m, f, fm.n_iter, fm.best_iteration
                )
                if progress is not None:
                    progress(done, total)
            models.append(fold_models)

        e = opts.ensemble_size
        self._n_features = xd.shape[1]
        self.data_folds_ = data_folds
        self.template_folds_ = template_folds
        self.model_scores_ = model_scores
        self.model_template_scores_ = model_template_scores
        self.ensemble_scores_ = model_scores.reshape(opts.n_ensembles, e, nd).mean(axis=1)
        self.ensemble_template_scores_ = model_template_scores.reshape(
            opts.n_ensembles, e, nt
        ).mean(axis=1)
        self.scores_ = model_scores.mean(axis=0)
        self.template_scores_ = model_template_scores.mean(axis=0)
        self.best_iterations_ = np.array([[fm.best_iteration for fm in r] for r in models])
        self.n_iter_ = np.array([[fm.n_iter for fm in r] for r in models])
        self.models_ = models
        logger.info(
            "CWoLa classifier: %d models x %d folds on %d data + %d template events; "
            "trees used per model: median %d (grown: median %d)",
            opts.n_models, k, nd, nt,
            int(np.median(self.best_iterations_)), int(np.median(self.n_iter_)),
        )  # fmt: skip
        return self

    def fit_predict(
        self,
        x_data: Any,
        x_template: Any,
        *,
        w_data: Any = None,
        w_template: Any = None,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Train and return the out-of-fold score of every data event.

        Parameters
        ----------
        x_data : array_like, shape (n_data, D)
            Signal-region data (label 1).
        x_template : array_like, shape (n_template, D)
            Background template (label 0).
        w_data, w_template : array_like, shape (n,), optional
            Non-negative sample weights (default 1); used in training and in the
            early-stopping loss, and in the class balance.
        seed : int
            Seeds the fold assignments, validation splits and trees.
        progress : callable, optional
            Called as ``progress(done, total)`` after each fitted fold model.

        Returns
        -------
        numpy.ndarray, shape (n_data,)
            :attr:`scores_`: P(data | x), each from models that never saw the event.
        """
        self.fit(
            x_data, x_template, w_data=w_data, w_template=w_template, seed=seed,
            progress=progress,
        )  # fmt: skip
        return self.scores_

    # -------------------------------------------------------------------- prediction
    def predict_models(self, x: Any) -> np.ndarray:
        """Per-model scores of new events, shape (n_models, N): mean over the folds."""
        self._require_fitted()
        arr = as_features(x, "x", self._n_features)
        out = np.empty((len(self.models_), arr.shape[0]))
        with self._threads():
            for m, fold_models in enumerate(self.models_):
                out[m] = np.mean([fm.predict_proba(arr) for fm in fold_models], axis=0)
        return out

    def predict_ensembles(self, x: Any) -> np.ndarray:
        """Per-ensemble scores of new events, shape (n_ensembles, N)."""
        per_model = self.predict_models(x)
        e = self.options.ensemble_size
        return per_model.reshape(-1, e, per_model.shape[1]).mean(axis=1)

    def predict(self, x: Any) -> np.ndarray:
        """Score of new events (never seen in training): mean over every fold model.

        Use :attr:`scores_` for the training data themselves (out of fold).
        """
        return self.predict_models(x).mean(axis=0)


def _fold_assignment(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A random, balanced fold index in [0, k) for each of n events."""
    folds = np.empty(n, dtype=np.int64)
    folds[rng.permutation(n)] = np.arange(n) % k
    return folds
