r"""Results of a study: statistics from the toys, the Table VI-like table, JSON, figures.

For every embedding the null toys give the :math:`\chi^2` dof (their mean, the paper's
notebook; and the KS-optimal dof for reference); for every signal and injection
fraction the signal toys give the median :math:`Z` (bootstrap error and 68 % band) and
the power at 1, 2, 3 :math:`\sigma` with Clopper-Pearson intervals, from the
:math:`\chi^2` and from the empirical null (:mod:`contrastx.nplm.statistics`). The
table uses ``results.z_method`` at ``results.table_fraction``.

**Two uncertainties, kept apart.** Every embedding is run ``run.trainings`` times: a
trained embedding (contrastive, VAE) is retrained with a new seed, and every run of
every embedding draws its own NPLM reference, kernel centres and toys (run ``i`` of all
embeddings with the same seed). Every number is computed per run and then summarised
(:class:`TrainedValue`) by

* the *median over runs* (the reported value);
* the *toy error*: the statistical error of that median from the finite number of toys
  (for :math:`Z`: the bootstrap error of the median :math:`Z`, the signal toys of every
  run resampled; for the linear-evaluation accuracy: the standard error over the
  probe's folds; for the power: the Clopper-Pearson interval);
* the *run spread* (``training_spread`` in the files): the sample standard deviation
  (``ddof = 1``) of the per-run values, which are reported as well. It is what
  retraining the embedding and drawing a new reference move the result by; the toy
  error does not contain it.

The deterministic baselines (raw, leading pT) are built once, so their run spread is
the reference draw's alone (and their linear-evaluation accuracy has none). An
empirical median :math:`Z` whose median signal :math:`t` is beyond every null toy is
only a lower bound (:attr:`contrastx.nplm.statistics.MedianZ.lower_bound`) and is shown
as ``"> 2.33"`` (for 100 null toys). One embedding *beats* another on a signal only when
the difference of their median :math:`Z` exceeds ``results.beats_sigma`` standard
deviations, with the toy errors and run spreads of both in quadrature; every pair is
tested, in both directions.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import StudyConfig

logger = logging.getLogger(__name__)

__all__ = [
    "RESULTS_FORMAT",
    "TrainedValue",
    "build_results",
    "combine_median_z",
    "combine_values",
    "compare_embeddings",
    "markdown_table",
    "toy_statistics",
]

RESULTS_FORMAT = 2
"""Version of ``results.json`` and the table layout (enters the results stage's key)."""

PAPER = "Metzger et al., arXiv 2502.15926"
"""The primary paper whose tables and figures the study mirrors."""


# ------------------------------------------------------------------ one training
def toy_statistics(t0: np.ndarray, t1: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Median Z and power (chi^2 with dof = null mean, and empirical) of one signal run."""
    from contrastx.nplm import statistics as st

    dof = st.fit_chi2_dof(t0, "mean").dof
    return {
        "n_signal_toys": int(t1.size),
        "t_signal_median": float(np.median(t1)),
        "median_z": {
            "chi2": st.median_z(t1, t0, method="chi2", dof=dof, seed=seed).as_dict(),
            "empirical": st.median_z(t1, t0, method="empirical", seed=seed).as_dict(),
        },
        "power": {
            "chi2": [p.as_dict() for p in st.power(t1, t0, method="chi2", dof=dof)],
            "empirical": [p.as_dict() for p in st.power(t1, t0, method="empirical")],
        },
    }


def _null_statistics(t0: np.ndarray) -> dict[str, Any]:
    from contrastx.nplm import statistics as st

    fits = {m: st.fit_chi2_dof(t0, m).as_dict() for m in ("mean", "ks")}
    return {
        "n_null_toys": int(t0.size),
        "t_mean": float(t0.mean()),
        "t_std": float(t0.std(ddof=1)),
        "chi2": fits,
    }


# ------------------------------------------------------------ over trainings
def _middle(values: Sequence[float]) -> list[int]:
    """Indices of the value(s) the median of ``values`` is made of (one or two)."""
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    n = len(order)
    if n == 0:
        raise ValueError("no values")
    return [int(order[(n - 1) // 2])] if n % 2 else [int(order[n // 2 - 1]), int(order[n // 2])]


def _spread(values: Sequence[float], trained: bool) -> float:
    """Sample std (ddof = 1) over runs; for one run 0 (deterministic) or NaN (unknown)."""
    if len(values) < 2:
        return 0.0 if not trained else float("nan")
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1))


@dataclass(frozen=True)
class TrainedValue:
    """A quantity measured once per training of an embedding, summarised over trainings.

    Attributes
    ----------
    value : float
        Median over the trainings (the value itself for one training or a baseline).
    stat_err : float
        Toy (statistical) error of ``value``: for a median :math:`Z` the bootstrap error
        of the median over trainings, for an accuracy the fold standard error (NaN:
        unknown).
    spread : float
        Run spread: sample standard deviation (``ddof = 1``) of ``values`` (retraining
        and new reference draws; for a deterministic baseline the reference draws); with
        one run 0 for a deterministic quantity, NaN for a trained one (unknown).
    values : tuple of float
        Per-training values, in training order.
    trained : bool
        Whether the embedding is trained (False: a deterministic baseline).
    lower_bound : bool
        ``value`` is only a lower bound (an empirical median :math:`Z` at its resolution
        limit in a training the median is made of).
    values_lower_bound : tuple of bool
        Per-training lower-bound flags.
    """

    value: float
    stat_err: float
    spread: float
    values: tuple[float, ...]
    trained: bool
    lower_bound: bool = False
    values_lower_bound: tuple[bool, ...] = field(default=())

    @property
    def n_trainings(self) -> int:
        return len(self.values)

    @property
    def total_err(self) -> float:
        """Toy error and training spread in quadrature (NaN when either is unknown)."""
        return float(math.hypot(self.stat_err, self.spread))

    def text(self, digits: int = 2) -> str:
        """``"1.23 ± 0.05 ± 0.40"`` (value ± toy error ± training spread), ``"1.23 ± 0.05"``
        for a deterministic baseline, ``"> 2.33"`` for a lower bound; ``n/a`` for an
        unknown error."""
        if self.lower_bound:
            return f"> {self.value:.{digits}f}"

        def num(x: float) -> str:
            return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"

        out = f"{num(self.value)} ± {num(self.stat_err)}"
        return f"{out} ± {num(self.spread)}" if self.trained or len(self.values) > 1 else out

    def values_text(self, digits: int = 2) -> str:
        """The per-training values, ``"1.10, 1.23, > 2.33"``."""
        flags = self.values_lower_bound or (False,) * len(self.values)
        return ", ".join(
            f"> {v:.{digits}f}" if b else f"{v:.{digits}f}" for v, b in zip(self.values, flags)
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, stat_key: str = "toy_err") -> TrainedValue:
        """Inverse of :meth:`as_dict` (``None``, JSON's stand-in for NaN, read as NaN)."""

        def num(x: Any) -> float:
            return float("nan") if x is None else float(x)

        values = tuple(num(v) for v in d["values"])
        return cls(
            num(d["value"]),
            num(d.get(stat_key)),
            num(d.get("training_spread")),
            values,
            bool(d["trained"]),
            bool(d.get("lower_bound", False)),
            tuple(bool(b) for b in d.get("values_lower_bound", ())),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "toy_err": self.stat_err,
            "training_spread": self.spread,
            "total_err": self.total_err,
            "values": list(self.values),
            "n_trainings": self.n_trainings,
            "trained": self.trained,
            "lower_bound": self.lower_bound,
            "values_lower_bound": list(self.values_lower_bound or (False,) * self.n_trainings),
        }


def combine_values(
    values: Sequence[float], errors: Sequence[float], *, trained: bool
) -> TrainedValue:
    """Median over trainings of per-training ``values`` with statistical ``errors``.

    The statistical error of the median is the error of the training it is (or the
    quadrature mean of the two it averages).
    """
    vals = [float(v) for v in values]
    errs = [float(e) for e in errors]
    if not vals or len(vals) != len(errs):
        raise ValueError(f"need as many errors as values (>= 1); got {len(vals)}, {len(errs)}")
    mid = _middle(vals)
    stat = float(math.sqrt(sum(errs[i] ** 2 for i in mid)) / len(mid))
    return TrainedValue(float(np.median(vals)), stat, _spread(vals, trained), tuple(vals), trained)


def _z_of_t(t: np.ndarray, t0: np.ndarray, method: str, dof: float | None) -> np.ndarray:
    from contrastx.nplm import statistics as st

    if method == "chi2":
        return np.asarray(st.chi2_z(t, float(dof)), dtype=np.float64)  # type: ignore[arg-type]
    return np.asarray(st.z_from_p(st.empirical_p_value(t, t0)), dtype=np.float64)


def combine_median_z(
    t_null: Sequence[np.ndarray],
    t_signal: Sequence[np.ndarray],
    *,
    method: str,
    trained: bool,
    seed: int = 0,
    n_boot: int = 1000,
) -> tuple[TrainedValue, list[Any]]:
    """Median :math:`Z` over trainings, its toy error and the training spread.

    Parameters
    ----------
    t_null, t_signal : sequence of array_like
        Each training's null and signal toys' :math:`t`.
    method : {"chi2", "empirical"}
        :math:`\\chi^2` with dof = the training's null mean, or the empirical null.
    trained : bool
        False for a deterministic baseline (one entry, no training spread).
    seed : int
        Bootstrap seed.
    n_boot : int
        Bootstrap resamples.

    Returns
    -------
    (TrainedValue, list of MedianZ)
        The summary, and each training's :class:`~contrastx.nplm.statistics.MedianZ`.

    Notes
    -----
    The toy error is the bootstrap standard error of the reported median over trainings:
    each resample draws the signal toys of every training with the same indices (the
    trainings' toys share one seed, so toy ``k`` holds the same events in every
    training), recomputes each training's median :math:`Z` and takes their median. For
    one training it is :attr:`MedianZ.z_err` itself.
    """
    from contrastx.nplm import statistics as st

    if len(t_null) != len(t_signal) or not t_null:
        raise ValueError("need the null and signal toys of every training (>= 1)")
    t0s = [np.asarray(t, dtype=np.float64) for t in t_null]
    t1s = [np.asarray(t, dtype=np.float64) for t in t_signal]
    dofs = [st.fit_chi2_dof(t0).dof if method == "chi2" else None for t0 in t0s]
    per = [
        st.median_z(t1, t0, method=method, dof=dof, seed=seed, n_boot=n_boot)  # type: ignore[arg-type]
        for t0, t1, dof in zip(t0s, t1s, dofs)
    ]
    values = [m.z for m in per]
    flags = tuple(bool(m.lower_bound) for m in per)
    mid = _middle(values)
    if len(per) == 1:
        toy_err = per[0].z_err
    else:
        zb = []
        for k, (t0, t1, dof) in enumerate(zip(t0s, t1s, dofs)):
            # Every run has its own toys: resample each independently.
            rng = np.random.default_rng([seed, k])
            meds = np.median(t1[rng.integers(0, t1.size, size=(n_boot, t1.size))], axis=1)
            zb.append(_z_of_t(meds, t0, method, dof))
        med = np.median(np.vstack(zb), axis=0)
        med = med[np.isfinite(med)]
        toy_err = float(np.std(med, ddof=1)) if med.size > 1 else float("nan")
    summary = TrainedValue(
        float(np.median(values)),
        float(toy_err),
        _spread(values, trained),
        tuple(float(v) for v in values),
        trained,
        lower_bound=any(flags[i] for i in mid),
        values_lower_bound=flags,
    )
    return summary, per


def _combine_power(per_training: list[list[dict[str, Any]]], trained: bool) -> list[dict]:
    """Per z level: median power over trainings, the Clopper-Pearson errors of the
    training(s) the median is made of, and the training spread."""
    out = []
    for level in zip(*per_training):
        vals = [float(p["power"]) for p in level]
        entry: dict[str, Any] = {"z": level[0]["z"], "values": vals, "trained": trained}
        if not all(math.isfinite(v) for v in vals):
            entry.update(power=float("nan"), err_lo=float("nan"), err_hi=float("nan"))
            entry["training_spread"] = float("nan")
        else:
            mid = _middle(vals)
            entry["power"] = float(np.median(vals))
            entry["err_lo"] = float(np.mean([level[i]["power"] - level[i]["lo"] for i in mid]))
            entry["err_hi"] = float(np.mean([level[i]["hi"] - level[i]["power"] for i in mid]))
            entry["training_spread"] = _spread(vals, trained)
        out.append(entry)
    return out


# ------------------------------------------------------------------ comparisons
def compare_embeddings(
    z: dict[str, TrainedValue], *, threshold: float = 2.0
) -> list[dict[str, Any]]:
    """Test every pair of embeddings, in both directions, for one signal.

    ``A`` beats ``B`` when :math:`Z_A - Z_B > k\\,\\sigma` with
    :math:`\\sigma^2` = the squared toy errors and training spreads of both and
    :math:`k` = ``threshold``. A lower bound counts at its value (conservative for the
    embedding it belongs to) and can never be beaten; two bounds cannot be ordered; a
    pair with an unknown uncertainty (a trained embedding with one training) is left
    undecided.

    Returns
    -------
    list of dict
        One per unordered pair: ``a``, ``b``, ``z_a``, ``z_b``, ``difference`` (a - b),
        ``sigma``, ``n_sigma`` (difference / sigma), ``verdict`` (``"a beats b"``,
        ``"b beats a"``, ``"no significant difference"`` or ``"undecided"``),
        ``winner``, ``loser`` and ``reason``.
    """
    out = []
    for a, b in itertools.combinations(z, 2):
        za, zb = z[a], z[b]
        diff = za.value - zb.value
        sigma = math.hypot(za.total_err, zb.total_err)
        if not math.isfinite(sigma):
            n_sigma = float("nan")
        elif sigma > 0:
            n_sigma = diff / sigma
        else:  # no uncertainty at all (never from toys; kept well defined)
            n_sigma = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        rec: dict[str, Any] = {
            "a": a,
            "b": b,
            "z_a": za.value,
            "z_b": zb.value,
            "difference": diff,
            "sigma": sigma,
            "n_sigma": n_sigma,
            "winner": None,
            "loser": None,
            "reason": None,
        }
        if za.lower_bound and zb.lower_bound:
            rec.update(verdict="undecided", reason="both at the empirical limit (lower bounds)")
        elif not math.isfinite(sigma):
            unknown = [n for n, v in ((a, za), (b, zb)) if not math.isfinite(v.total_err)]
            rec.update(
                verdict="undecided",
                reason=f"uncertainty of {', '.join(unknown)} unknown (a training spread needs "
                "run.trainings >= 2)",
            )
        elif abs(rec["n_sigma"]) > threshold:
            win, lose = (a, b) if diff > 0 else (b, a)
            if z[lose].lower_bound:
                rec.update(
                    verdict="undecided",
                    reason=f"the median Z of {lose} is a lower bound (empirical limit)",
                )
            else:
                rec.update(
                    verdict=f"{'a' if diff > 0 else 'b'} beats {'b' if diff > 0 else 'a'}",
                    winner=win,
                    loser=lose,
                )
        else:
            rec.update(verdict="no significant difference")
        out.append(rec)
    return out


# ------------------------------------------------------------------ tables
def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _method_words(method: str) -> str:
    return "χ² null, dof = null mean" if method == "chi2" else "empirical null"


def _trainings_text(n: int, trained: bool) -> str:
    if trained:
        return str(n)
    return "built once" if n == 1 else f"built once, {n} draws"


def build_results(
    folder: Path,
    config: StudyConfig,
    events: Any,
    embeds: dict[str, list[Any]],
    toys: dict[str, list[Any]],
    stage_times: list[dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write ``results.json``, ``table.md``, ``table.csv``, ``figures/`` and ``report.html``.

    ``embeds`` and ``toys`` map each embedding's name to its stages, one per training.
    Returns the stage's ``(outputs, info)``.
    """
    from contrastx._json import dumps
    from contrastx.nplm.statistics import empirical_z_limit

    rc, nc = config.results, config.nplm
    signals = list(config.events.signals)
    seed = config.run.seed
    layout = config.layout
    logger.info(
        "[results] statistics of %d embeddings x %d signals x %d fractions",
        len(config.embeddings),
        len(signals),
        len(nc.fractions),
    )
    per_emb: dict[str, Any] = {}
    summaries: dict[str, dict[str, dict[str, dict[str, TrainedValue]]]] = {}
    for spec in config.embeddings:
        emb_runs, toy_runs = embeds[spec.name], toys[spec.name]
        if not spec.trained:  # one embedding, a toy set per reference draw
            emb_runs = emb_runs[:1] * len(toy_runs)
        t0s = [_read_t(tr.path("null"), "null") for tr in toy_runs]
        trainings = [
            {
                "training": er.info.get("training"),
                "seed": er.info.get("training_seed"),
                "stage": er.name,
                "train_seconds": er.info.get("train_seconds"),
                "linear_eval": er.info.get("linear_eval"),
                "null": _null_statistics(t0),
                "toy_runs": tr.info.get("runs"),
                "toy_stage": tr.name,
                "toy_seed": tr.info.get("seed"),
            }
            for er, tr, t0 in zip(emb_runs, toy_runs, t0s)
        ]
        entry: dict[str, Any] = {
            "kind": spec.kind,
            "family": spec.family_on(layout),
            "dimension": spec.dimension_on(layout),
            "trained": spec.trained,
            "n_trainings": len(toy_runs),
            "settings": spec.as_dict(),
            "trainings": trainings,
            "linear_eval": _combine_linear_eval(trainings, spec.trained),
            "signals": {},
        }
        summaries[spec.name] = {}
        for s in signals:
            entry["signals"][s] = {}
            summaries[spec.name][s] = {}
            for f in nc.fractions:
                fk = f"{f:g}"
                t1s = [_read_t(tr.path(f"{s}@{fk}"), "signal") for tr in toy_runs]
                per_training = [toy_statistics(t0, t1, seed=seed) for t0, t1 in zip(t0s, t1s)]
                mz, sm = {}, {}
                for method in ("chi2", "empirical"):
                    tv, _ = combine_median_z(
                        t0s, t1s, method=method, trained=spec.trained, seed=seed
                    )
                    sm[method] = tv
                    mz[method] = tv.as_dict()
                    if method == "empirical":
                        mz[method]["limit"] = empirical_z_limit(int(t0s[0].size))
                entry["signals"][s][fk] = {
                    "fraction": f,
                    "n_sig_expected": f * nc.n_bkg,
                    "median_z": mz,
                    "power": {
                        m: _combine_power([r["power"][m] for r in per_training], spec.trained)
                        for m in ("chi2", "empirical")
                    },
                    "trainings": per_training,
                }
                summaries[spec.name][s][fk] = sm
        per_emb[spec.name] = entry

    frac_key = f"{rc.table_fraction:g}"
    method = rc.z_method
    table_md, csv_rows = _tables(config, per_emb, summaries, signals, frac_key, method)
    (folder / "table.md").write_text(table_md)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(csv_rows[0]))
    writer.writeheader()
    writer.writerows(csv_rows)
    (folder / "table.csv").write_text(buf.getvalue())

    effect = {
        "fraction": rc.table_fraction,
        "z_method": method,
        "threshold_sigma": rc.beats_sigma,
        "comparisons": {
            s: compare_embeddings(
                {n: summaries[n][s][frac_key][method] for n in per_emb}, threshold=rc.beats_sigma
            )
            for s in signals
        },
    }
    logger.info("[results] figures")
    figures = _figures(folder / "figures", config, per_emb, summaries, embeds, toys)
    result = {
        "format": "contrastx-study-results",
        "format_version": RESULTS_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": config.to_dict(),
        "events": events.info,
        "layout": {"name": layout.name, "sha256": layout.fingerprint},
        "embeddings": per_emb,
        "table": {"fraction": rc.table_fraction, "z_method": method, "rows": csv_rows},
        "effect": effect,
        "figures": figures,
        "stage_times": stage_times,
    }
    text = dumps(result, indent=2, default=str)
    (folder / "results.json").write_text(text)
    from contrastx._json import json_ready

    from .report import write_report

    write_report(folder / "report.html", json_ready(result), table_md)
    outputs = {
        "results": "results.json",
        "table_md": "table.md",
        "table_csv": "table.csv",
        "report": "report.html",
    }
    return outputs, {"figures": figures, "effect": json_ready(effect)}


def _combine_linear_eval(trainings: list[dict[str, Any]], trained: bool) -> dict[str, Any]:
    """Linear-evaluation accuracy over trainings (or why it was skipped)."""
    les = [t["linear_eval"] or {} for t in trainings]
    if not les or any("mean" not in le for le in les):
        reasons = {le.get("skipped", "not computed") for le in les if "mean" not in le}
        return {"skipped": "; ".join(sorted(reasons)) or "not computed"}
    tv = combine_values([le["mean"] for le in les], [le["sem"] for le in les], trained=trained)
    d = tv.as_dict()
    d["fold_err"] = d.pop("toy_err")
    del d["lower_bound"], d["values_lower_bound"]  # an accuracy is never a bound
    d.update(classes=les[0]["classes"], n_events=les[0]["n_events"])
    return d


def _tables(
    config: StudyConfig,
    per_emb: dict[str, Any],
    summaries: dict[str, Any],
    signals: list[str],
    frac_key: str,
    method: str,
) -> tuple[str, list[dict[str, Any]]]:
    """The Table VI-like Markdown (summary and per-training values) and the CSV rows."""
    from contrastx.nplm.statistics import empirical_z_limit

    rc, nc = config.results, config.nplm
    header = ["embedding", "D", "runs", *signals]
    rows, per_rows, csv_rows = [], [], []
    for name, e in per_emb.items():
        row = [name, str(e["dimension"]), _trainings_text(e["n_trainings"], e["trained"])]
        per_row = [name, str(e["dimension"])]
        for s in signals:
            tv: TrainedValue = summaries[name][s][frac_key][method]
            row.append(tv.text())
            per_row.append(tv.values_text())
            p3 = e["signals"][s][frac_key]["power"][method][2]
            csv_rows.append(
                {
                    "embedding": name,
                    "dimension": e["dimension"],
                    "signal": s,
                    "fraction": rc.table_fraction,
                    "z_method": method,
                    "median_z": tv.value,
                    "lower_bound": tv.lower_bound,
                    "toy_err": tv.stat_err,
                    "training_spread": tv.spread,
                    "total_err": tv.total_err,
                    "n_trainings": tv.n_trainings,
                    "trained": tv.trained,
                    "per_training": ";".join(f"{v:.6g}" for v in tv.values),
                    "power_3sigma": p3["power"],
                }
            )
        rows.append(row)
        per_rows.append(per_row)
    n = config.run.trainings
    bound_note = ""
    if method == "empirical":
        bound_note = (
            f" An empirical Z cannot exceed {empirical_z_limit(int(nc.n_toys)):.2f} with "
            f"{nc.n_toys} null toys: '>' marks a median signal t beyond every null toy "
            "(a lower bound)."
        )
    caption = (
        f"Median Z ({_method_words(method)}) per embedding and signal, as Table VI of "
        f"{PAPER}; {rc.table_fraction * 100:g} % signal injection, N_R = {nc.n_ref:,}, "
        f"N(B) = {nc.n_bkg:,.0f}, M = {nc.M}, {nc.n_toys} null / {nc.signal_toys} signal "
        f"toys per run. Every embedding has {n} runs: a trained embedding is retrained "
        "with a new seed, and every run draws its own NPLM reference, kernel centres and "
        "toys (run i of every embedding from the same seed). Value: median over the runs "
        "± toy error (bootstrap error of that median over the signal toys) ± run spread "
        "(sample standard deviation, ddof = 1, of the runs' median Z: retraining and "
        "reference draw; the raw and leading-pT baselines are built once, so theirs is the "
        "reference draw's alone)." + bound_note
    )
    md = f"{caption}\n\n" + markdown_table(header, rows)
    if per_rows:
        md += "\nMedian Z of every run (run 0, 1, ...), same settings:\n\n" + markdown_table(
            ["embedding", "D", *signals], per_rows
        )
    return md, csv_rows


def _read_t(path: Path, group: str) -> np.ndarray:
    """The ``t`` column of the ``"null"`` or ``"signal"`` group of a toy results file."""
    from contrastx.nplm import read_toy_results

    return np.asarray(read_toy_results(path)[group]["t"], dtype=np.float64)


def _figures(
    fig_dir: Path,
    config: StudyConfig,
    per_emb: dict[str, Any],
    summaries: dict[str, Any],
    embeds: dict[str, list[Any]],
    toys: dict[str, list[Any]],
) -> dict[str, Any]:
    """All figures as PNG; key -> {"path": relative path, "title": words}."""
    from contrastx.embed import read_embedding
    from contrastx.plots import save_figure
    from contrastx.plots.latent import plot_latent_by_process
    from contrastx.plots.nplm import plot_toy_distributions
    from contrastx.plots.study import (
        StudyPoint,
        plot_linear_eval_vs_dimension,
        plot_median_z_vs_dimension,
        plot_power_vs_dimension,
    )

    rc, nc = config.results, config.nplm
    signals = list(config.events.signals)
    method = rc.z_method
    fig_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}

    def save(fig: Any, stem: str, key: str, title: str) -> None:
        paths = save_figure(fig, fig_dir / stem, ("png",))
        out[key] = {"path": f"figures/{paths[0].name}", "title": " ".join(title.split())}

    def fin(x: float) -> float:
        return float(x) if math.isfinite(x) else 0.0

    n = config.run.trainings
    over = f"median over {n} trainings" if n > 1 else "one training"
    for f in nc.fractions:
        fk = f"{f:g}"
        zpts, ppts = [], []
        for name, e in per_emb.items():
            for s in signals:
                tv: TrainedValue = summaries[name][s][fk][method]
                err = fin(tv.stat_err)
                zpts.append(
                    StudyPoint(e["family"], e["dimension"], tv.value, err, err, s, name,
                               spread=fin(tv.spread), lower_bound=tv.lower_bound)
                )  # fmt: skip
                p3 = e["signals"][s][fk]["power"][method][2]
                ppts.append(
                    StudyPoint(e["family"], e["dimension"], fin(p3["power"]), fin(p3["err_lo"]),
                               fin(p3["err_hi"]), s, name, spread=fin(p3["training_spread"]))
                )  # fmt: skip
        pct = f"{f * 100:g} %"
        title = f"Median Z against D, {pct} injection, {over}\n(as Fig. III of {PAPER})"
        save(plot_median_z_vs_dimension(zpts, title=title), f"median_z_vs_dim_{fk}",
             f"median_z_{fk}", title)  # fmt: skip
        title = f"Power at 3σ against D, {pct} injection, {over}\n(as Figs. IX-X of {PAPER})"
        save(plot_power_vs_dimension(ppts, title=title), f"power3_vs_dim_{fk}",
             f"power3_{fk}", title)  # fmt: skip
    lpts = []
    for name, e in per_emb.items():
        le = e["linear_eval"]
        if "value" in le:
            err = fin(le["fold_err"])
            lpts.append(StudyPoint(e["family"], e["dimension"], le["value"], err, err, "", name,
                                   spread=fin(le["training_spread"])))  # fmt: skip
    if lpts:
        title = f"Linear evaluation accuracy against D, {over}\n(as Fig. II of {PAPER})"
        save(plot_linear_eval_vs_dimension(lpts, title=title), "linear_eval_vs_dim",
             "linear_eval", title)  # fmt: skip
    # Fig. IV: t distributions of every embedding for each signal at the table fraction,
    # for the training whose median Z is the median one (the lower of two for even n).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fk = f"{rc.table_fraction:g}"
    names = list(per_emb)
    ncols = 2 if len(names) > 1 else 1
    nrows = -(-len(names) // ncols)
    for s in signals:
        fig = Figure(figsize=(6.5 * ncols, 4.6 * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        for i, name in enumerate(names):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            tv = summaries[name][s][fk][method]
            j = _middle(tv.values)[0]
            t0 = _read_t(toys[name][j].path("null"), "null")
            t1 = _read_t(toys[name][j].path(f"{s}@{fk}"), "signal")
            which = (
                f", training {j} (median of {tv.n_trainings})" if per_emb[name]["trained"] else ""
            )
            plot_toy_distributions(
                t0, t1, dof=float(per_emb[name]["trainings"][j]["null"]["chi2"]["mean"]["dof"]),
                ax=ax, title=f"{name} (D = {per_emb[name]['dimension']}){which}",
                signal_label=f"{s} toys",
            )  # fmt: skip
        title = f"NPLM t of {s} at {rc.table_fraction * 100:g} % (as Fig. IV of {PAPER})"
        fig.suptitle(title)
        save(fig, f"toys_{s}_{fk}", f"toys_{s}", title)
    # Latent map coloured by process (training 0 of a trained embedding).
    lat = rc.latent_embedding or next(
        (s.name for s in config.embeddings if s.kind == "contrastive"), config.embeddings[0].name
    )
    emb = read_embedding(embeds[lat][0].path("embedding"))
    rng = np.random.default_rng(np.random.SeedSequence([config.run.seed, 9]))
    pick = []
    for k in np.unique(emb.labels):
        idx = np.flatnonzero(emb.labels == k)
        pick.append(rng.choice(idx, min(idx.size, rc.latent_events), replace=False))
    idx = np.sort(np.concatenate(pick))
    logger.info("[results] latent-space map of %s (%d events, %s)", lat, idx.size, rc.latent_method)
    which = " (training 0)" if per_emb[lat]["trained"] else ""
    title = f"Latent space of {lat}{which}, coloured by process"
    fig = plot_latent_by_process(
        emb.embedding[idx], emb.labels[idx], emb.process_names, method=rc.latent_method,
        seed=config.run.seed, title=title,
    )  # fmt: skip
    save(fig, f"latent_{lat}", "latent_map", f"{title} ({fig.contrastx_method} projection)")
    out["latent_map"].update(method=fig.contrastx_method, embedding=lat)
    return out
