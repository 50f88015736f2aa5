r"""CATHODE end to end: regions -> flow on the sidebands -> SR template -> CWoLa classifier.

:class:`Cathode` runs the method of Hallin et al. (arXiv 2109.00546) on any features
``x`` (raw observables or an embedding) and a resonant variable ``m``:

1. :class:`~contrastx.cathode.regions.Regions` split the events into signal region
   (SR) and sidebands (SB);
2. a :class:`~contrastx.cathode.flow.ConditionalFlow` learns p(x | m) on the SB (or a
   fitted density is passed in, e.g. a flow saved by an earlier run);
3. :func:`~contrastx.cathode.sampling.make_template` samples it at m values drawn from
   a KDE of the SR m values (``oversampling`` x the SR events), optionally with
   simulated resonant components (a hybrid template);
4. a :class:`~contrastx.cathode.classifier.CWoLaClassifier` separates SR data from the
   template; every SR event is scored out of fold (:attr:`Cathode.anomaly_scores_`).

Baselines go through the same API:

* the **idealized anomaly detector**: ``fit(x, m, template=idealized_template(x_bkg))``
  with the true SR background as template (simulation studies);
* the **fully supervised** classifier: :func:`supervised_classifier` (signal against
  background labels, same trees, same k-fold);
* CATHODE on raw features versus on an embedding is just a different ``x``.

:meth:`Cathode.score` and :func:`evaluate_classifier` report the metrics of
:mod:`~contrastx.cathode.metrics` on labelled evaluation events, with the spread of the
max SIC across the classifier ensembles (the second paper's systematic).

Example
-------
>>> import numpy as np
>>> from contrastx.cathode import Cathode, CathodeOptions, idealized_template
>>> from contrastx.options import replace_flat
>>> rng = np.random.default_rng(0)
>>> m = rng.uniform(0.0, 3.0, 3000)
>>> x = rng.normal(size=(3000, 2))
>>> opts = CathodeOptions(signal_region=(1.0, 2.0), sidebands=(0.0, 1.0, 2.0, 3.0))
>>> opts = replace_flat(opts, n_models=2, max_iter=20)
>>> cathode = Cathode(opts).fit(x, m, template=idealized_template(rng.normal(size=(4000, 2))))
>>> cathode.anomaly_scores_.shape == (int(((m >= 1) & (m < 2)).sum()),)
True
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contrastx.options import OptionsError, embedded, option, options

from .classifier import ClassifierOptions, CWoLaClassifier, as_features, as_weights
from .flow import ConditionalFlow, FlowOptions
from .metrics import classification_metrics, max_sic, roc_curve
from .regions import Regions, check_mass
from .sampling import TemplateComponent, TemplateOptions, make_template
from .sculpting import SculptingResult, mass_sculpting, sculpting_test

logger = logging.getLogger(__name__)

__all__ = [
    "Cathode",
    "CathodeOptions",
    "Template",
    "evaluate_classifier",
    "idealized_template",
    "supervised_classifier",
]


@options(section="cathode")
class CathodeOptions:
    """Settings of a CATHODE run: regions, seeds, metrics, and flow / template / classifier."""

    signal_region: tuple[float, ...] = option(
        (),
        "Signal-region window lo,hi in m (half-open, lo <= m < hi). Required.",
        flag="--sr",
        metavar="LO,HI",
    )
    sidebands: tuple[float, ...] = option(
        (),
        "Sideband windows lo,hi[,lo,hi...] in m, disjoint from the signal region (they may "
        "touch it). Required.",
        flag="--sb",
        metavar="LO,HI[,LO,HI]",
    )
    seed: int = option(0, "Seeds the flow, the template and the classifier.")
    device: str = option("cpu", "torch device of the flow: cpu, cuda or cuda:N.")
    torch_threads: int = option(
        1,
        "torch CPU threads while the flow trains and samples (0: leave torch's setting). "
        "Small flows run fastest on one thread, especially on a busy machine.",
        ge=0,
    )
    min_background_events: int = option(
        100,
        "max SIC is taken over working points that keep at least this many evaluation "
        "background events (background efficiency >= this / N_background).",
        ge=1,
    )
    background_efficiencies: tuple[float, ...] = option(
        (0.1, 0.01, 0.001),
        "Background efficiencies at which the significance improvement is reported.",
        gt=0.0,
        le=1.0,
    )
    sculpting_efficiencies: tuple[float, ...] = option(
        (0.2, 0.05),
        "Signal-region selection efficiencies of the m-spectrum sculpting check.",
        gt=0.0,
        lt=1.0,
    )
    mass_bins: int = option(10, "Bins per m window in the sculpting spectra.", ge=1)
    flow: FlowOptions = embedded(FlowOptions)
    template: TemplateOptions = embedded(TemplateOptions)
    classifier: ClassifierOptions = embedded(ClassifierOptions)

    def _check(self) -> None:
        if len(self.signal_region) not in (0, 2):
            raise OptionsError(
                f"cathode.signal_region must be two numbers lo,hi; got {list(self.signal_region)}"
            )
        if len(self.sidebands) % 2:
            raise OptionsError(
                "cathode.sidebands must be pairs lo,hi[,lo,hi...]; got an odd number of "
                f"values {list(self.sidebands)}"
            )
        if self.signal_region or self.sidebands:
            self.regions()  # validates the windows

    def regions(self) -> Regions:
        """The :class:`Regions` of these options.

        Raises
        ------
        OptionsError
            If the signal region or the sidebands are not set, or the windows are
            invalid (the message names the window).
        """
        if not self.signal_region:
            raise OptionsError("cathode.signal_region is not set (lo,hi)")
        if not self.sidebands:
            raise OptionsError("cathode.sidebands is not set (lo,hi[,lo,hi...])")
        sb = self.sidebands
        try:
            return Regions(self.signal_region, tuple(zip(sb[0::2], sb[1::2])))
        except (TypeError, ValueError) as err:
            raise OptionsError(f"cathode: {err}") from None


# ----------------------------------------------------------------------- templates
@dataclass(frozen=True)
class Template:
    """A ready-made background template in the signal region (instead of flow samples).

    Attributes
    ----------
    x : numpy.ndarray, shape (n, D)
    weights : numpy.ndarray, shape (n,), optional
    m : numpy.ndarray, shape (n,), optional
    name : str
    """

    x: np.ndarray
    weights: np.ndarray | None = None
    m: np.ndarray | None = None
    name: str = "template"


def idealized_template(x_background_sr: Any, weights: Any = None, m: Any = None) -> Template:
    """The idealized anomaly detector's template: true signal-region background events.

    Use simulated SR background that is *not* part of the data being searched (and not
    part of the evaluation events).
    """
    x = as_features(x_background_sr, "x_background_sr")
    w = None if weights is None else as_weights(weights, x.shape[0], "weights")
    mm = None if m is None else check_mass(m, "m")
    if mm is not None and mm.shape[0] != x.shape[0]:
        raise ValueError(f"x_background_sr has {x.shape[0]} events but m has {mm.shape[0]}")
    return Template(x=x, weights=w, m=mm, name="idealized")


# ----------------------------------------------------------------------- evaluation
def evaluate_classifier(
    classifier: CWoLaClassifier,
    x: Any,
    y_true: Any,
    *,
    min_background_events: int = 100,
    background_efficiencies: Sequence[float] = (0.1, 0.01, 0.001),
    sample_weight: Any = None,
    scores: np.ndarray | None = None,
    ensemble_scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Metrics of a fitted classifier on labelled events (1 signal, 0 background).

    ``x`` is scored with :meth:`CWoLaClassifier.predict` (events never seen in training)
    unless ``scores`` and ``ensemble_scores`` are given (e.g. out-of-fold scores).

    Returns
    -------
    dict
        :func:`~contrastx.cathode.metrics.classification_metrics` plus ``ensembles``:
        the max SIC and AUC of every ensemble and the mean and standard deviation of
        the max SIC across them.
    """
    if scores is None:
        ensemble_scores = classifier.predict_ensembles(x)
        scores = classifier.predict(x)
    elif ensemble_scores is None:
        raise TypeError("pass ensemble_scores together with scores")
    y = np.asarray(y_true)
    if y.shape != (np.asarray(scores).shape[0],):
        raise ValueError(
            f"y_true must have one label per event: shape ({np.asarray(scores).shape[0]},); "
            f"got {y.shape}"
        )
    out = classification_metrics(
        y, scores, min_background_events=min_background_events,
        background_efficiencies=background_efficiencies, sample_weight=sample_weight,
    )  # fmt: skip
    per = [
        max_sic(y, s, min_background_events=min_background_events, sample_weight=sample_weight)
        for s in ensemble_scores
    ]
    values = np.array([p.value for p in per])
    out["ensembles"] = {
        "n": int(values.size),
        "max_sic": values.tolist(),
        "auc": [roc_curve(y, s, sample_weight=sample_weight).auc for s in ensemble_scores],
        "max_sic_mean": float(values.mean()),
        "max_sic_std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
    }
    return out


def supervised_classifier(
    x_signal: Any,
    x_background: Any,
    *,
    options: ClassifierOptions | None = None,
    w_signal: Any = None,
    w_background: Any = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> CWoLaClassifier:
    """The fully supervised baseline: the same classifier, signal (1) vs background (0).

    Score held-out evaluation events with ``.predict`` or :func:`evaluate_classifier`.
    """
    return CWoLaClassifier(options).fit(
        x_signal, x_background, w_data=w_signal, w_template=w_background, seed=seed,
        progress=progress,
    )  # fmt: skip


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (0: leave torch's setting), then restore."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _stage_seeds(seed: int) -> tuple[int, int, int]:
    a, b, c = np.random.SeedSequence([int(seed), 0xCA7]).generate_state(3)
    return int(a), int(b), int(c)


# ----------------------------------------------------------------------- the estimator
class Cathode:
    """CATHODE: flow in the sidebands, template in the signal region, CWoLa classifier.

    Parameters
    ----------
    options : CathodeOptions
        Must set ``signal_region`` and ``sidebands``.

    Attributes
    ----------
    regions_ : Regions
    counts_ : dict
        Events per window (:meth:`Regions.counts`).
    signal_mask_, sideband_mask_ : numpy.ndarray of bool
        Masks over the events given to :meth:`fit`.
    flow_ : ConditionalFlow or object or None
        The density the template was sampled from (None with a ready-made template).
    x_template_, w_template_ : numpy.ndarray
        The template the classifier was trained against, and its weights.
    m_template_ : numpy.ndarray or None
        m of the template events (None when the template did not carry them).
    classifier_ : CWoLaClassifier
    anomaly_scores_ : numpy.ndarray, shape (n_sr,)
        Out-of-fold anomaly score of every SR event (order of ``x[signal_mask_]``).
    ensemble_scores_ : numpy.ndarray, shape (n_ensembles, n_sr)
    sideband_scores_ : numpy.ndarray, shape (n_sb,)
        Classifier score of the SB events (never used in classifier training).
    fit_info_ : dict
        Template size and the seconds spent on flow, template and classifier.
    """

    def __init__(self, options: CathodeOptions) -> None:
        if not isinstance(options, CathodeOptions):
            raise TypeError(f"options must be a CathodeOptions; got {type(options).__name__}")
        options.regions()  # the windows must be set
        self.options = options

    def _require_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise RuntimeError("Cathode is not fitted; call fit(x, m) first")

    def fit(
        self,
        x: Any,
        m: Any,
        *,
        flow: Any = None,
        template: Template | None = None,
        extra_background: TemplateComponent | Sequence[TemplateComponent] | None = None,
        progress: bool | None = None,
        on_flow_fitted: Callable[[ConditionalFlow], None] | None = None,
    ) -> Cathode:
        """Run CATHODE on events ``x`` (N, D) with resonant variable ``m`` (N,).

        Parameters
        ----------
        x : array_like, shape (N, D)
            Features of every event (SR, SB and others; events outside every window are
            ignored).
        m : array_like, shape (N,)
        flow : ConditionalFlow or object, optional
            An already fitted density with ``sample(m, *, seed)`` (e.g.
            :meth:`ConditionalFlow.load` of an earlier run): no flow is trained.
        template : Template, optional
            A ready-made template (:func:`idealized_template`): no flow, no sampling.
        extra_background : TemplateComponent or sequence, optional
            Hybrid template: simulated resonant background with its expected SR yield.
        progress : bool, optional
            True: progress bars; False: log lines; None: bars on a terminal only.
        on_flow_fitted : callable, optional
            Called with the newly trained flow before sampling (e.g. to save it).

        Raises
        ------
        ValueError
            Mismatched lengths, NaN/inf, all events outside every window, an empty
            signal region or sideband, or too few events for the classifier.
        """
        opts = self.options
        if flow is not None and template is not None:
            raise ValueError("pass either flow or template, not both")
        if template is not None and extra_background is not None:
            raise ValueError("extra_background belongs to a flow template; the template is given")
        xx = as_features(x, "x")
        mm = check_mass(m)
        if xx.shape[0] != mm.shape[0]:
            raise ValueError(f"x has {xx.shape[0]} events but m has {mm.shape[0]}; they must match")
        regions = opts.regions()
        counts = regions.check(mm, min_events=1)
        sr, sb = regions.signal_mask(mm), regions.sideband_mask(mm)
        flow_seed, template_seed, clf_seed = _stage_seeds(opts.seed)
        info: dict[str, Any] = {"counts": counts}

        t0 = time.perf_counter()
        if template is None:
            if flow is None:
                logger.info("training the flow on %d sideband events", int(sb.sum()))
                with torch_threads(opts.torch_threads):
                    flow = ConditionalFlow(opts.flow).fit(
                        xx[sb], mm[sb], seed=flow_seed, device=opts.device, progress=progress
                    )
                info["flow_trained"] = True
                if on_flow_fitted is not None:
                    on_flow_fitted(flow)
            else:
                info["flow_trained"] = False
            n_flow_features = getattr(flow, "n_features_", xx.shape[1])
            if n_flow_features != xx.shape[1]:
                raise ValueError(
                    f"the flow models {n_flow_features} features but x has {xx.shape[1]}"
                )
            info["flow_seconds"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            with torch_threads(opts.torch_threads):
                x_t, m_t, w_t = make_template(
                    flow, mm[sr], opts.template, seed=template_seed, extra=extra_background,
                    window=regions.signal_region,
                )  # fmt: skip
            info["template_seconds"] = time.perf_counter() - t1
            info["template_source"] = "flow"
        else:
            if not isinstance(template, Template):
                raise TypeError(f"template must be a Template; got {type(template).__name__}")
            x_t = as_features(template.x, "template.x", xx.shape[1])
            w_t = (
                np.ones(x_t.shape[0])
                if template.weights is None
                else as_weights(template.weights, x_t.shape[0], "template.weights")
            )
            m_t = template.m
            info["template_source"] = template.name
        info["n_template"] = int(x_t.shape[0])
        info["template_weight_sum"] = float(w_t.sum())
        logger.info(
            "CWoLa classifier: %d signal-region events vs %d template events",
            int(sr.sum()), x_t.shape[0],
        )  # fmt: skip
        t2 = time.perf_counter()
        clf = CWoLaClassifier(opts.classifier)
        with _classifier_progress(progress, opts.classifier) as callback:
            clf.fit(xx[sr], x_t, w_template=w_t, seed=clf_seed, progress=callback)
        info["classifier_seconds"] = time.perf_counter() - t2

        self.regions_ = regions
        self.counts_ = counts
        self.signal_mask_ = sr
        self.sideband_mask_ = sb
        self.flow_ = flow
        self.x_template_ = x_t
        self.m_template_ = m_t
        self.w_template_ = w_t
        self.m_signal_region_ = mm[sr]
        self.m_sidebands_ = mm[sb]
        self.classifier_ = clf
        self.anomaly_scores_ = clf.scores_
        self.ensemble_scores_ = clf.ensemble_scores_
        self.sideband_scores_ = clf.predict(xx[sb])
        self.fit_info_ = info
        return self

    # -------------------------------------------------------------------- results
    def predict(self, x: Any) -> np.ndarray:
        """Anomaly score of new events (never seen in training): mean over all models."""
        self._require_fitted()
        return self.classifier_.predict(x)

    def score(self, x: Any, y_true: Any, *, sample_weight: Any = None) -> dict[str, Any]:
        """Metrics on labelled evaluation events (1 signal, 0 background) not used in fit."""
        self._require_fitted()
        return evaluate_classifier(
            self.classifier_, x, y_true,
            min_background_events=self.options.min_background_events,
            background_efficiencies=self.options.background_efficiencies,
            sample_weight=sample_weight,
        )  # fmt: skip

    def score_signal_region(self, y_true_sr: Any) -> dict[str, Any]:
        """Metrics of the out-of-fold scores of the SR data, given their truth labels."""
        self._require_fitted()
        return evaluate_classifier(
            self.classifier_, None, y_true_sr,
            min_background_events=self.options.min_background_events,
            background_efficiencies=self.options.background_efficiencies,
            scores=self.anomaly_scores_, ensemble_scores=self.ensemble_scores_,
        )  # fmt: skip

    def sculpting_test(self, x_background_sr: Any, *, seed: int | None = None) -> SculptingResult:
        """Classify this run's template against true SR background (AUC ~ 0.5 if faithful)."""
        self._require_fitted()
        return sculpting_test(
            self.x_template_, x_background_sr, w_template=self.w_template_,
            options=self.options.classifier,
            seed=self.options.seed if seed is None else seed,
        )  # fmt: skip

    def mass_sculpting(
        self, signal_region_events: Any = None, sideband_events: Any = None
    ) -> list[dict[str, Any]]:
        """m spectra of SR and SB data before and after score cuts (see
        :func:`~contrastx.cathode.sculpting.mass_sculpting`).

        The cuts keep the ``sculpting_efficiencies`` of *all* SR data. With data that
        contain a signal, a cut shows that signal as a bump; in simulation, pass boolean
        masks of the true-background events (over the SR and SB events, in the order of
        :attr:`anomaly_scores_` and :attr:`sideband_scores_`) to check that the cut does
        not carve a bump into the background.
        """
        self._require_fitted()
        eff = self.options.sculpting_efficiencies
        thresholds = [float(np.quantile(self.anomaly_scores_, 1.0 - e)) for e in eff]
        keep_sr = _event_mask(signal_region_events, self.anomaly_scores_.size, "signal_region")
        keep_sb = _event_mask(sideband_events, self.sideband_scores_.size, "sideband")
        m = np.concatenate([self.m_signal_region_[keep_sr], self.m_sidebands_[keep_sb]])
        s = np.concatenate([self.anomaly_scores_[keep_sr], self.sideband_scores_[keep_sb]])
        return mass_sculpting(
            m, s, self.regions_, efficiencies=eff, bins=self.options.mass_bins,
            thresholds=thresholds,
        )  # fmt: skip


def _event_mask(mask: Any, n: int, what: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    arr = np.asarray(mask)
    if arr.dtype != bool or arr.shape != (n,):
        raise ValueError(
            f"{what}_events must be a boolean mask over the {n} {what} events; got "
            f"{arr.dtype} {arr.shape}"
        )
    return arr


@contextlib.contextmanager
def _classifier_progress(
    progress: bool | None, options: ClassifierOptions
) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback: a tqdm bar, or a log line per model."""
    import sys

    show = sys.stderr.isatty() if progress is None else bool(progress)
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=options.n_models * options.n_folds, desc="classifier", unit="fit",
            dynamic_ncols=True,
        )  # fmt: skip

        def update(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            yield update
        finally:
            bar.close()
        return
    t0 = time.perf_counter()

    def log(done: int, total: int) -> None:
        if done % options.n_folds == 0 or done == total:
            elapsed = time.perf_counter() - t0
            logger.info(
                "classifier: %d/%d fold models, %.1f s, ETA %.0f s",
                done, total, elapsed, elapsed / done * (total - done),
            )  # fmt: skip

    yield log
