"""How much information a latent space keeps: multi-class confusion matrices (Appendix A).

The second paper compares three classifiers on one multi-class task, every Standard
Model background merged into one class ``"SM"`` and one class per BSM signal group
(every mass point of a model shares its group's class):

* a boosted decision tree on the latent features of the contrastive encoder;
* the same BDT on a small set of raw physics features (:func:`raw_physics_features`),
  the best a classifier on those features can do;
* the encoder's particle transformer trained with cross-entropy on the classes
  (:func:`supervised_confusion`), the upper bound of the architecture.

The building blocks:

* :func:`information_classes` -- the class of every event and the class names;
* :func:`raw_physics_features` -- nine raw physics features of diphoton-layout events
  (:data:`RAW_FEATURES`);
* :func:`bdt_confusion` -- a class-balanced HistGradientBoosting classifier on any
  features and its row-normalised confusion matrix;
* :func:`supervised_confusion` -- the fully supervised transformer and its confusion
  matrix.

Both confusion functions return the same dict: ``matrix`` (nested lists, row ``i`` the
events of true class ``i``, normalised per row), ``class_names``, ``accuracy`` (the mean
of the diagonal, i.e. the balanced accuracy), ``n_train`` and ``n_test``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 2)) + np.repeat([[0, 0], [6, 6]], 100, axis=0)
>>> y = np.repeat([0, 1], 100)
>>> result = bdt_confusion(x, y, x, y, ["SM", "X"], seed=0, max_iter=20)
>>> result["accuracy"]
1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from ..embed.model import embed
from ..embed.training import TrainConfig, Trainer
from ..events.container import UNKNOWN_LABEL, Events
from ..events.generators.diphoton import BACKGROUND_PROCESSES, group_labels

__all__ = [
    "BTAG_THRESHOLD",
    "RAW_FEATURES",
    "SM_CLASS",
    "SUPERVISED_LATENT_DIM",
    "bdt_confusion",
    "information_classes",
    "raw_physics_features",
    "supervised_config",
    "supervised_confusion",
]

logger = logging.getLogger(__name__)

SM_CLASS = "SM"
"""Name of the class every Standard Model background process is merged into."""

BTAG_THRESHOLD = 0.5
"""A small-R jet counts as b-tagged when its b-tag score is above this (the diphoton
generator stores scores of 0 or 1, so any cut strictly between them is the same)."""

RAW_FEATURES = (
    "n_jets",
    "n_bjets",
    "n_leptons",
    "met",
    "ht",
    "pt_gg",
    "jet1_pt",
    "large_r_jet1_mass",
    "large_r_jet1_tau21",
)
"""The raw physics features of :func:`raw_physics_features`, in column order."""

SUPERVISED_LATENT_DIM = 32
"""Width of the supervised transformer's last encoder layer, on which the linear
classifier sits (wider than the number of classes, so it is no bottleneck)."""

_NEEDED_GROUPS = ("jet", "large_r_jet", "electron", "muon", "MET", "photon")
_NEEDED_FEATURES = ("pt", "phi", "mass", "btag", "tau21")
_NEEDED_EVENT_FEATURES = ("n_jets", "ht")


# --------------------------------------------------------------------------- classes
def information_classes(
    events: Events, backgrounds: Sequence[str] = BACKGROUND_PROCESSES
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The class of every event: all SM backgrounds in one class, one per signal group.

    Every event whose process (or process group) is one of ``backgrounds`` belongs to
    the class :data:`SM_CLASS`; every other event to the class of its process group
    (:func:`contrastx.events.generators.diphoton.group_labels`: all mass points of a
    model share a group). Only classes with at least one event exist: ``"SM"`` first
    (when there are background events), then the signal groups in the generator's
    registry order. A background named in ``backgrounds`` without events is no error.
    Derive the classes of a whole sample once and split the labels afterwards, so that
    every part shares the class list.

    Parameters
    ----------
    events : Events
        Labelled events (every label known), e.g. read from a diphoton event file.
    backgrounds : sequence of str
        Names of the background processes (or groups); default the five SM backgrounds
        ``gamma_gamma, ggF, VBF, VH, ttH``.

    Returns
    -------
    labels : ndarray of int64, shape (N,)
        Index of every event's class in ``class_names``.
    class_names : tuple of str

    Raises
    ------
    TypeError
        If ``events`` is not :class:`~contrastx.events.Events` or ``backgrounds`` is not a
        sequence of strings.
    ValueError
        If an event has no label (-1), ``backgrounds`` is empty, or a signal group is
        called ``"SM"``.
    """
    if not isinstance(events, Events):
        raise TypeError(f"events must be Events; got {type(events).__name__}")
    backgrounds = _names("backgrounds", backgrounds)
    if not backgrounds:
        raise ValueError("backgrounds must name at least one background process")
    if (events.labels == UNKNOWN_LABEL).any():
        n = int((events.labels == UNKNOWN_LABEL).sum())
        raise ValueError(
            f"{n} of {len(events)} events have no process label (-1): every event needs its "
            "process to be given a class"
        )
    groups, group_names = group_labels(events)
    present, first = np.unique(events.labels, return_index=True)
    class_of: dict[int, str] = {}
    signal_groups: set[str] = set()
    for label, row in zip(present.tolist(), first.tolist()):
        process = events.process_names[label]
        group = group_names[groups[row]]
        if process in backgrounds or group in backgrounds:
            class_of[label] = SM_CLASS
        else:
            if group == SM_CLASS:
                raise ValueError(
                    f"process {process!r} is in a signal group called {SM_CLASS!r}, the name of "
                    "the merged background class; rename the group or list it in backgrounds"
                )
            class_of[label] = group
            signal_groups.add(group)
    names = [SM_CLASS] if SM_CLASS in class_of.values() else []
    names += [g for g in group_names if g in signal_groups]
    lut = np.full(len(events.process_names), -1, dtype=np.int64)
    for label, name in class_of.items():
        lut[label] = names.index(name)
    return lut[events.labels], tuple(names)


def _names(what: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a sequence of strings; got {type(value).__name__}")
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{what} must be a sequence of strings; got {bad[0]!r}")
    return tuple(value)


# ---------------------------------------------------------------------- raw features
def raw_physics_features(events: Events) -> tuple[np.ndarray, list[str]]:
    """Nine raw physics features of diphoton-layout events (:data:`RAW_FEATURES`).

    In the spirit of the nine features of the first diphoton anomaly-detection paper
    (Cheng et al., arXiv 2508.13566), from the objects of the
    :data:`~contrastx.events.layout.DIPHOTON` layout (or any layout with the same
    groups and feature names):

    ======================  ============================================================
    ``n_jets``              number of small-R jets (event feature ``n_jets``: all
                            accepted jets, not only the four kept slots)
    ``n_bjets``             small-R jets in the kept slots with a b-tag score above
                            :data:`BTAG_THRESHOLD`
    ``n_leptons``           electrons plus muons in the kept slots
    ``met``                 missing transverse momentum (GeV)
    ``ht``                  H_T, scalar pT sum of the small-R jets (event feature ``ht``)
    ``pt_gg``               pT of the diphoton system, the vector sum of the two
                            photon slots' transverse momenta (GeV)
    ``jet1_pt``             pT of the leading small-R jet (GeV)
    ``large_r_jet1_mass``   mass of the leading large-R jet (GeV)
    ``large_r_jet1_tau21``  N-subjettiness ratio tau21 of the leading large-R jet
    ======================  ============================================================

    A missing object gives zeros (padding slots hold zeros). The diphoton mass
    m_gammagamma is deliberately not a feature: it defines the signal region.

    Parameters
    ----------
    events : Events
        Events in the diphoton layout.

    Returns
    -------
    x : ndarray of float64, shape (N, 9)
    names : list of str
        :data:`RAW_FEATURES`.

    Raises
    ------
    TypeError
        If ``events`` is not :class:`~contrastx.events.Events`.
    ValueError
        If the layout lacks one of the object groups, object features or event
        features used (the message names the layout and what is missing).
    """
    if not isinstance(events, Events):
        raise TypeError(f"events must be Events; got {type(events).__name__}")
    layout = events.layout
    groups = {g.name: g for g in layout.groups}
    missing = [f"object group {g!r}" for g in _NEEDED_GROUPS if g not in groups]
    missing += [f"object feature {f!r}" for f in _NEEDED_FEATURES if f not in layout.feature_names]
    missing += [
        f"event feature {f!r}"
        for f in _NEEDED_EVENT_FEATURES
        if f not in layout.event_feature_names
    ]
    if not missing and groups["photon"].count < 2:
        missing.append("two photon slots")
    if missing:
        raise ValueError(
            f"raw physics features need events in the diphoton layout; layout "
            f"{layout.name!r} has no {', '.join(missing)}"
        )
    pt, phi = events.feature("pt").astype(np.float64), events.feature("phi").astype(np.float64)
    jets = layout.group_slots("jet")
    large = layout.group_slots("large_r_jet").start
    met = layout.group_slots("MET").start
    y1 = layout.group_slots("photon").start
    y2 = y1 + 1
    btag = events.feature("btag")[:, jets]
    n_bjets = ((btag > BTAG_THRESHOLD) & (events.pt[:, jets] > 0)).sum(axis=1)
    px = pt[:, y1] * np.cos(phi[:, y1]) + pt[:, y2] * np.cos(phi[:, y2])
    py = pt[:, y1] * np.sin(phi[:, y1]) + pt[:, y2] * np.sin(phi[:, y2])
    columns = {
        "n_jets": events.event_feature("n_jets"),
        "n_bjets": n_bjets,
        "n_leptons": events.multiplicity("electron") + events.multiplicity("muon"),
        "met": pt[:, met],
        "ht": events.event_feature("ht"),
        "pt_gg": np.hypot(px, py),
        "jet1_pt": pt[:, jets.start],
        "large_r_jet1_mass": events.feature("mass")[:, large],
        "large_r_jet1_tau21": events.feature("tau21")[:, large],
    }
    x = np.stack([np.asarray(columns[name], dtype=np.float64) for name in RAW_FEATURES], axis=1)
    return x, list(RAW_FEATURES)


# ------------------------------------------------------------------------ confusion
def _class_names(class_names: Any) -> list[str]:
    names = list(_names("class_names", class_names))
    if len(names) < 2:
        raise ValueError(f"class_names must name at least two classes; got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    return names


def _class_labels(y: Any, name: str, n: int, class_names: list[str]) -> np.ndarray:
    """``y`` checked: n integer labels in [0, n_classes), every class present."""
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one class per event); got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices; got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    k = len(class_names)
    if arr.size and (arr.min() < 0 or arr.max() >= k):
        raise ValueError(
            f"{name} must lie in [0, {k - 1}] (indices into class_names); got range "
            f"[{arr.min()}, {arr.max()}]"
        )
    absent = [class_names[c] for c in range(k) if not (arr == c).any()]
    if absent:
        raise ValueError(
            f"{name} has no events of class(es) {', '.join(map(repr, absent))}: every class "
            "needs events to be trained on and to normalise its row of the confusion matrix"
        )
    return arr


def _features(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (events, features); got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at event {row}, feature {col})")
    return arr


def _count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    return int(value)


def _confusion_result(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], n_train: int
) -> dict[str, Any]:
    k = len(class_names)
    counts = np.zeros((k, k), dtype=np.float64)
    np.add.at(counts, (y_true, y_pred), 1.0)
    matrix = counts / counts.sum(axis=1, keepdims=True)
    return {
        "matrix": matrix.tolist(),
        "class_names": list(class_names),
        "accuracy": float(np.mean(np.diag(matrix))),
        "n_train": int(n_train),
        "n_test": int(y_true.size),
    }


def bdt_confusion(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    class_names: Sequence[str],
    *,
    seed: int,
    max_iter: int = 200,
    n_threads: int | None = 1,
) -> dict[str, Any]:
    """Multi-class BDT on features, evaluated as a row-normalised confusion matrix.

    scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (log loss,
    default tree settings, no early stopping: every one of ``max_iter`` trees is grown),
    with sample weights that give every class the same total weight, so that the large
    background class does not dominate the fit.

    Parameters
    ----------
    x_train, x_test : array_like, shape (N, F)
        Finite features (e.g. the latent features or :func:`raw_physics_features`).
    y_train, y_test : array_like of int, shape (N,)
        Class indices into ``class_names``; every class must occur in both.
    class_names : sequence of str
        At least two distinct names.
    seed : int
        ``random_state`` of the classifier.
    max_iter : int
        Boosting iterations (trees per class).
    n_threads : int or None
        OpenMP threads of the fit and prediction (None: scikit-learn's default, all
        cores).

    Returns
    -------
    dict
        ``matrix`` (row ``i``: the fractions of the test events of true class ``i``
        predicted as each class), ``class_names``, ``accuracy`` (mean of the diagonal:
        the balanced accuracy), ``n_train``, ``n_test``.

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite features, labels outside the classes or a class
        without training or test events.
    TypeError
        On a non-integer ``seed``, ``max_iter`` or ``n_threads``, or ``class_names`` not a
        sequence of strings.
    """
    names = _class_names(class_names)
    seed = _count(seed, "seed", 0)
    max_iter = _count(max_iter, "max_iter", 1)
    if n_threads is not None:
        n_threads = _count(n_threads, "n_threads", 1)
    xtr, xte = _features(x_train, "x_train"), _features(x_test, "x_test")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"x_train has {xtr.shape[1]} features but x_test has {xte.shape[1]}; they must agree"
        )
    ytr = _class_labels(y_train, "y_train", xtr.shape[0], names)
    yte = _class_labels(y_test, "y_test", xte.shape[0], names)
    per_class = np.bincount(ytr, minlength=len(names)).astype(np.float64)
    weights = (ytr.size / (len(names) * per_class))[ytr]
    clf = HistGradientBoostingClassifier(max_iter=max_iter, early_stopping=False, random_state=seed)
    limit = (
        threadpool_limits(limits=n_threads, user_api="openmp")
        if n_threads is not None
        else contextlib.nullcontext()
    )
    with limit:
        clf.fit(xtr, ytr, sample_weight=weights)
        pred = clf.predict(xte).astype(np.int64)
    result = _confusion_result(yte, pred, names, ytr.size)
    logger.info(
        "BDT on %d features: balanced accuracy %.4f (%d training, %d test events)",
        xtr.shape[1],
        result["accuracy"],
        ytr.size,
        yte.size,
    )
    return result


# ------------------------------------------------------------------- fully supervised
def supervised_config(
    train_config: TrainConfig, *, latent_dim: int = SUPERVISED_LATENT_DIM
) -> TrainConfig:
    """The training settings of the fully supervised classifier, from the encoder's.

    The encoder's settings (architecture, optimiser, schedule, batches, sampling, early
    stopping, seed, device) with the objective replaced by cross-entropy: method
    ``vicreg_ce`` with ``alpha = 0`` (no VICReg term; the second view of an event is
    another event of its class, so every batch's cross-entropy counts each event twice
    and equals the plain cross-entropy of the batch), no augmentation, no projection head
    (the linear classifier sits on the encoder output), ``latent_dim`` for the encoder
    output and ``test_fraction = 0`` (the test events are given separately; the trainer
    keeps one of its folds of the training events for validation).

    Parameters
    ----------
    train_config : TrainConfig
        The contrastive encoder's settings.
    latent_dim : int
        Width of the encoder output the linear classifier reads.

    Returns
    -------
    TrainConfig
    """
    if not isinstance(train_config, TrainConfig):
        raise TypeError(f"train_config must be a TrainConfig; got {type(train_config).__name__}")
    return dataclasses.replace(
        train_config,
        method="vicreg_ce",
        alpha=0.0,
        augmentation=None,
        head=None,
        latent_dim=latent_dim,
        test_fraction=0.0,
    )


def _relabelled(events: Any, y: np.ndarray, class_names: list[str], name: str) -> Events:
    if not isinstance(events, Events):
        raise TypeError(f"{name} must be Events; got {type(events).__name__}")
    return Events(
        events.particles,
        labels=y,
        process_names=tuple(class_names),
        event_ids=events.event_ids,
        layout=events.layout,
        event_features=events.event_features,
    )


def supervised_confusion(
    train_events: Events,
    y_train: Any,
    test_events: Events,
    y_test: Any,
    class_names: Sequence[str],
    train_config: TrainConfig,
    *,
    latent_dim: int = SUPERVISED_LATENT_DIM,
) -> dict[str, Any]:
    """The encoder architecture trained with cross-entropy: the supervised upper bound.

    Trains the encoder of ``train_config`` (settings from :func:`supervised_config`) with
    a linear classifier on its output on ``train_events`` labelled by class, predicts the
    class of every test event as the arg-max of the classifier's logits, and returns the
    confusion matrix of :func:`bdt_confusion`'s form.

    Parameters
    ----------
    train_events, test_events : Events
        Events in the encoder's layout.
    y_train, y_test : array_like of int, shape (N,)
        Class indices into ``class_names`` (e.g. from :func:`information_classes`);
        every class must occur in both.
    class_names : sequence of str
        At least two distinct names.
    train_config : TrainConfig
        The contrastive encoder's training settings.
    latent_dim : int
        Width of the encoder output the classifier reads.

    Returns
    -------
    dict
        ``matrix``, ``class_names``, ``accuracy``, ``n_train`` (the training events
        given; the trainer validates on one of its folds of them), ``n_test``.

    Raises
    ------
    TypeError
        If the events are not :class:`~contrastx.events.Events` or ``train_config`` is
        not a :class:`~contrastx.embed.TrainConfig`.
    ValueError
        On labels that do not match the events or the classes, or events of another
        layout than the trained model's.
    """
    names = _class_names(class_names)
    config = supervised_config(train_config, latent_dim=latent_dim)
    if not isinstance(train_events, Events):
        raise TypeError(f"train_events must be Events; got {type(train_events).__name__}")
    if not isinstance(test_events, Events):
        raise TypeError(f"test_events must be Events; got {type(test_events).__name__}")
    ytr = _class_labels(y_train, "y_train", len(train_events), names)
    yte = _class_labels(y_test, "y_test", len(test_events), names)
    train = _relabelled(train_events, ytr, names, "train_events")
    trainer = Trainer(config).fit(train)
    model = trainer.model_
    latent = embed(
        model, test_events, batch_size=max(config.batch_size, 1024), device=config.device
    )
    classifier = model.classifier
    assert classifier is not None  # vicreg_ce models have one
    with torch.no_grad():
        device = next(classifier.parameters()).device
        logits = classifier(torch.from_numpy(latent).to(device)).cpu().numpy()
    lut = np.array([names.index(n) for n in trainer.class_names_], dtype=np.int64)
    pred = lut[np.argmax(logits, axis=1)]
    result = _confusion_result(yte, pred, names, ytr.size)
    logger.info(
        "supervised %s classifier (D = %d, %d epochs): balanced accuracy %.4f (%d training, "
        "%d test events)",
        config.encoder,
        config.latent_dim,
        len(trainer.history_),
        result["accuracy"],
        ytr.size,
        yte.size,
    )
    return result
