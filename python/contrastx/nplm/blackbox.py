r"""Black-box search: NPLM on luminosity-sized splits of an unlabelled sample.

As in the primary paper (Sec. V-D, Table VII, Fig. VI): the embedded black box is cut
into :math:`k` splits (default 10), each the size of one expected data sample
(:math:`N(B)` = its event count unless given). Every split is tested :math:`r` times
(default 10), each time against a freshly drawn reference of :math:`N_R` background
events (and fresh centres), so the spread over the :math:`r` runs measures the
reference's finite-size effect. The null distribution is calibrated with toys run the
same way (:class:`~contrastx.nplm.ToyEngine` in ``"paper"`` mode: reference and
centres re-drawn per toy, data of :math:`\mathrm{Poisson}(N(B))` reference-pool
events), and a :math:`\chi^2` is fitted to it (dof = null mean) unless the empirical
null is asked for.

Per split: :math:`\bar Z_i` = mean over the runs of :math:`Z(t_{ij})`, with its
standard deviation. Global significance: the most significant split
:math:`i^* = \arg\max_i \bar Z_i`, Bonferroni-corrected for the :math:`k` splits,

.. math:: p_\mathrm{glob} = \min\big(1,\ k\,\Phi(-\bar Z_{i^*})\big), \qquad
          Z_\mathrm{glob} = \Phi^{-1}(1 - p_\mathrm{glob}),

and its spread from the same correction applied run by run
(:math:`\min(1, k \min_i p_{ij})` for each run :math:`j`).

:func:`write_fast_black_box` writes a black-box file from the fast generator
(background plus a hidden signal; labels hidden, truth in a separate file) to try the
search blind without Pythia. It is for quick tests only, never physics evidence.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import stats

from contrastx.options import OptionsError, embedded, key_name, option, options, to_dict

from . import statistics as st
from .kernel import sigma_heuristic
from .options import SolverOptions, ToyOptions
from .solver import NPLMFit
from .toys import ToyEngine

__all__ = [
    "BlackBoxConfig",
    "BlackBoxResult",
    "global_significance",
    "read_truth",
    "run_black_box",
    "split_indices",
    "write_fast_black_box",
]

_SPLIT_STREAM = 10
_SIGMA_STREAM = 11


@options(section="blackbox")
class BlackBoxConfig:
    """Settings of a black-box search.

    The NPLM fits (and the null toys) take every key of
    :class:`~contrastx.nplm.SolverOptions` directly (``M``, ``lam``, ``sigma``, ``dtype``,
    ...); ``sigma`` unset is :func:`~contrastx.nplm.sigma_heuristic` on one reference draw,
    used by every run.
    """

    n_splits: int = option(10, "k, number of luminosity-sized splits (paper: 10).", ge=1)
    n_resample: int = option(
        10, "r, NPLM runs per split, each with a re-drawn reference (paper: 10).", ge=1
    )
    n_ref: int = option(20_000, "Reference size N_R of every run.", ge=1)
    n_expected: float | None = option(
        None,
        "Expected background per split N(B) (sets w = N(B)/N_R and the null toys' size); "
        "unset: the mean split size.",
        gt=0,
    )
    n_null: int = option(100, "Null toys calibrating t (paper-mode toys).", ge=2)
    z_method: Literal["chi2", "empirical"] = option(
        "chi2", "Z from a chi^2 fitted to the null toys (dof = their mean) or the empirical null."
    )
    standardize: bool = option(True, "Standardise with the reference pool's mean and std.")
    shuffle: bool = option(
        False, "Split a seeded permutation of the events instead of the file order."
    )
    seed: int = option(0, "Master seed of the splits, references, centres and toys.", ge=0)
    solver_options: SolverOptions = embedded(SolverOptions, "Settings of every fit.", M=300)

    def _check(self) -> None:
        if self.n_ref < self.M:
            raise OptionsError(
                f"need {key_name(self, 'M')} <= {key_name(self, 'n_ref')}; got M={self.M}, "
                f"n_ref={self.n_ref}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Every setting, flat (:func:`contrastx.options.to_dict`)."""
        return to_dict(self)


@dataclass
class BlackBoxResult:
    """Outcome of :func:`run_black_box` (every number of Table VII and Fig. V / VI).

    Attributes
    ----------
    t : numpy.ndarray, shape (k, r)
        :math:`t` of every split and run.
    z : numpy.ndarray, shape (k, r)
        Their :math:`Z`.
    z_mean, z_std : numpy.ndarray, shape (k,)
        Mean and standard deviation (ddof 1; 0 for r = 1) of :math:`Z` over the runs.
    split_sizes : numpy.ndarray, shape (k,)
    t_null : numpy.ndarray
        Null toys' :math:`t`.
    dof : float or None
        :math:`\\chi^2` dof (None for the empirical null).
    best_split : int
        :math:`i^*`.
    global_p, global_z : float
        Bonferroni-corrected significance of the most significant split.
    global_z_runs : numpy.ndarray, shape (r,)
        The correction applied run by run (spread of ``global_z``).
    sigma, n_expected : float
    best_run : int
        Run of :math:`i^*` with the largest :math:`t` (used for the scores).
    best_indices : numpy.ndarray
        Black-box row indices of split :math:`i^*`.
    best_scores : numpy.ndarray
        NPLM score :math:`\\sigma(f(x))` of those events in run ``best_run``.
    config : dict
    timing : dict
    """

    t: np.ndarray
    z: np.ndarray
    z_mean: np.ndarray
    z_std: np.ndarray
    split_sizes: np.ndarray
    t_null: np.ndarray
    dof: float | None
    best_split: int
    global_p: float
    global_z: float
    global_z_runs: np.ndarray
    sigma: float
    n_expected: float
    best_run: int
    best_indices: np.ndarray
    best_scores: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def global_z_std(self) -> float:
        """Spread of the run-by-run global Z.

        Runs whose Bonferroni-corrected p is capped at 1 have Z = -inf (no evidence at
        all) and are left out; with fewer than two finite runs the spread is 0.
        """
        g = self.global_z_runs[np.isfinite(self.global_z_runs)]
        return float(np.std(g, ddof=1)) if g.size > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Every number (JSON-friendly); the per-event scores are left out."""
        return {
            "n_splits": int(self.t.shape[0]),
            "n_resample": int(self.t.shape[1]),
            "t": self.t.tolist(),
            "z": self.z.tolist(),
            "z_mean": self.z_mean.tolist(),
            "z_std": self.z_std.tolist(),
            "split_sizes": self.split_sizes.tolist(),
            "t_null": self.t_null.tolist(),
            "t_null_mean": float(self.t_null.mean()),
            "dof": self.dof,
            "best_split": self.best_split,
            "best_run": self.best_run,
            "global_p": self.global_p,
            "global_z": self.global_z,
            "global_z_runs": self.global_z_runs.tolist(),
            "global_z_std": self.global_z_std,
            "sigma": self.sigma,
            "n_expected": self.n_expected,
            "n_scored": int(self.best_scores.size),
            "n_score_above_half": int((self.best_scores > 0.5).sum()),
            "config": self.config,
            "timing": self.timing,
        }

    def table_rows(self, name: str) -> tuple[list[str], list[str]]:
        """Header and one row of a Table VII-like table: mean Z +- std per split, global."""
        k = self.t.shape[0]
        header = ["embedding", *[f"split {i}" for i in range(k)], "global"]
        row = [name]
        for i in range(k):
            cell = f"{self.z_mean[i]:.2f} ± {self.z_std[i]:.2f}"
            row.append(f"**{cell}**" if i == self.best_split else cell)
        row.append(f"{self.global_z:.2f} ± {self.global_z_std:.2f}")
        return header, row

    def table_markdown(self, name: str = "embedding") -> str:
        header, row = self.table_rows(name)
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * len(header)) + "|",
            "| " + " | ".join(row) + " |",
        ]
        return "\n".join(lines) + "\n"


def split_indices(
    n: int, n_splits: int, *, shuffle: bool = False, seed: int = 0
) -> list[np.ndarray]:
    """Row indices of ``n_splits`` near-equal splits of ``range(n)`` (file order or shuffled)."""
    if n_splits < 1 or n < n_splits:
        raise ValueError(f"cannot cut {n} events into {n_splits} non-empty splits")
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM])).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_splits)]


def global_significance(z_split: Any, n_tests: int | None = None) -> tuple[float, float, int]:
    r"""Bonferroni global significance of the most significant split.

    Parameters
    ----------
    z_split : array_like, shape (k,)
        Significance of every split.
    n_tests : int, optional
        Number of tests to correct for (default ``k``).

    Returns
    -------
    (p_global, z_global, best) : (float, float, int)
        :math:`p = \min(1, n\,\Phi(-\max_i Z_i))`, :math:`Z = \Phi^{-1}(1-p)` (log space)
        and :math:`\arg\max_i Z_i`.
    """
    z = np.asarray(z_split, dtype=np.float64).reshape(-1)
    if z.size == 0 or not np.isfinite(z).all():
        raise ValueError("z_split must be a non-empty array of finite values")
    n = z.size if n_tests is None else int(n_tests)
    if n < 1:
        raise ValueError(f"n_tests must be >= 1; got {n}")
    best = int(np.argmax(z))
    log_p = float(stats.norm.logsf(z[best]))
    lg = min(0.0, math.log(n) + log_p)
    return math.exp(lg), float(st.z_from_log_p(lg)), best


def _standardize(ref_pool: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = ref_pool.mean(0)
    std = ref_pool.std(0)
    std[std == 0] = 1.0
    return [(x - mean) / std for x in (ref_pool, *others)]


def run_black_box(
    data: Any,
    reference: Any,
    config: BlackBoxConfig | None = None,
    *,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BlackBoxResult:
    """Run the black-box search on an embedded sample.

    Parameters
    ----------
    data : array_like, shape (N, D)
        The embedded black box.
    reference : array_like, shape (N_pool, D)
        Embedded background pool the references (and null toys) are drawn from; it
        needs at least ``n_ref + N(B) + 6 sqrt(N(B)) + 10`` events.
    config : BlackBoxConfig, optional
    device : str, optional
        Torch device of the fits.
    progress : callable, optional
        Called with a one-line message after each split and after the null toys.

    Returns
    -------
    BlackBoxResult
    """

    cfg = config or BlackBoxConfig()
    x = np.asarray(data, dtype=np.float64)
    pool = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or pool.ndim != 2 or x.shape[1] != pool.shape[1]:
        raise ValueError(
            f"data and reference must be (N, D) with the same D; got {x.shape} and {pool.shape}"
        )
    if not (np.isfinite(x).all() and np.isfinite(pool).all()):
        raise ValueError("data or reference contains NaN or inf")
    if cfg.standardize:
        pool, x = _standardize(pool, x)
    splits = split_indices(x.shape[0], cfg.n_splits, shuffle=cfg.shuffle, seed=cfg.seed)
    sizes = np.array([s.size for s in splits], dtype=np.int64)
    n_exp = float(cfg.n_expected) if cfg.n_expected is not None else float(sizes.mean())
    if pool.shape[0] < cfg.n_ref:
        raise ValueError(f"the reference pool has {pool.shape[0]} events; n_ref = {cfg.n_ref}")
    if cfg.sigma is None:
        rng0 = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SIGMA_STREAM]))
        sigma = sigma_heuristic(pool[rng0.choice(pool.shape[0], cfg.n_ref, replace=False)])
    else:
        sigma = float(cfg.sigma)
    weight = n_exp / cfg.n_ref

    def fit(i: int, j: int) -> NPLMFit:
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SPLIT_STREAM, i, j]))
        ref = pool[rng.choice(pool.shape[0], cfg.n_ref, replace=False)]
        return NPLMFit(sigma, options=cfg.solver_options, device=device, random_state=rng).fit(
            x[splits[i]], ref, weight
        )

    t0 = time.perf_counter()
    t = np.empty((cfg.n_splits, cfg.n_resample))
    for i in range(cfg.n_splits):
        for j in range(cfg.n_resample):
            t[i, j] = fit(i, j).t_
        if progress is not None:
            progress(f"split {i}: {sizes[i]} events, mean t = {t[i].mean():.2f}")
    t_splits = time.perf_counter() - t0

    t1 = time.perf_counter()
    engine = ToyEngine(
        pool,
        config=ToyOptions(
            n_ref=cfg.n_ref,
            n_bkg=n_exp,
            mode="paper",
            seed=cfg.seed,
            solver_options=dataclasses.replace(cfg.solver_options, sigma=sigma),
        ),
        device=device,
    )
    t_null = np.concatenate([b.t for b in engine.run(range(cfg.n_null))])
    t_null_s = time.perf_counter() - t1
    if progress is not None:
        progress(f"null: {t_null.size} toys, mean t = {t_null.mean():.2f}")

    if cfg.z_method == "chi2":
        dof: float | None = float(st.fit_chi2_dof(t_null, "mean").dof)
        log_p = np.asarray(st.chi2_log_p(t, dof), dtype=np.float64).reshape(t.shape)
    else:
        dof = None
        log_p = np.log(np.asarray(st.empirical_p_value(t, t_null))).reshape(t.shape)
    z = np.asarray(st.z_from_log_p(log_p), dtype=np.float64).reshape(t.shape)
    z_mean = z.mean(1)
    z_std = z.std(1, ddof=1) if cfg.n_resample > 1 else np.zeros(cfg.n_splits)
    p_glob, z_glob, best = global_significance(z_mean)
    z_runs = np.array(
        [st.bonferroni(log_p=log_p[:, j])[1] for j in range(cfg.n_resample)], dtype=np.float64
    )
    best_run = int(np.argmax(t[best]))
    best_fit = fit(best, best_run)
    scores = st.nplm_score(best_fit.f_data_)
    return BlackBoxResult(
        t=t,
        z=z,
        z_mean=z_mean,
        z_std=z_std,
        split_sizes=sizes,
        t_null=t_null,
        dof=dof,
        best_split=best,
        global_p=p_glob,
        global_z=z_glob,
        global_z_runs=z_runs,
        sigma=float(sigma),
        n_expected=n_exp,
        best_run=best_run,
        best_indices=splits[best],
        best_scores=np.asarray(scores, dtype=np.float64),
        config={**cfg.as_dict(), "weight": weight, "device": str(device or "cpu")},
        timing={"splits_s": t_splits, "null_s": t_null_s},
    )


# ------------------------------------------------------------------ fast black box
def write_fast_black_box(
    path: str | Path,
    truth_path: str | Path,
    *,
    n_background: int,
    signal: str,
    fraction: float,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a black box from the fast generator: background plus a hidden signal.

    The background is the ADC2021 mixture (``generate_sample``, seed ``seed``); the
    signal pool uses seed ``seed + 1``; ``round(fraction * n_background)`` signal
    events are injected (:func:`~contrastx.events.inject_signal`) and the sample is
    shuffled. ``path`` gets a contrastx event file with every label hidden (-1) and
    ``EvtId`` = row number; ``truth_path`` an HDF5 file with ``EvtId``, ``labels``
    (attribute ``process_names``) and the injection settings as attributes.

    Draw the search's reference sample with a *different* seed (the CLI uses
    ``seed + 1_000_003``), or it would repeat the black box's background events.

    Returns
    -------
    dict
        ``n_events``, ``n_signal``, ``signal``, ``fraction``, ``seed`` and the paths.
    """
    import h5py

    from contrastx.events import Events, inject_signal, write_events
    from contrastx.events.generators import generate_sample, mixture_counts
    from contrastx.events.layout import ADC2021_MIXTURE, SIGNALS

    path, truth_path = Path(path), Path(truth_path)
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose one of {list(SIGNALS)}")
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1); got {fraction}")
    if n_background < 1:
        raise ValueError(f"n_background must be >= 1; got {n_background}")
    for p in (path, truth_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists (pass overwrite=True)")
    bkg = generate_sample(mixture_counts(n_background, ADC2021_MIXTURE), seed=seed)
    n_sig = round(fraction * n_background)
    sig = generate_sample({signal: max(n_sig, 1)}, seed=seed + 1)
    mixed = inject_signal(bkg, sig, count=n_sig, seed=seed)
    ids = np.arange(len(mixed), dtype=np.int64)
    meta = {"generator": "contrastx.fast", "black_box": True, "seed": seed}
    hidden = Events(mixed.particles, labels=None, event_ids=ids, metadata=meta)
    write_events(path, hidden, overwrite=overwrite)
    info = {
        "n_events": len(mixed),
        "n_background": n_background,
        "n_signal": int(n_sig),
        "signal": signal,
        "fraction": float(fraction),
        "seed": int(seed),
        "black_box": str(path),
        "truth": str(truth_path),
    }
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(truth_path, "w") as f:
        f.create_dataset("EvtId", data=ids)
        ds = f.create_dataset("labels", data=mixed.labels)
        ds.attrs["process_names"] = [str(p) for p in mixed.process_names]
        f.attrs["format"] = "contrastx-black-box-truth"
        f.attrs["info"] = json.dumps(info)
    return info


def read_truth(path: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, Any]]:
    """Read a truth file of :func:`write_fast_black_box`: ``(EvtId, labels, names, info)``."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"truth file not found: {path}")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != "contrastx-black-box-truth":
            raise ValueError(f"{path}: not a contrastx black-box truth file")
        names = tuple(str(n) for n in f["labels"].attrs["process_names"])
        return f["EvtId"][()], f["labels"][()], names, json.loads(f.attrs["info"])
