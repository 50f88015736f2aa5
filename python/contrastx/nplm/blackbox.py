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
null is asked for. The empirical null resolves :math:`p` in steps of :math:`1/(1 + n_0)`
for :math:`n_0` null toys, so :math:`|Z|` is at most
:math:`\Phi^{-1}(1 - 1/(1 + n_0))` (:func:`~contrastx.nplm.statistics.empirical_z_limit`):
a :math:`t` beyond every null toy gets the upper limit, one below every null toy (p = 1,
no excess) the lower limit rather than :math:`-\infty`.

Per split: :math:`\bar Z_i` = mean over the runs of :math:`Z(t_{ij})`, with its
standard deviation. Global significance: the most significant split
:math:`i^* = \arg\max_i \bar Z_i`, Bonferroni-corrected for the :math:`k` splits,

.. math:: p_\mathrm{glob} = \min\big(1,\ k\,\Phi(-\bar Z_{i^*})\big), \qquad
          Z_\mathrm{glob} = \Phi^{-1}(1 - p_\mathrm{glob}),

and its spread from the same correction applied run by run
(:math:`\min(1, k \min_i p_{ij})` for each run :math:`j`). When the correction reaches
the cap (:math:`p_\mathrm{glob} = 1`, :math:`Z_\mathrm{glob} = -\infty`: no split stands
out more than :math:`k` splits do by chance) the result says so
(:attr:`BlackBoxResult.global_p_capped`), prints ``< 0 (Bonferroni p = 1)`` and stores
``null`` in JSON.

Every event gets an NPLM score :math:`\sigma(f(x))` from each fit of its split (the
data-vs-reference classifier output; large is signal-like): its mean and spread over
the :math:`r` runs, and its value in the split's run with the largest :math:`t`.
:func:`write_event_scores` saves them with the black-box rows and event ids,
:meth:`BlackBoxResult.top_events` ranks them.

The :math:`k r` fits and the null toys are independent tasks: ``run_black_box(...,
executor=ExecutorOptions(...))`` runs them on local processes or a Dask cluster
(:func:`contrastx.distributed.map_tasks`) with the inline run's numbers, bitwise at the
same thread count.

:func:`read_truth` reads the truth that unblinds a black box: contrastx's own truth files
and ADC2021-style ``.npz`` / ``.h5`` files keyed by event id.

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
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from contrastx.distributed._dask import worker_name
from contrastx.options import OptionsError, embedded, key_name, option, options, to_dict

from . import statistics as st
from .kernel import sigma_heuristic
from .options import SolverOptions, ToyOptions, poisson_upper
from .solver import NPLMFit
from .toys import ToyEngine

if TYPE_CHECKING:
    from contrastx.distributed import ExecutorOptions

__all__ = [
    "BlackBoxConfig",
    "BlackBoxResult",
    "BlackBoxTruth",
    "check_reference_pool",
    "global_significance",
    "read_event_scores",
    "read_truth",
    "required_pool_size",
    "run_black_box",
    "split_indices",
    "write_event_scores",
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
        Their :math:`Z`. With the empirical null it lies between
        :math:`\\pm` :func:`~contrastx.nplm.statistics.empirical_z_limit` of the null toys:
        a :math:`t` below every null toy (empirical p = 1, no excess) gets the lower limit.
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
        Bonferroni-corrected significance of the most significant split. ``global_z``
        is :math:`-\\infty` when ``global_p`` is capped at 1 (:attr:`global_p_capped`);
        :meth:`global_text` and :meth:`as_dict` show that case as a bound.
    global_z_runs : numpy.ndarray, shape (r,)
        The correction applied run by run (spread of ``global_z``).
    sigma, n_expected : float
    best_run : int
        Run of :math:`i^*` with the largest :math:`t` (used for ``best_scores``).
    best_indices : numpy.ndarray
        Black-box row indices of split :math:`i^*`.
    event_split : numpy.ndarray, shape (N,)
        Split of every black-box event (row order).
    scores, scores_std : numpy.ndarray, shape (N,)
        Every event's NPLM score :math:`\\sigma(f(x))`: mean and standard deviation
        (ddof 1; 0 for r = 1) over the runs of its split.
    scores_best_run : numpy.ndarray, shape (N,)
        Its score in the run of its split with the largest :math:`t`.
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
    event_split: np.ndarray
    scores: np.ndarray
    scores_std: np.ndarray
    scores_best_run: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def best_scores(self) -> np.ndarray:
        """NPLM scores of split :math:`i^*`'s events in run ``best_run`` (Fig. V)."""
        return self.scores_best_run[self.best_indices]

    @property
    def global_p_capped(self) -> bool:
        """True when the Bonferroni correction reached its cap, ``global_p = 1``.

        Then ``global_z`` is :math:`-\\infty`: the most significant split is no more
        significant than the largest of :math:`k` background-only splits is expected to be.
        """
        return self.global_p >= 1.0

    @property
    def global_z_std(self) -> float:
        """Spread of the run-by-run global Z.

        Runs whose Bonferroni-corrected p is capped at 1 have Z = -inf (no evidence at
        all) and are left out; with fewer than two finite runs the spread is 0.
        """
        g = self.global_z_runs[np.isfinite(self.global_z_runs)]
        return float(np.std(g, ddof=1)) if g.size > 1 else 0.0

    def global_text(self, digits: int = 2) -> str:
        """``"2.31 ± 0.40"``, or ``"< 0 (Bonferroni p = 1)"`` when p is capped at 1."""
        if self.global_p_capped:
            return "< 0 (Bonferroni p = 1)"
        return f"{self.global_z:.{digits}f} ± {self.global_z_std:.{digits}f}"

    def top_events(self, k: int = 10) -> np.ndarray:
        """Black-box rows of the ``k`` events with the highest mean score, highest first.

        Ties keep row order.
        """
        if k < 0:
            raise ValueError(f"k must be >= 0; got {k}")
        order = np.argsort(-self.scores, kind="stable")
        return order[: min(k, order.size)]

    def as_dict(self) -> dict[str, Any]:
        """Every number as strict JSON (non-finite numbers are None); no per-event scores.

        ``global_z`` is None when the Bonferroni p is capped at 1 (``global_p_capped``;
        ``global_z_text`` then reads ``"< 0 (Bonferroni p = 1)"``).
        """
        from contrastx._json import json_ready

        return json_ready(
            {
                "n_splits": int(self.t.shape[0]),
                "n_resample": int(self.t.shape[1]),
                "t": self.t,
                "z": self.z,
                "z_mean": self.z_mean,
                "z_std": self.z_std,
                "split_sizes": self.split_sizes,
                "t_null": self.t_null,
                "t_null_mean": float(self.t_null.mean()),
                "dof": self.dof,
                "best_split": self.best_split,
                "best_run": self.best_run,
                "global_p": self.global_p,
                "global_p_capped": self.global_p_capped,
                "global_z": self.global_z,
                "global_z_text": self.global_text(),
                "global_z_runs": self.global_z_runs,
                "global_z_std": self.global_z_std,
                "sigma": self.sigma,
                "n_expected": self.n_expected,
                "n_scored": int(self.scores.size),
                "n_best_split_score_above_half": int((self.best_scores > 0.5).sum()),
                "config": self.config,
                "timing": self.timing,
            }
        )

    def table_rows(self, name: str) -> tuple[list[str], list[str]]:
        """Header and one row of a Table VII-like table: mean Z +- std per split, global."""
        k = self.t.shape[0]
        header = ["embedding", *[f"split {i}" for i in range(k)], "global"]
        row = [name]
        for i in range(k):
            cell = f"{self.z_mean[i]:.2f} ± {self.z_std[i]:.2f}"
            row.append(f"**{cell}**" if i == self.best_split else cell)
        row.append(self.global_text())
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
        Significance of every split; :math:`-\infty` (p = 1, no excess at all) is allowed,
        NaN and :math:`+\infty` are not.
    n_tests : int, optional
        Number of tests to correct for (default ``k``).

    Returns
    -------
    (p_global, z_global, best) : (float, float, int)
        :math:`p = \min(1, n\,\Phi(-\max_i Z_i))`, :math:`Z = \Phi^{-1}(1-p)` (log space)
        and :math:`\arg\max_i Z_i`.
    """
    z = np.asarray(z_split, dtype=np.float64).reshape(-1)
    if z.size == 0 or np.isnan(z).any() or (z == np.inf).any():
        raise ValueError("z_split must be a non-empty array of finite values or -inf")
    n = z.size if n_tests is None else int(n_tests)
    if n < 1:
        raise ValueError(f"n_tests must be >= 1; got {n}")
    best = int(np.argmax(z))
    log_p = float(stats.norm.logsf(z[best]))
    lg = min(0.0, math.log(n) + log_p)
    return math.exp(lg), float(st.z_from_log_p(lg)), best


def required_pool_size(n_ref: int, n_expected: float) -> int:
    """Fewest reference-pool events a search needs: ``n_ref`` plus a Poisson(N(B)) draw.

    The null toys draw their reference and their data (Poisson(``n_expected``) events,
    bounded by :func:`~contrastx.nplm.options.poisson_upper`) from the pool without
    overlap.
    """
    return int(n_ref) + poisson_upper(float(n_expected))


def check_reference_pool(n_pool: int, n_ref: int, n_expected: float, *, what: str = "") -> None:
    """Raise ValueError, before any fit, if a pool of ``n_pool`` events is too small.

    ``what`` names the pool's source in the message (a file, a setting).
    """
    need = required_pool_size(n_ref, n_expected)
    if n_pool < need:
        src = f" ({what})" if what else ""
        raise ValueError(
            f"the reference pool{src} has {n_pool} events; the search needs at least {need} "
            f"(n_ref = {n_ref} plus a Poisson draw of N(B) = {n_expected:g} for the null toys): "
            "give a larger reference, or lower n_ref or n_expected"
        )


def _standardize(ref_pool: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = ref_pool.mean(0)
    std = ref_pool.std(0)
    std[std == 0] = 1.0
    return [(x - mean) / std for x in (ref_pool, *others)]


def _fit_task(
    rows: np.ndarray,
    pool: np.ndarray,
    sigma: float,
    solver_options: SolverOptions,
    n_ref: int,
    weight: float,
    seed: int,
    i: int,
    j: int,
    device: str | None,
) -> tuple[float, np.ndarray, float, str]:
    """Run ``j`` of split ``i``: draw its reference from ``pool``, fit, score the split.

    Returns ``(t, scores of the split's rows, seconds, host:pid)``. The reference, the
    centres and every other draw come from ``SeedSequence([seed, _SPLIT_STREAM, i, j])``,
    so the fit is the same wherever it runs.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM, i, j]))
    ref = pool[rng.choice(pool.shape[0], n_ref, replace=False)]
    model = NPLMFit(sigma, options=solver_options, device=device, random_state=rng).fit(
        rows, ref, weight
    )
    scores = np.asarray(st.nplm_score(model.f_data_), dtype=np.float64)
    return float(model.t_), scores, time.perf_counter() - start, worker_name()


def _null_task(
    pool: np.ndarray, toy_config: ToyOptions, toy_indices: tuple[int, ...], device: str | None
) -> tuple[np.ndarray, float, str]:
    """Paper-mode null toys ``toy_indices``: ``(t in index order, seconds, host:pid)``.

    Toy ``k`` is drawn from ``(seed, null hypothesis, k)`` alone
    (:func:`~contrastx.nplm.toys.toy_rng`), so any block of indices gives each toy the
    ``t`` of the run of all of them.
    """
    start = time.perf_counter()
    engine = ToyEngine(pool, config=toy_config, device=device)
    t = np.concatenate([b.t for b in engine.run(toy_indices, block_seconds=None)])
    return t, time.perf_counter() - start, worker_name()


def _black_box_task(kind: str, args: tuple) -> Any:
    """The executor's task function: ``"fit"`` (:func:`_fit_task`) or ``"null"``
    (:func:`_null_task`)."""
    return (_fit_task if kind == "fit" else _null_task)(*args)


def run_black_box(
    data: Any,
    reference: Any,
    config: BlackBoxConfig | None = None,
    *,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
    executor: ExecutorOptions | None = None,
) -> BlackBoxResult:
    """Run the black-box search on an embedded sample.

    Parameters
    ----------
    data : array_like, shape (N, D)
        The embedded black box.
    reference : array_like, shape (N_pool, D)
        Embedded background pool the references (and null toys) are drawn from; it
        needs at least :func:`required_pool_size` events (``n_ref + N(B) + 6 sqrt(N(B))
        + 10``), checked before the first fit.
    config : BlackBoxConfig, optional
    device : str, optional
        Torch device of the fits (on the workers, with an executor).
    progress : callable, optional
        Called with a one-line message when the null toys are done and when every run of
        a split is done (in the order they finish).
    executor : ExecutorOptions, optional
        Where the fits run (default: in this process). The ``n_splits * n_resample`` fits are
        one task each, and the null toys tasks of ``executor.shard_size`` toy indices,
        all run through :func:`contrastx.distributed.map_tasks` (in this process, local
        processes or Dask; ``worker_threads`` torch threads per worker). Each task is
        sent the standardised reference pool (every one: it is not kept on the workers
        between tasks), and a fit task also its split's rows, sigma and the solver
        settings; a fit returns its ``t`` and its split's scores, a null task its toys'
        ``t``. Every fit and toy draws from its own seed, and the results are put
        together in split and run order whatever order the tasks finish in, so the
        result is bitwise that of the inline run at the same thread count. The executor
        is recorded in ``timing["executor"]`` only, never in ``config``.

    Returns
    -------
    BlackBoxResult

    Raises
    ------
    TypeError
        If ``executor`` is not an :class:`~contrastx.distributed.ExecutorOptions`.
    ImportError
        For ``executor="dask"`` without Dask installed.
    """
    from contrastx.distributed import ExecutorOptions, map_tasks

    if executor is None:
        executor = ExecutorOptions()
    if not isinstance(executor, ExecutorOptions):
        raise TypeError(
            f"executor must be an ExecutorOptions or None; got {type(executor).__name__}"
        )
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
    check_reference_pool(pool.shape[0], cfg.n_ref, n_exp)
    if cfg.sigma is None:
        rng0 = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SIGMA_STREAM]))
        sigma = sigma_heuristic(pool[rng0.choice(pool.shape[0], cfg.n_ref, replace=False)])
    else:
        sigma = float(cfg.sigma)
    weight = n_exp / cfg.n_ref
    toy_config = ToyOptions(
        n_ref=cfg.n_ref,
        n_bkg=n_exp,
        mode="paper",
        seed=cfg.seed,
        solver_options=dataclasses.replace(cfg.solver_options, sigma=sigma),
    )

    # The null blocks (the largest tasks) first, then every (split, run) fit.
    step = executor.shard_size
    null_blocks = [
        tuple(range(lo, min(lo + step, cfg.n_null))) for lo in range(0, cfg.n_null, step)
    ]
    split_rows = [x[rows] for rows in splits]  # one copy, shared by the split's r tasks
    runs = [(i, j) for i in range(cfg.n_splits) for j in range(cfg.n_resample)]
    tasks: list[tuple[str, tuple]] = [
        ("null", (pool, toy_config, ids, device)) for ids in null_blocks
    ]
    tasks += [
        ("fit", (split_rows[i], pool, sigma, cfg.solver_options, cfg.n_ref, weight, cfg.seed,
                 i, j, device))
        for i, j in runs
    ]  # fmt: skip
    n_null_tasks = len(null_blocks)

    t0 = time.perf_counter()
    fits: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
    t_blocks: dict[int, np.ndarray] = {}
    seconds = {"fit": 0.0, "null": 0.0}
    workers: set[str] = set()
    done_runs = np.zeros(cfg.n_splits, dtype=np.int64)
    for index, out in map_tasks(executor, _black_box_task, tasks):
        kind = tasks[index][0]
        workers.add(out[-1])
        seconds[kind] += out[-2]
        if kind == "null":
            t_blocks[index] = out[0]
            if len(t_blocks) == n_null_tasks and progress is not None:
                t_done = np.concatenate([t_blocks[b] for b in range(n_null_tasks)])
                progress(f"null: {t_done.size} toys, mean t = {t_done.mean():.2f}")
            continue
        i, j = runs[index - n_null_tasks]
        fits[i, j] = (out[0], out[1])
        done_runs[i] += 1
        if done_runs[i] == cfg.n_resample and progress is not None:
            mean_t = np.mean([fits[i, jj][0] for jj in range(cfg.n_resample)])
            progress(f"split {i}: {sizes[i]} events, mean t = {mean_t:.2f}")
    wall_s = time.perf_counter() - t0

    # Put together in split and run order: the same sums as the inline run.
    n_events = x.shape[0]
    t = np.empty((cfg.n_splits, cfg.n_resample))
    event_split = np.empty(n_events, dtype=np.int64)
    score_sum = np.zeros(n_events)
    score_sq = np.zeros(n_events)
    score_best = np.zeros(n_events)
    for i in range(cfg.n_splits):
        rows = splits[i]
        event_split[rows] = i
        for j in range(cfg.n_resample):
            t[i, j], s = fits[i, j]
            score_sum[rows] += s
            score_sq[rows] += s * s
            if j == 0 or t[i, j] > t[i, :j].max():  # the first run with the largest t
                score_best[rows] = s
    r = cfg.n_resample
    scores = score_sum / r
    spread = np.maximum(score_sq - r * scores**2, 0.0) / max(r - 1, 1)
    scores_std = np.sqrt(spread) if r > 1 else np.zeros(n_events)
    t_null = np.concatenate([t_blocks[b] for b in range(n_null_tasks)])

    if cfg.z_method == "chi2":
        dof: float | None = float(st.fit_chi2_dof(t_null, "mean").dof)
        log_p = np.asarray(st.chi2_log_p(t, dof), dtype=np.float64).reshape(t.shape)
    else:
        dof = None
        # The empirical p resolves steps of 1/(1 + n0). A t below every null toy has p = 1
        # ("no excess" at that resolution), whose Z is -inf; take it at the largest p the
        # null resolves below 1, n0/(1 + n0): Z = -empirical_z_limit(n0), the mirror of
        # the upper limit Z(1/(1 + n0)).
        n0 = t_null.size
        p_emp = np.minimum(np.asarray(st.empirical_p_value(t, t_null)), n0 / (1.0 + n0))
        log_p = np.log(p_emp).reshape(t.shape)
    z = np.asarray(st.z_from_log_p(log_p), dtype=np.float64).reshape(t.shape)
    z_mean = z.mean(1)
    z_std = z.std(1, ddof=1) if cfg.n_resample > 1 else np.zeros(cfg.n_splits)
    p_glob, z_glob, best = global_significance(z_mean)
    z_runs = np.array(
        [st.bonferroni(log_p=log_p[:, j])[1] for j in range(cfg.n_resample)], dtype=np.float64
    )
    best_run = int(np.argmax(t[best]))
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
        event_split=event_split,
        scores=scores,
        scores_std=scores_std,
        scores_best_run=score_best,
        config={**cfg.as_dict(), "weight": weight, "device": str(device or "cpu")},
        timing={
            "splits_s": seconds["fit"],
            "null_s": seconds["null"],
            "wall_s": wall_s,
            "executor": {
                "executor": executor.executor,
                "tasks": len(tasks),
                "workers": len(workers),
            },
        },
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
    hidden = Events(
        mixed.particles,
        labels=None,
        event_ids=ids,
        metadata=meta,
        layout=mixed.layout,
        event_features=mixed.event_features,
    )
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


# ------------------------------------------------------------------ event scores
SCORES_FORMAT = "contrastx-black-box-scores"


def write_event_scores(path: str | Path, result: BlackBoxResult, event_ids: Any = None) -> Path:
    """Save every black-box event's NPLM score to an HDF5 file (replaced if it exists).

    Datasets, one entry per event in black-box row order: ``row`` (int64), ``EvtId``
    (int64; ``event_ids`` if given, else the row), ``split`` (int64), ``score`` and
    ``score_std`` (mean and spread over the runs of the split), ``score_best_run`` (the
    score in the split's run with the largest t). Root attributes: ``format``
    (``"contrastx-black-box-scores"``), ``best_split``, ``best_run``, ``n_resample``.
    Read it back with :func:`read_event_scores`.
    """
    from contrastx.events.io import open_h5

    path = Path(path)
    n = result.scores.size
    rows = np.arange(n, dtype=np.int64)
    ids = rows if event_ids is None else np.asarray(event_ids).reshape(-1).astype(np.int64)
    if ids.shape != (n,):
        raise ValueError(f"event_ids has {ids.size} entries for {n} scored events")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_h5(path, "w", what="event-score file") as f:
        f.attrs["format"] = SCORES_FORMAT
        f.attrs["best_split"] = int(result.best_split)
        f.attrs["best_run"] = int(result.best_run)
        f.attrs["n_resample"] = int(result.t.shape[1])
        f.attrs["description"] = (
            "NPLM score sigma(f(x)) of every black-box event (large: signal-like); score and "
            "score_std over the runs of the event's split, score_best_run in the split's run "
            "with the largest t"
        )
        for key, arr in (
            ("row", rows),
            ("EvtId", ids),
            ("split", result.event_split),
            ("score", result.scores),
            ("score_std", result.scores_std),
            ("score_best_run", result.scores_best_run),
        ):
            f.create_dataset(key, data=arr)
    return path


def read_event_scores(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a :func:`write_event_scores` file, keyed by dataset name."""
    from contrastx.events.io import open_h5

    path = Path(path)
    keys = ("row", "EvtId", "split", "score", "score_std", "score_best_run")
    with open_h5(path, "r", what="event-score file") as f:
        if f.attrs.get("format") != SCORES_FORMAT:
            raise ValueError(f"{path}: not a contrastx black-box score file (no format attribute)")
        missing = [k for k in keys if k not in f]
        if missing:
            raise ValueError(f"{path}: no dataset {missing[0]!r} in the event-score file")
        return {k: f[k][()] for k in keys}


# ------------------------------------------------------------------------- truth
TRUTH_FORMAT = "contrastx-black-box-truth"
_ID_KEYS = ("EvtId", "event_ids")
_LABEL_KEYS = ("labels", "is_signal")
_SIGNAL_ID_KEYS = ("signal_EvtId", "signal_ids")
_BACKGROUND_ID_KEYS = ("background_EvtId", "background_ids")


@dataclass(frozen=True)
class BlackBoxTruth:
    """Which black-box events are signal, by event id (see :func:`read_truth`).

    Attributes
    ----------
    path : pathlib.Path
        The truth file.
    event_ids : numpy.ndarray, shape (n,)
        Every event id the file covers (int64, unique).
    is_signal : numpy.ndarray, shape (n,)
        Whether each is a signal event.
    labels : numpy.ndarray or None
        Process labels (indices into ``process_names``) when the file has them.
    process_names : tuple of str or None
    signal : str or None
        The signal process name(s) (comma-separated) when known.
    info : dict
        The file's own description (injection settings, generation metadata), if any.
    unlisted_are_background : bool
        True for a file that lists only the signal ids: any other id is background.
    """

    path: Path
    event_ids: np.ndarray
    is_signal: np.ndarray
    labels: np.ndarray | None = None
    process_names: tuple[str, ...] | None = None
    signal: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    unlisted_are_background: bool = False

    def signal_mask(self, event_ids: Any) -> np.ndarray:
        """``is_signal`` of the given events, matched by id.

        Raises
        ------
        ValueError
            If an id is not in the truth file (named with the first few missing ids),
            unless the file lists only signal ids (``unlisted_are_background``).
        """
        ids = np.asarray(event_ids).reshape(-1).astype(np.int64)
        order = np.argsort(self.event_ids, kind="stable")
        sorted_ids = self.event_ids[order]
        pos = np.minimum(np.searchsorted(sorted_ids, ids), max(sorted_ids.size - 1, 0))
        found = sorted_ids.size > 0
        hit = sorted_ids[pos] == ids if found else np.zeros(ids.size, dtype=bool)
        if self.unlisted_are_background:
            return np.where(hit, self.is_signal[order[pos]], False) if found else hit
        if not hit.all():
            miss = ids[~hit]
            shown = ", ".join(str(int(i)) for i in miss[:5])
            raise ValueError(
                f"{self.path}: {miss.size} of the {ids.size} black-box event ids are not in "
                f"the truth file (first: {shown})"
            )
        return self.is_signal[order[pos]]


def _truth_arrays(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(arrays, attrs)``: the top-level arrays of an ``.npz`` or HDF5 truth file (read
    lazily for HDF5: only what is used), the root attributes and ``process_names``."""
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a readable .npz truth file ({err})") from None
        attrs: dict[str, Any] = {}
        if "process_names" in arrays:
            attrs["process_names"] = tuple(str(n) for n in arrays.pop("process_names"))
        return arrays, attrs
    import h5py

    from contrastx.events.io import open_h5

    with open_h5(path, "r", what="truth file") as f:
        arrays = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        attrs = {k: f.attrs[k] for k in ("format", "info", "metadata") if k in f.attrs}
        for key in _LABEL_KEYS:
            if key in f and "process_names" in f[key].attrs:
                attrs["process_names"] = tuple(str(n) for n in f[key].attrs["process_names"])
    return arrays, attrs


def _ids(path: Path, arrays: dict[str, Any], key: str) -> np.ndarray:
    arr = np.asarray(arrays[key])
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise ValueError(
            f"{path}: key {key!r} must be a 1-D array of integer event ids; got "
            f"{arr.dtype} of shape {arr.shape}"
        )
    return arr.astype(np.int64)


def _first_key(arrays: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in arrays), None)


def _json_attr(path: Path, attrs: dict[str, Any], key: str) -> dict[str, Any]:
    if key not in attrs:
        return {}
    try:
        value = json.loads(attrs[key])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: root attribute {key!r} is not valid JSON ({err})") from None
    return value if isinstance(value, dict) else {}


def read_truth(path: str | Path, *, signal: str | None = None) -> BlackBoxTruth:
    """Read the truth of a black box: which event ids are signal.

    Accepted files (``.npz``, or HDF5 with the arrays as top-level datasets):

    * contrastx truth files (:func:`write_fast_black_box`, ``contrastx-generate
      --black-box``): ``EvtId`` and ``labels`` with the attribute ``process_names``;
    * ADC2021-style, labels aligned by id: ``EvtId`` (or ``event_ids``) and either
      ``is_signal`` (0/1) or ``labels`` -- process indices into ``process_names`` (an
      attribute of ``labels``, or an ``.npz`` array of that name), else 0/1 with 1 for
      signal;
    * ADC2021-style, lists of ids: ``signal_EvtId`` (or ``signal_ids``) and optionally
      ``background_EvtId`` (or ``background_ids``); without a background list every id
      not listed as signal is background.

    With process names, the signal is ``signal`` if given, else the file's recorded
    signal, else every process that is not a background (W, QCD, Z, ttbar).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it holds none of these layouts, or its arrays disagree; the message names
        the file and the key.
    """
    from contrastx.events.layout import BACKGROUNDS

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"truth file not found: {path}")
    arrays, attrs = _truth_arrays(path)
    info = _json_attr(path, attrs, "info") or _json_attr(path, attrs, "metadata")
    names: tuple[str, ...] | None = attrs.get("process_names")
    labels = None
    sig_key = _first_key(arrays, _SIGNAL_ID_KEYS)
    id_key = _first_key(arrays, _ID_KEYS)
    if sig_key is not None:
        sig_ids = _ids(path, arrays, sig_key)
        bkg_key = _first_key(arrays, _BACKGROUND_ID_KEYS)
        if bkg_key is not None:
            bkg_ids = _ids(path, arrays, bkg_key)
            both = np.intersect1d(sig_ids, bkg_ids)
            if both.size:
                raise ValueError(
                    f"{path}: {both.size} event ids are in both {sig_key!r} and {bkg_key!r} "
                    f"(first: {int(both[0])})"
                )
            ids = np.concatenate([sig_ids, bkg_ids])
            is_signal = np.r_[np.ones(sig_ids.size, bool), np.zeros(bkg_ids.size, bool)]
        else:  # every other id is background: the ids cover any black box
            ids, is_signal = sig_ids, np.ones(sig_ids.size, dtype=bool)
        names = None
    elif id_key is not None:
        ids = _ids(path, arrays, id_key)
        lab_key = _first_key(arrays, _LABEL_KEYS)
        if lab_key is None:
            raise ValueError(
                f"{path}: event ids in {id_key!r} but no labels: expected one of "
                f"{', '.join(map(repr, _LABEL_KEYS))} (keys: {sorted(arrays)})"
            )
        lab = np.asarray(arrays[lab_key]).reshape(-1)
        if lab.shape != ids.shape:
            raise ValueError(
                f"{path}: key {lab_key!r} has {lab.size} entries but {id_key!r} has {ids.size}"
            )
        if lab.size and not (
            np.issubdtype(lab.dtype, np.integer) or np.issubdtype(lab.dtype, np.bool_)
        ):
            raise ValueError(f"{path}: key {lab_key!r} must hold integers; got {lab.dtype}")
        lab = lab.astype(np.int64)
        if lab_key == "labels" and names is not None:
            bad = (lab < 0) | (lab >= len(names))
            if bad.any():
                raise ValueError(
                    f"{path}: key 'labels' holds {int(lab[bad][0])}, not an index into its "
                    f"{len(names)} process_names"
                )
            if signal is None:
                signal = info.get("signal")
            if signal is not None:
                wanted = [str(n).strip() for n in str(signal).split(",") if str(n).strip()]
                unknown = [n for n in wanted if n not in names]
                if unknown:
                    raise ValueError(
                        f"{path}: signal {unknown[0]!r} is not one of its process_names "
                        f"{list(names)}"
                    )
            else:
                wanted = sorted({names[k] for k in np.unique(lab)} - set(BACKGROUNDS))
                signal = ",".join(wanted) if wanted else None
            is_signal = np.isin(lab, [names.index(n) for n in wanted])
            labels = lab
        else:
            if lab.size and not np.isin(lab, (0, 1)).all():
                raise ValueError(
                    f"{path}: key {lab_key!r} must be 0 (background) or 1 (signal) without "
                    f"process_names; got values {np.unique(lab)[:5].tolist()}"
                )
            is_signal = lab.astype(bool)
            names = None
    else:
        expected = ", ".join(map(repr, (*_ID_KEYS, *_SIGNAL_ID_KEYS)))
        raise ValueError(
            f"{path}: not a black-box truth file: expected event ids in one of {expected} "
            f"(keys: {sorted(arrays)})"
        )
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{path}: event id {int(uniq[counts > 1][0])} appears {int(counts.max())} times"
        )
    if signal is None and info.get("signal") is not None:
        signal = str(info["signal"])
    only_signal = sig_key is not None and _first_key(arrays, _BACKGROUND_ID_KEYS) is None
    return BlackBoxTruth(path, ids, is_signal, labels, names, signal, info, only_signal)
