"""Conditional normalizing flow p(x | m) for CATHODE, built on zuko.

:class:`ConditionalFlow` learns the background density of the features ``x`` given the
resonant variable ``m`` in the sidebands, and samples it at any ``m``:

1. Preprocessing (:class:`~contrastx.cathode.preprocessing.FeatureScaler`): every feature
   goes through a clipped logit (optional) and a standardisation; ``m`` is standardised
   and enters the flow as its context. Both scalers are saved with the model.
2. The sideband events are split once into training and validation parts
   (``validation_fraction``, seeded).
3. ``n_flows`` independent flows (zuko ``MAF``: affine MADE transforms, or ``NSF``:
   rational-quadratic splines) are trained with Adam on the mean negative log-likelihood
   (per-event weights optional). After every epoch the validation loss is computed; the
   loss before the first epoch is recorded as ``initial_val_loss`` but is *not* an epoch.
4. Early stopping (:class:`EarlyStopping`) ends a flow when its validation loss has not
   improved on the *best so far* for ``patience`` epochs.
5. Model selection and ensembling (CATHODE): the ``n_best_epochs`` epochs with the lowest
   validation loss of every flow (:func:`best_epochs`) are kept. The ensemble is the
   equal-weight mixture of these members: :meth:`ConditionalFlow.log_prob` is the
   mixture's density (in the original feature space) and :meth:`ConditionalFlow.sample`
   draws each event from a member chosen uniformly at random, which samples exactly that
   mixture.

Progress: a tqdm bar when stderr is a terminal, otherwise one ``logging`` line per epoch
(losses, events/s, ETA).

Speed: these flows are small, so on a CPU the work per batch is dominated by overheads.
On a busy shared machine torch's intra-op threads compete with other processes and
can make training many times slower than a single thread; the library leaves torch's
thread count alone, so call ``torch.set_num_threads(1)`` in such a setting.

References
----------
Hallin et al., "Classifying Anomalies THrough Outer Density Estimation (CATHODE)",
arXiv:2109.00546. Papamakarios et al., "Masked Autoregressive Flow", arXiv:1705.07057.
Durkan et al., "Neural Spline Flows", arXiv:1906.04032.

Example
-------
>>> import numpy as np
>>> from contrastx.cathode import ConditionalFlow, FlowOptions
>>> rng = np.random.default_rng(0)
>>> m = rng.uniform(0, 1, 2000)
>>> x = np.stack([m + rng.normal(0, 0.1, 2000), rng.normal(0, 1, 2000)], axis=1)
>>> opts = FlowOptions(transforms=2, hidden_features=(16, 16), epochs=2, n_best_epochs=1)
>>> flow = ConditionalFlow(opts).fit(x, m, seed=0, progress=False)
>>> flow.sample(np.full(5, 0.5), seed=1).shape
(5, 2)
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zuko

from ..ops._backend import require_device
from ..options import OptionsError, from_mapping, option, options, to_dict
from .preprocessing import FeatureScaler, check_features
from .regions import check_mass

__all__ = [
    "FLOW_PRESETS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ConditionalFlow",
    "EarlyStopping",
    "FlowOptions",
    "best_epochs",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "contrastx-cathode-flow"
FORMAT_VERSION = 1
_EVAL_BATCH = 65_536


@options(section="cathode.flow")
class FlowOptions:
    """Conditional flow p(x | m) and its training (CATHODE's density estimator).

    The defaults are two small rational-quadratic spline flows that train on ~10^5
    sideband events in minutes on one CPU core; on the LHC Olympics R&D features their
    samples were harder to tell from real background than those of CATHODE's larger
    affine MAF trained for longer, and two independent flows varied less from seed to
    seed than one flow trained for as many epochs. CATHODE's original setting
    (affine MAF, 15 MADE blocks of 128 hidden units, batch 256, Adam 1e-4, 100 epochs,
    the 10 best epochs) is ``from_mapping(FlowOptions, FLOW_PRESETS["cathode"])``; zuko's
    MAF has no batch normalisation between blocks (the original had), the
    standardisation of the inputs takes its place.
    """

    kind: str = option(
        "nsf",
        "Flow family: 'nsf' (autoregressive rational-quadratic splines) or 'maf' (affine "
        "masked autoregressive, CATHODE's original choice).",
        choices=("maf", "nsf"),
    )
    transforms: int = option(4, "Number of autoregressive transforms (MADE blocks).", ge=1)
    hidden_features: tuple[int, ...] = option(
        (64, 64), "Hidden layer widths of each transform's MADE network.", ge=1
    )
    bins: int = option(8, "Spline bins per transform (kind 'nsf' only).", ge=2)
    epochs: int = option(20, "Most training epochs per flow.", ge=1)
    batch_size: int = option(512, "Events per gradient step.", ge=2)
    lr: float = option(1e-3, "Adam learning rate.", gt=0)
    weight_decay: float = option(0.0, "Adam weight decay (L2).", ge=0)
    lr_schedule: str = option(
        "cosine",
        "Learning-rate schedule over the epochs: 'constant', or 'cosine' decay from lr "
        "to lr / 100 at the last epoch.",
        choices=("constant", "cosine"),
    )
    validation_fraction: float = option(
        0.2, "Fraction of the sideband events held out for validation.", gt=0, lt=1
    )
    patience: int | None = option(
        10,
        "Early stopping: stop a flow after this many epochs without a validation loss "
        "below the best so far (None: train all epochs).",
        ge=1,
    )
    n_best_epochs: int = option(
        5,
        "Ensemble the epochs with the lowest validation loss of each flow (the loss "
        "before training is never an epoch).",
        ge=1,
    )
    n_flows: int = option(
        2, "Independent flows (different initialisation and batch order) in the ensemble.", ge=1
    )
    logit: bool | tuple[bool, ...] = option(
        True,
        "Logit-transform the features first, between bounds just outside their training "
        "range: true for all, false for none, or one flag per feature. Meant for bounded "
        "features (masses, subjettiness ratios); an unbounded feature is better only "
        "standardised, since held-out values beyond the bounds are clipped.",
    )
    logit_margin: float = option(
        0.1,
        "Logit bounds lie this fraction of the training range beyond the training "
        "minimum and maximum. Tiny margins put the sparse tails of a feature at the "
        "logit's extremes, where they are hard to learn.",
        ge=0,
        le=1,
    )
    grad_clip: float | None = option(
        10.0, "Clip the gradient norm at this value (None: no clipping).", gt=0
    )

    def _check(self) -> None:
        if not self.hidden_features:
            raise OptionsError(
                f"{self.__options_section__}.hidden_features must list at least one width"
            )


FLOW_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "cathode": {
        "kind": "maf",
        "transforms": 15,
        "hidden_features": (128, 128),
        "batch_size": 256,
        "lr": 1e-4,
        "lr_schedule": "constant",
        "epochs": 100,
        "patience": None,
        "n_best_epochs": 10,
        "n_flows": 1,
    },
    "sk_cathode_spline": {
        "kind": "nsf",
        "transforms": 10,
        "hidden_features": (64, 64),
        "bins": 8,
        "batch_size": 256,
        "lr": 1e-4,
        "lr_schedule": "constant",
        "epochs": 100,
        "n_best_epochs": 10,
        "n_flows": 1,
    },
}
"""Named :class:`FlowOptions` tables (``from_mapping(FlowOptions, FLOW_PRESETS[name])``):
``default``; ``cathode``, the original paper's affine MAF and training; ``sk_cathode_spline``,
the reference implementation's spline option."""


# --------------------------------------------------------------------------- pure logic
class EarlyStopping:
    """Stop when the loss has not beaten the best so far for ``patience`` updates.

    The comparison is always with the *best* loss seen, never with the loss a fixed
    number of epochs earlier. Non-finite losses never count as improvements.

    Parameters
    ----------
    patience : int or None
        Updates without a new best before :meth:`update` returns True; None never stops.

    Example
    -------
    >>> stop = EarlyStopping(patience=2)
    >>> [stop.update(v) for v in [3.0, 1.0, 2.0, 0.5, 0.9, 0.8]]
    [False, False, False, False, False, True]
    >>> stop.best, stop.best_epoch
    (0.5, 4)
    """

    def __init__(self, patience: int | None) -> None:
        if patience is not None and (isinstance(patience, bool) or patience < 1):
            raise ValueError(f"patience must be >= 1 or None; got {patience!r}")
        self.patience = patience
        self.best = math.inf
        self.best_epoch = 0
        self.epoch = 0
        self.bad_epochs = 0

    def update(self, loss: float) -> bool:
        """Record the next epoch's loss; True when training should stop."""
        self.epoch += 1
        if math.isfinite(loss) and loss < self.best:
            self.best, self.best_epoch, self.bad_epochs = float(loss), self.epoch, 0
        else:
            self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience


def best_epochs(val_losses: Sequence[float], n: int) -> list[int]:
    """The ``n`` epochs (1-based) with the lowest validation loss, lowest first.

    ``val_losses[i]`` is the loss after epoch ``i + 1``; the loss before training is not
    part of it. Non-finite losses are never chosen; ties go to the earlier epoch.

    Raises
    ------
    ValueError
        No finite loss, or ``n < 1``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    finite = [(float(v), i + 1) for i, v in enumerate(val_losses) if math.isfinite(v)]
    if not finite:
        raise ValueError("no epoch has a finite validation loss")
    return [epoch for _, epoch in heapq.nsmallest(n, finite)]


# --------------------------------------------------------------------------- helpers
def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}") from err
    return require_device(dev)


def _build(options: FlowOptions, n_features: int) -> torch.nn.Module:
    common = {
        "features": n_features,
        "context": 1,
        "transforms": options.transforms,
        "hidden_features": tuple(options.hidden_features),
    }
    if options.kind == "nsf":
        return zuko.flows.NSF(bins=options.bins, **common)
    return zuko.flows.MAF(**common)


def _format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _check_weights(weights: Any, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.dtype == bool or not (
        np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)
    ):
        raise TypeError(f"weights must be a 1-D numeric array; got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) like x; got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and >= 0")
    if not w.sum() > 0:
        raise ValueError("weights sum to zero")
    return w


def _nll(flow: torch.nn.Module, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return -flow(c).log_prob(z)


def _weighted_mean(values: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    if w is None:
        return values.mean()
    return (values * w).sum() / w.sum()


@torch.no_grad()
def _eval_loss(
    flow: torch.nn.Module, z: torch.Tensor, c: torch.Tensor, w: torch.Tensor | None
) -> float:
    flow.eval()
    total, norm = 0.0, 0.0
    for start in range(0, len(z), _EVAL_BATCH):
        sl = slice(start, start + _EVAL_BATCH)
        nll = _nll(flow, z[sl], c[sl]).double()
        if w is None:
            total += float(nll.sum())
            norm += len(nll)
        else:
            total += float((nll * w[sl]).sum())
            norm += float(w[sl].sum())
    return total / norm


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        buf.write(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        buf.write(t.numpy().tobytes() if t.numel() else b"")
    return buf.getvalue()


def _checksum(meta: str, members: Sequence[dict[str, torch.Tensor]]) -> str:
    h = hashlib.sha256(meta.encode())
    for state in members:
        h.update(_state_bytes(state))
    return h.hexdigest()


class _Progress:
    """A tqdm bar (terminal) or one log line per epoch, with an ETA."""

    def __init__(self, total_epochs: int, n_events: int, show_bar: bool) -> None:
        self.total = total_epochs
        self.n_events = n_events
        self.done = 0
        self.seconds = 0.0
        self.bar = None
        if show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_epochs, unit="epoch", desc="flow", dynamic_ncols=True)

    def epoch(
        self,
        flow_i: int,
        n_flows: int,
        epoch: int,
        epochs: int,
        seconds: float,
        train: float,
        val: float,
        best: float,
        best_epoch: int,
    ) -> None:
        self.done += 1
        self.seconds += seconds
        eta = self.seconds / self.done * (self.total - self.done)
        rate = self.n_events / max(seconds, 1e-9)
        if self.bar is not None:
            self.bar.set_description(f"flow {flow_i + 1}/{n_flows}")
            self.bar.set_postfix(train=f"{train:.4f}", val=f"{val:.4f}", best=f"{best:.4f}")
            self.bar.update(1)
        level = logging.DEBUG if self.bar is not None else logging.INFO
        logger.log(
            level,
            "flow %d/%d epoch %d/%d: train %.5f val %.5f (best %.5f at epoch %d) | "
            "%.1f s, %.0f events/s | ETA %s (at most)",
            flow_i + 1, n_flows, epoch, epochs, train, val, best, best_epoch,
            seconds, rate, _format_duration(eta),
        )  # fmt: skip

    def skip(self, epochs: int) -> None:
        """A flow stopped early: its remaining epochs leave the total."""
        self.total -= epochs
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass(frozen=True)
class _Member:
    flow: int
    epoch: int
    val_loss: float


# --------------------------------------------------------------------------- estimator
class ConditionalFlow:
    """Ensemble of conditional normalizing flows for p(x | m) (CATHODE's density model).

    Parameters
    ----------
    options : FlowOptions, optional
        Architecture and training settings (default ``FlowOptions()``).

    Attributes
    ----------
    n_features_ : int
    scaler_ : FeatureScaler
        Preprocessing of ``x`` (logit + standardisation), fitted on the training part.
    context_scaler_ : FeatureScaler
        Standardisation of ``m``.
    history_ : list of dict
        One record per flow: ``initial_val_loss`` (before training; not an epoch),
        ``train_loss`` and ``val_loss`` (one entry per epoch, epoch ``i + 1`` at index
        ``i``), ``stopped_early``, ``best_epochs`` and ``seconds``. Losses are mean
        negative log-likelihoods per event in the preprocessed space z (the
        preprocessing's Jacobian is a constant offset per event, so it does not change
        which epoch is best).
    best_epochs_ : list of (int, int)
        The ensemble members as ``(flow index, epoch)`` (epochs counted from 1), each
        flow's lowest validation loss first.
    members_ : list of torch.nn.Module
        The member flows (eval mode), in the order of ``best_epochs_``.
    fit_info_ : dict
        Seed, device, training / validation sizes, wall time and training events/s.
    validation_mask_ : ndarray of bool
        Which of the events given to :meth:`fit` formed the validation set (not saved).
    """

    def __init__(self, options: FlowOptions | None = None) -> None:
        if options is None:
            options = FlowOptions()
        if not isinstance(options, FlowOptions):
            raise TypeError(f"options must be a FlowOptions; got {type(options).__name__}")
        self.options = options

    # ----------------------------------------------------------------------- fitting
    def fit(
        self,
        x: Any,
        m: Any,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        weights: Any = None,
        progress: bool | None = None,
    ) -> ConditionalFlow:
        """Train the ensemble on sideband events ``x`` (n, d) at resonant values ``m`` (n,).

        Parameters
        ----------
        x : array_like, shape (n_events, n_features)
        m : array_like, shape (n_events,)
        seed : int
            Seeds the split, the initialisation and the batch order.
        device : str or torch.device
            ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        weights : array_like, shape (n_events,), optional
            Per-event weights of the likelihood (training and validation).
        progress : bool, optional
            True: tqdm bar; False: one log line per epoch; None: bar only on a terminal.

        Raises
        ------
        ValueError
            Empty input, NaN / inf, mismatched lengths, too few events for the split.
        RuntimeError
            Every epoch of a flow had a non-finite validation loss.
        """
        opts = self.options
        x = check_features(x)
        m = check_mass(m)
        if len(x) != len(m):
            raise ValueError(f"x has {len(x)} events but m has {len(m)}; they must match")
        if len(x) == 0:
            raise ValueError("x is empty: no sideband events to fit the flow on")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an integer; got {seed!r}")
        w = _check_weights(weights, len(x))
        dev = _resolve_device(device)
        if isinstance(opts.logit, tuple) and len(opts.logit) != x.shape[1]:
            raise ValueError(
                f"cathode.flow.logit lists {len(opts.logit)} flag(s) but x has "
                f"{x.shape[1]} feature(s)"
            )

        n = len(x)
        n_val = round(opts.validation_fraction * n)
        n_train = n - n_val
        if n_val < 1 or n_train < 2:
            raise ValueError(
                f"{n} sideband event(s) are too few to split into training and validation "
                f"(validation_fraction {opts.validation_fraction}): need >= 2 training and "
                ">= 1 validation event"
            )
        seeds = np.random.SeedSequence(int(seed)).generate_state(opts.n_flows + 1)
        perm = np.random.default_rng(int(seeds[0])).permutation(n)
        val_mask = np.zeros(n, dtype=bool)
        val_mask[perm[:n_val]] = True
        if w is not None and not (w[val_mask].sum() > 0 and w[~val_mask].sum() > 0):
            raise ValueError("weights sum to zero on the training or the validation part")

        self.scaler_ = FeatureScaler(logit=opts.logit, margin=opts.logit_margin).fit(x[~val_mask])
        self.context_scaler_ = FeatureScaler(logit=False).fit(m[~val_mask, None])
        self.n_features_ = x.shape[1]

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float32, device=dev)

        # validation events beyond the training range are clipped: expected, logged at INFO
        z_all = self.scaler_.transform(x, log_level=logging.INFO)
        c_all = self.context_scaler_.transform(m[:, None])
        z_tr, c_tr = tensor(z_all[~val_mask]), tensor(c_all[~val_mask])
        z_va, c_va = tensor(z_all[val_mask]), tensor(c_all[val_mask])
        w_tr = None if w is None else tensor(w[~val_mask])
        w_va = None if w is None else tensor(w[val_mask])

        show_bar = _stderr_is_terminal() if progress is None else bool(progress)
        bar = _Progress(opts.n_flows * opts.epochs, n_train, show_bar)
        history: list[dict[str, Any]] = []
        members: list[tuple[_Member, dict[str, torch.Tensor]]] = []
        t_start = time.perf_counter()
        try:
            for k in range(opts.n_flows):
                record, kept = self._fit_one(
                    k, int(seeds[k + 1]), dev, z_tr, c_tr, w_tr, z_va, c_va, w_va, bar
                )
                history.append(record)
                members.extend(kept)
        finally:
            bar.close()
        seconds = time.perf_counter() - t_start

        self.history_ = history
        self.validation_mask_ = val_mask
        self._set_members(members, dev)
        epochs_run = sum(len(h["train_loss"]) for h in history)
        self.fit_info_ = {
            "seed": int(seed),
            "device": str(dev),
            "n_train": int(n_train),
            "n_validation": int(n_val),
            "seconds": seconds,
            "epochs_run": int(epochs_run),
            "train_events_per_second": n_train * epochs_run / max(seconds, 1e-9),
        }
        logger.info(
            "flow ensemble: %d member(s) from %d flow(s), %d epoch(s) in %s (%.0f events/s)",
            len(self.members_), opts.n_flows, epochs_run, _format_duration(seconds),
            self.fit_info_["train_events_per_second"],
        )  # fmt: skip
        return self

    def _fit_one(
        self,
        k: int,
        seed: int,
        dev: torch.device,
        z_tr: torch.Tensor,
        c_tr: torch.Tensor,
        w_tr: torch.Tensor | None,
        z_va: torch.Tensor,
        c_va: torch.Tensor,
        w_va: torch.Tensor | None,
        bar: _Progress,
    ) -> tuple[dict[str, Any], list[tuple[_Member, dict[str, torch.Tensor]]]]:
        """Train flow ``k``; returns its history record and its best-epoch snapshots."""
        opts = self.options
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            flow = _build(opts, z_tr.shape[1])
        flow.to(dev)
        gen = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(flow.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        n_train = len(z_tr)
        n_batches = max(1, n_train // opts.batch_size)
        scheduler = None
        if opts.lr_schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=opts.epochs * n_batches, eta_min=opts.lr / 100
            )

        record: dict[str, Any] = {
            "initial_val_loss": _eval_loss(flow, z_va, c_va, w_va),
            "train_loss": [],
            "val_loss": [],
            "stopped_early": False,
        }
        stopper = EarlyStopping(opts.patience)
        kept: list[tuple[float, int, dict[str, torch.Tensor]]] = []  # max-heap via -loss
        t0 = time.perf_counter()
        for epoch in range(1, opts.epochs + 1):
            t_epoch = time.perf_counter()
            flow.train()
            order = torch.randperm(n_train, generator=gen).to(dev)
            total, norm = 0.0, 0.0
            for idx in torch.tensor_split(order, n_batches):
                wb = None if w_tr is None else w_tr[idx]
                loss = _weighted_mean(_nll(flow, z_tr[idx], c_tr[idx]), wb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if opts.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(flow.parameters(), opts.grad_clip)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                size = float(len(idx) if wb is None else wb.sum())
                total += float(loss.detach()) * size
                norm += size
            train_loss = total / norm
            val_loss = _eval_loss(flow, z_va, c_va, w_va)
            record["train_loss"].append(train_loss)
            record["val_loss"].append(val_loss)
            if not math.isfinite(train_loss):
                logger.warning(
                    "flow %d: non-finite training loss at epoch %d; stopping this flow",
                    k + 1, epoch,
                )  # fmt: skip
                record["stopped_early"] = True
                break
            stop = stopper.update(val_loss)
            if math.isfinite(val_loss):
                snapshot = {key: v.detach().clone() for key, v in flow.state_dict().items()}
                # keep the n_best_epochs lowest losses; ties keep the earlier epoch
                item = (-val_loss, -epoch, snapshot)
                if len(kept) < opts.n_best_epochs:
                    heapq.heappush(kept, item)
                elif item[:2] > kept[0][:2]:
                    heapq.heapreplace(kept, item)
            bar.epoch(
                k, opts.n_flows, epoch, opts.epochs, time.perf_counter() - t_epoch,
                train_loss, val_loss, stopper.best, stopper.best_epoch,
            )  # fmt: skip
            if stop:
                record["stopped_early"] = True
                bar.skip(opts.epochs - epoch)
                logger.info(
                    "flow %d: early stop after epoch %d (no validation loss below the best "
                    "%.5f of epoch %d for %d epochs)",
                    k + 1, epoch, stopper.best, stopper.best_epoch, opts.patience,
                )  # fmt: skip
                break
        record["seconds"] = time.perf_counter() - t0
        if not kept:
            raise RuntimeError(
                f"flow {k + 1}: no epoch reached a finite validation loss; lower lr or check "
                "the inputs"
            )
        chosen = best_epochs(record["val_loss"], opts.n_best_epochs)
        by_epoch = {-e: s for _, e, s in kept}
        if sorted(by_epoch) != sorted(chosen):  # pragma: no cover - internal invariant
            raise RuntimeError(f"kept epochs {sorted(by_epoch)} differ from {sorted(chosen)}")
        record["best_epochs"] = chosen
        out = [(_Member(k, e, record["val_loss"][e - 1]), by_epoch[e]) for e in chosen]
        return record, out

    def _set_members(
        self, members: Sequence[tuple[_Member, dict[str, torch.Tensor]]], dev: torch.device
    ) -> None:
        modules = []
        for _, state in members:
            module = _build(self.options, self.n_features_)
            module.load_state_dict(state)
            modules.append(module.to(dev).eval())
        self.members_ = modules
        self.member_info_ = [info for info, _ in members]
        self.best_epochs_ = [(info.flow, info.epoch) for info in self.member_info_]
        self.device_ = dev

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise RuntimeError("ConditionalFlow is not fitted; call fit(x, m) or load(path)")

    def to(self, device: str | torch.device) -> ConditionalFlow:
        """Move the members to ``device`` (returns self)."""
        self._check_fitted()
        dev = _resolve_device(device)
        self.members_ = [module.to(dev) for module in self.members_]
        self.device_ = dev
        return self

    # ----------------------------------------------------------------------- inference
    def _context(self, m: Any, n: int | None = None) -> np.ndarray:
        m = check_mass(m)
        if n is not None and len(m) != n:
            raise ValueError(f"x has {n} events but m has {len(m)}; they must match")
        return self.context_scaler_.transform(m[:, None])

    @torch.no_grad()
    def log_prob(self, x: Any, m: Any) -> np.ndarray:
        """Log-density of the ensemble mixture at ``x`` given ``m``, in the original space.

        ``log p(x | m) = log(mean_k p_k(z | m)) + log |dz/dx|`` over the members ``k``.
        Values beyond the scaler's logit bounds are clipped (logged as a warning).

        Returns
        -------
        ndarray, shape (n_events,), float64
        """
        self._check_fitted()
        x = check_features(x, n_features=self.n_features_)
        c = self._context(m, len(x))
        z = self.scaler_.transform(x)
        dev = self.device_
        out = np.empty(len(x))
        k = len(self.members_)
        for start in range(0, len(x), _EVAL_BATCH):
            sl = slice(start, start + _EVAL_BATCH)
            zb = torch.as_tensor(z[sl], dtype=torch.float32, device=dev)
            cb = torch.as_tensor(c[sl], dtype=torch.float32, device=dev)
            lps = torch.stack([member(cb).log_prob(zb) for member in self.members_])
            out[sl] = (torch.logsumexp(lps.double(), dim=0) - math.log(k)).cpu().numpy()
        return out + self.scaler_.log_abs_det_jacobian(x)

    @torch.no_grad()
    def sample(self, m: Any, *, seed: int = 0) -> np.ndarray:
        """One event x per value of ``m``, drawn from the ensemble mixture.

        Each event comes from a member chosen uniformly at random (seeded), with base
        noise drawn on the CPU from ``seed``, so a seed gives the same samples on every
        run (and, up to floating-point differences, on every device).

        Returns
        -------
        ndarray, shape (len(m), n_features), float64
        """
        self._check_fitted()
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an integer; got {seed!r}")
        c = self._context(m)
        n, d = len(c), self.n_features_
        if n == 0:
            return np.empty((0, d))
        rng = np.random.default_rng(int(seed))
        which = rng.integers(len(self.members_), size=n)
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(n, d, generator=gen, dtype=torch.float32)
        z = np.empty((n, d))
        dev = self.device_
        for k, member in enumerate(self.members_):
            idx = np.flatnonzero(which == k)
            for start in range(0, len(idx), _EVAL_BATCH):
                sel = idx[start : start + _EVAL_BATCH]
                cb = torch.as_tensor(c[sel], dtype=torch.float32, device=dev)
                eps = noise[torch.as_tensor(sel)].to(dev)
                z[sel] = member.transform(cb).inv(eps).double().cpu().numpy()
        bad = ~np.isfinite(z)
        if bad.any():
            raise RuntimeError(
                f"the flow produced {int(bad.any(axis=1).sum())} non-finite sample(s); the "
                "model is unusable (retrain with a lower lr)"
            )
        return self.scaler_.inverse_transform(z)

    # ----------------------------------------------------------------------- files
    def _meta(self) -> dict[str, Any]:
        return {
            "options": to_dict(self.options),
            "n_features": self.n_features_,
            "scaler": self.scaler_.state_dict(),
            "context_scaler": self.context_scaler_.state_dict(),
            "history": self.history_,
            "members": [
                {"flow": i.flow, "epoch": i.epoch, "val_loss": i.val_loss}
                for i in self.member_info_
            ],
            "fit_info": getattr(self, "fit_info_", {}),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights, scalers, options, history and a SHA-256 checksum to ``path``.

        The file is a :func:`torch.save` dictionary of tensors and one JSON string, read
        back with ``weights_only=True``. Parent folders are created; the write is atomic.
        """
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(self._meta(), sort_keys=True, allow_nan=True)
        states = [
            {key: v.detach().cpu() for key, v in module.state_dict().items()}
            for module in self.members_
        ]
        payload = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "meta": meta,
            "members": states,
            "checksum": _checksum(meta, states),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, device: str | torch.device = "cpu"
    ) -> ConditionalFlow:
        """Read a file written by :meth:`save`; the checksum is verified.

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            Not a flow file, an unsupported version, or a corrupted / modified file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"flow file not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a readable {FORMAT_NAME} file ({err})") from err
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: not a {FORMAT_NAME} file")
        if payload.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: {FORMAT_NAME} version {payload.get('format_version')!r} is not "
                f"supported (expected {FORMAT_VERSION})"
            )
        dev = _resolve_device(device)
        meta_text, states = payload.get("meta"), payload.get("members")
        if not isinstance(meta_text, str) or not isinstance(states, list) or not states:
            raise ValueError(f"{path}: corrupted {FORMAT_NAME} file (missing meta or members)")
        try:
            digest = _checksum(meta_text, states)
        except (AttributeError, TypeError, RuntimeError) as err:
            raise ValueError(f"{path}: corrupted {FORMAT_NAME} file ({err})") from err
        if digest != payload.get("checksum"):
            raise ValueError(f"{path}: checksum mismatch; the file is corrupted or was modified")
        try:
            meta = json.loads(meta_text)
            flow = cls(from_mapping(FlowOptions, meta["options"]))
            flow.n_features_ = int(meta["n_features"])
            flow.scaler_ = FeatureScaler.from_state_dict(meta["scaler"])
            flow.context_scaler_ = FeatureScaler.from_state_dict(meta["context_scaler"])
            flow.history_ = meta["history"]
            flow.fit_info_ = meta.get("fit_info", {})
            infos = [
                _Member(int(i["flow"]), int(i["epoch"]), float(i["val_loss"]))
                for i in meta["members"]
            ]
            if len(infos) != len(states):
                raise ValueError("member count differs from the stored weights")
            flow._set_members(list(zip(infos, states)), dev)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{path}: invalid {FORMAT_NAME} content ({err})") from err
        return flow
