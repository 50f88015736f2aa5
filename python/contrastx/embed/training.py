"""Training contrastive embeddings: configuration, presets and the :class:`Trainer`.

Methods (``TrainConfig.method``):

==============  ===============================================  ===================
method          loss on the projection-head output               views
==============  ===============================================  ===================
``simclr``      NT-Xent (self-supervised; labels unused)         two augmented
``supcon``      SupCon with process labels ("supervised SimCLR")  two augmented, or one
                                                                  without augmentation
``vicreg``      VICReg (self-supervised)                         two augmented
``vicreg_ce``   alpha VICReg + (1 - alpha) CE (paper Eq. 11)      event + a random
                                                                  same-class event
``supcon_kl``   SupCon + beta KL, Gaussian output block          one (augmentation
                (Li, Nachman, Noll)                               optional)
==============  ===============================================  ===================

Events of any layout train (:class:`~contrastx.events.layout.EventLayout`): ADC2021
events with the primary paper's ``"pt"``/``"log_pt"`` preprocessing inside the encoder,
and events of any layout with ``preprocessing="layout"`` (the second paper's; required
by the ``particle_transformer`` encoder and for every layout other than ADC2021): the
model then holds the fitted preprocessing as its input scaler and takes the raw
objects and event-level features of that layout (see :mod:`contrastx.embed.model`).

The data are split with :func:`contrastx.events.make_splits` (stratified by label,
20 % test held out, 5 folds): the model trains on the four folds other than
``fold`` and is validated on ``fold``; the test set is never touched. The learning
rate follows ``warmup_epochs`` of linear warm-up and a cosine decay to
``final_lr_factor`` of the base (per step). The warm-up scales with the run: it lasts
at most :data:`MAX_WARMUP_FRACTION` of the run (a fifth, the primary paper's 10 of 50
epochs), so a preset's 10 warm-up epochs become 0.6 of a 3-epoch run without an
override; the shortening is logged (INFO) with both numbers.

Early stopping watches the validation loss; with it, or with ``restore_best``, the model
of the epoch with the lowest validation loss is kept. A trained model whose validation
projections all point in almost the same direction (a collapsed or undertrained model,
see :data:`COLLAPSE_COSINE`) is reported with a warning. Checkpoints hold the epoch,
model, optimiser, scheduler, early-stopping state and every random state, so an
interrupted run resumes to the same result; a file that is not such a checkpoint is
refused with a message naming it.

:meth:`Trainer.fit` reports progress through :mod:`logging` (logger
``contrastx.embed.training``): a progress bar with an ETA when stderr is a terminal,
otherwise one INFO line per epoch (losses, time taken, elapsed, time to go) and an early
estimate during a long first epoch.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._console import Progress, format_duration, stderr_is_terminal
from ..events.container import UNKNOWN_LABEL, Events
from ..events.layout import ADC2021, EventLayout
from ..events.preprocessing import KINDS as PREPROCESSINGS
from ..events.preprocessing import Preprocessor
from ..events.sampler import ClassBalancedBatchSampler
from ..events.splits import Splits, make_splits
from ..options import OptionsError, from_mapping, option, options
from ..options import to_dict as options_to_dict
from .augmentations import Augmentation, parse_augmentation, uniform_like
from .distributed import (
    SINGLE_PROCESS,
    World,
    epoch_seed,
    init_world,
    process_device,
    synchronised_batch_norm,
)
from .encoders import MAX_LATENT_DIM, MIN_LATENT_DIM, check_latent_dim
from .losses import nt_xent_loss, supcon_kl_loss, supcon_loss, vicreg_ce_loss, vicreg_loss
from .model import EmbeddingModel, build_model, resolve_device
from .model_file import (
    TrainingEvents,
    check_state_dict,
    file_fingerprint,
    load_torch_file,
    save_model,
)
from .optim import LARS, warmup_cosine_scheduler
from .particle_transformer import PRESETS as PARTICLE_TRANSFORMER_PRESETS

__all__ = [
    "METHODS",
    "PRESETS",
    "SELF_SUPERVISED_TEMPERATURES",
    "TrainConfig",
    "Trainer",
    "default_temperature",
    "same_label_partners",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "contrastx-checkpoint"
CHECKPOINT_KEYS = (
    "epoch",
    "config",
    "model",
    "optimizer",
    "scheduler",
    "aug_rng",
    "torch_rng",
    "history",
    "best_loss",
    "best_epoch",
    "best_state",
    "bad_epochs",
)

METHODS = ("simclr", "supcon", "vicreg", "vicreg_ce", "supcon_kl")
SUPERVISED = {"supcon", "vicreg_ce", "supcon_kl"}
ENCODER_KINDS = ("mlp", "transformer", "particle_transformer")
OPTIMIZERS = ("lars", "adam", "adamw")
SAMPLINGS = ("realistic", "balanced")

MAX_WARMUP_FRACTION = 0.2
"""The learning-rate warm-up lasts at most this fraction of the run's steps (the primary
paper's 10 warm-up epochs of 50)."""

EARLY_ESTIMATE_SECONDS = 10.0
"""Without a progress bar, the first epoch logs a time estimate once it has run this long."""

COLLAPSE_COSINE = 0.99
"""A trained model whose validation projections have a mean pairwise cosine similarity
above this has collapsed (every event projected to almost the same direction)."""

SELF_SUPERVISED_TEMPERATURES = {4: 0.9, 6: 0.8, 8: 0.6, 16: 0.5, 32: 0.4, 64: 0.3}
"""Primary paper, Table II: NT-Xent temperature per embedding dimension (self-supervised)."""

SUPERVISED_TEMPERATURE = 0.1
"""Primary paper: tau = 0.1 for supervised SimCLR, both architectures."""

VICREG_HEADS = {2: 2, 4: 4, 8: 4, 16: 8, 24: 8, 32: 16}
"""Primary paper, Table III: attention heads per embedding dimension (supervised VICReg)."""


def _nearest(table: dict[int, Any], d: int) -> Any:
    return table[min(table, key=lambda k: (abs(k - d), k))]


def default_temperature(method: str, latent_dim: int) -> float:
    """Default temperature: Table II for self-supervised SimCLR, 0.1 for supervised.

    For a dimension not in Table II the value of the nearest listed dimension is
    used (ties go to the smaller one), e.g. D = 2 -> 0.9, D = 24 -> 0.5.
    """
    if method == "simclr":
        return float(_nearest(SELF_SUPERVISED_TEMPERATURES, check_latent_dim(latent_dim)))
    return SUPERVISED_TEMPERATURE


@options(section="train")
class TrainConfig:
    """Every setting of a training run, with its default (primary paper's supervised MLP).

    Built with keywords (``TrainConfig(latent_dim=4, epochs=10)``) or from a preset
    (:meth:`from_preset`); every value is checked when the object is made (types are
    never coerced, bounds and choices are enforced) and the error names the key
    (``train.lr``). The object is frozen: use :func:`dataclasses.replace` for a variant.
    """

    method: str = option(
        "supcon",
        "Training objective: simclr (NT-Xent, self-supervised), supcon (SupCon with process "
        "labels), vicreg (self-supervised), vicreg_ce (alpha VICReg + (1 - alpha) "
        "cross-entropy) or supcon_kl (SupCon + KL with a Gaussian output block).",
        choices=METHODS,
    )
    encoder: str = option(
        "mlp",
        "Encoder architecture: mlp, transformer (primary paper) or particle_transformer "
        "(second paper; needs preprocessing = layout).",
        choices=ENCODER_KINDS,
    )
    latent_dim: int = option(
        8, "Embedding dimension D.", ge=MIN_LATENT_DIM, le=MAX_LATENT_DIM, metavar="D"
    )
    temperature: float | None = option(
        None,
        "NT-Xent/SupCon temperature; unset: the primary paper's Table II value for the "
        "embedding dimension (self-supervised SimCLR) or 0.1 (supervised).",
        gt=0,
    )
    epochs: int = option(50, "Training epochs (primary paper, Table I: 50).", ge=1)
    batch_size: int = option(1024, "Events per training step.", ge=2)
    lr: float = option(
        1.2,
        "Peak learning rate, reached after the warm-up (Table I: 1.2 for supervised and 0.8 "
        "for self-supervised SimCLR with LARS, 1e-3 with Adam).",
        gt=0,
    )
    weight_decay: float = option(1e-6, "Weight decay.", ge=0)
    optimizer: str = option(
        "lars", "Optimiser: LARS (the paper's MLP) or Adam/AdamW (its Transformer).",
        choices=OPTIMIZERS,
    )  # fmt: skip
    warmup_epochs: int = option(
        10,
        "Epochs of linear learning-rate warm-up before the cosine decay, at most a fifth of "
        "the run (the paper's 10 of 50 epochs): a shorter run warms up for a fifth of its "
        "epochs, so short runs need no override.",
        ge=0,
    )
    final_lr_factor: float = option(
        1e-3, "The cosine decay ends at this fraction of the peak learning rate.", ge=0, le=1
    )
    sampling: str = option(
        "realistic",
        "Batches in the sample's own mixture (realistic) or class-balanced (balanced: "
        "batch_size // n_classes events of every class, plus one more of batch_size % "
        "n_classes classes drawn per batch; batch_size must be at least n_classes).",
        choices=SAMPLINGS,
    )
    augmentation: str | None = option(
        "mask:0.5",
        "Augmentation spec: comma-separated name[:arg] items from mask[:p], gauss[:sigma], "
        "smear[:sigma], rotate, crop[:radius[:leading|random]] (e.g. mask:0.5,rotate); "
        "None (none on the command line) for no augmentation.",
    )
    preprocessing: str = option(
        "pt",
        "Input preprocessing fitted on the training folds: pt or log_pt (ADC2021 events) or "
        "layout (any layout: log of pT and masses, every feature standardised over the "
        "filled objects, event-level features individually).",
        choices=PREPROCESSINGS,
    )
    fold: int = option(0, "Validation fold (the model trains on the other folds).", ge=0)
    n_folds: int = option(5, "Folds of the training part of the split.", ge=2)
    test_fraction: float = option(
        0.2, "Fraction held out as the test set (never used in training).", ge=0, lt=1
    )
    patience: int | None = option(
        None,
        "Early stopping: stop after this many epochs without a lower validation loss and "
        "restore the best epoch's weights; unset: never stop early.",
        ge=1,
    )
    restore_best: bool = option(
        False,
        "Return the weights of the epoch with the lowest validation loss instead of the last "
        "epoch's (early stopping always does).",
    )
    alpha: float = option(
        0.5, "VICReg weight alpha in VICReg + cross-entropy (vicreg_ce).", ge=0, le=1
    )
    kl_weight: float = option(0.1, "KL weight beta of SupCon + KL (supcon_kl).", ge=0)
    head: str | None = option(
        "auto",
        "Projection head used by the loss: projection, dino or None; auto picks the "
        "projection head for the MLP and the DINO head for the Transformer.",
        choices=("auto", "projection", "dino", None),
        cli=False,
    )
    encoder_kwargs: dict[str, Any] = option(
        doc="Extra encoder settings (e.g. {n_layers = 2}).", default_factory=dict, cli=False
    )
    head_kwargs: dict[str, Any] = option(
        doc="Extra projection-head settings.", default_factory=dict, cli=False
    )
    seed: int = option(
        0,
        "Seeds the split, the model initialisation, the batches and the augmentations; "
        "the same seed gives the same model.",
        ge=0,
    )
    device: str = option("cpu", "Torch device: cpu, cuda or cuda:N.", cli=False)
    progress: bool = option(
        True,
        "Show a progress bar with an ETA when stderr is a terminal. Without a bar (not a "
        "terminal, or False) progress is logged at INFO, one line per epoch.",
        cli=False,
    )

    def _check(self) -> None:
        if self.fold >= self.n_folds:
            raise OptionsError(
                f"train.fold must be in [0, {self.n_folds - 1}] (n_folds = {self.n_folds}); "
                f"got {self.fold}"
            )
        if self.method in ("simclr", "vicreg") and not self.augmentation:
            raise OptionsError(
                f"train.method {self.method!r} needs an augmentation to make two views"
            )
        if self.augmentation:
            try:
                parse_augmentation(self.augmentation)
            except ValueError as err:
                raise OptionsError(f"train.augmentation: {err}") from None
        if self.encoder == "particle_transformer" and self.preprocessing != "layout":
            raise OptionsError(
                "train.preprocessing must be 'layout' for the particle_transformer encoder (it "
                f"takes the layout-preprocessed objects); got {self.preprocessing!r}"
            )

    @property
    def resolved_temperature(self) -> float:
        """The temperature used: ``temperature`` or :func:`default_temperature`."""
        if self.temperature is not None:
            return float(self.temperature)
        return default_temperature(self.method, self.latent_dim)

    @property
    def resolved_head(self) -> str | None:
        """The projection head used: ``head`` with ``"auto"`` resolved.

        ``"auto"``: the projection head for the MLP and the particle transformer, the
        DINO head for the Transformer.
        """
        if self.head == "auto":
            return "dino" if self.encoder == "transformer" else "projection"
        return self.head

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy."""
        return json.loads(json.dumps(options_to_dict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output (unknown keys are errors)."""
        return from_mapping(cls, d)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """A config from :data:`PRESETS` with keyword overrides.

        For ``vicreg-transformer`` the number of attention heads follows Table III for
        the chosen ``latent_dim`` unless ``encoder_kwargs`` sets ``n_heads``.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        values = copy.deepcopy(PRESETS[name])
        values.update(overrides)
        if name == "vicreg-transformer":
            kw = dict(values.get("encoder_kwargs") or {})
            latent_dim = values.get("latent_dim", 8)
            if isinstance(latent_dim, int) and not isinstance(latent_dim, bool):
                kw.setdefault("n_heads", _nearest(VICREG_HEADS, latent_dim))
            values["encoder_kwargs"] = kw
        return from_mapping(cls, values)


PRESETS: dict[str, dict[str, Any]] = {
    # Primary paper, Table I (and Table II for the self-supervised temperatures).
    "simclr-mlp": {
        "method": "simclr",
        "encoder": "mlp",
        "batch_size": 1024,
        "epochs": 50,
        "lr": 0.8,
        "weight_decay": 1e-6,
        "optimizer": "lars",
        "augmentation": "mask:0.5",
    },
    "supcon-mlp": {
        "method": "supcon",
        "encoder": "mlp",
        "batch_size": 1024,
        "epochs": 50,
        "lr": 1.2,
        "weight_decay": 1e-6,
        "optimizer": "lars",
        "augmentation": "mask:0.5",
    },
    "supcon-transformer": {
        "method": "supcon",
        "encoder": "transformer",
        "batch_size": 1024,
        "epochs": 50,
        "lr": 1e-3,
        "weight_decay": 1e-6,
        "optimizer": "adam",
        "augmentation": "mask:0.5",
    },
    # Not from the papers: the SupCon Transformer scaled down for a CPU (2 layers of width
    # 32 instead of Table IV's 4 of 64, batch 256 for more steps per event). The Table IV
    # model collapses (every projection equal) in the few hundred steps a CPU run affords.
    "supcon-transformer-cpu": {
        "method": "supcon",
        "encoder": "transformer",
        "batch_size": 256,
        "epochs": 20,
        "lr": 1e-3,
        "weight_decay": 1e-6,
        "optimizer": "adam",
        "augmentation": "mask:0.5",
        "encoder_kwargs": {"d_model": 32, "n_heads": 4, "dim_feedforward": 64, "n_layers": 2},
    },
    # Table I; cosine annealing without warm-up, "2-layer MLPs with 16 expansions"
    # (dim_feedforward = 16 d_model); alpha is not quoted (grid search).
    "vicreg-transformer": {
        "method": "vicreg_ce",
        "encoder": "transformer",
        "batch_size": 64,
        "epochs": 50,
        "lr": 1e-3,
        "weight_decay": 1e-2,
        "optimizer": "adamw",
        "warmup_epochs": 0,
        "augmentation": None,
        "head": None,
        "encoder_kwargs": {"dim_feedforward": 1024},
    },
    # Li, Nachman, Noll: Adam, 5 warm-up epochs, cosine, <= 100 epochs, patience 10,
    # batch 8192 class-balanced, D = 6, no augmentation. Their learning rate,
    # temperature and KL weight are not legible in our copy: 1e-3, 0.1, 0.1 here.
    "supcon-kl-transformer": {
        "method": "supcon_kl",
        "encoder": "transformer",
        "latent_dim": 6,
        "batch_size": 8192,
        "epochs": 100,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "optimizer": "adam",
        "warmup_epochs": 5,
        "sampling": "balanced",
        "augmentation": None,
        "patience": 10,
        "head": "projection",
    },
}
# The second paper's particle transformer (its setup, and a CPU-sized variant), defined
# with the encoder; every one preprocesses with the layout.
PRESETS.update(
    {
        name: {**copy.deepcopy(preset), "preprocessing": "layout"}
        for name, preset in PARTICLE_TRANSFORMER_PRESETS.items()
    }
)


def same_label_partners(
    labels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """For every row a random row with the same label (a within-class permutation).

    Returns an index tensor ``p`` with ``labels[p] == labels``; vectorised.
    """
    base = labels.to(torch.float64)
    keys = base + uniform_like(labels.shape, base, generator)
    shuffled = torch.argsort(keys)
    ordered = torch.argsort(labels, stable=True)
    partners = torch.empty_like(ordered)
    partners[ordered] = shuffled
    return partners


@dataclass
class _FitState:
    """What one :meth:`Trainer.fit` call works on, passed between its steps."""

    device: torch.device
    splits: Splits
    n_train: int
    n_validation: int
    class_names: list[str]
    preprocessor: Preprocessor
    model_config: dict[str, Any]
    model: EmbeddingModel
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    augmentation: Augmentation | None
    gen: torch.Generator
    steps_per_epoch: int
    x_tr: torch.Tensor
    y_tr: torch.Tensor
    x_va: torch.Tensor
    y_va: torch.Tensor
    layout: EventLayout = ADC2021
    ev_tr: torch.Tensor | None = None
    ev_va: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(
        default_factory=lambda: {"loss": float("inf"), "epoch": -1, "state": None, "bad_epochs": 0}
    )
    start_epoch: int = 0
    stopped_early: bool = False
    world: World = SINGLE_PROCESS


class _ProgressReport:
    """Progress of one fit: a tqdm bar on a terminal, otherwise log lines with an ETA.

    Without a bar, every epoch logs one INFO line (losses, time taken, elapsed time and
    the time to go, from the mean epoch time of this session), and the first epoch of the
    session logs one early estimate once it has run :data:`EARLY_ESTIMATE_SECONDS`.
    """

    def __init__(
        self, config: TrainConfig, steps_per_epoch: int, start_epoch: int, quiet: bool = False
    ) -> None:
        self.config = config
        self.steps_per_epoch = steps_per_epoch
        self.epochs = config.epochs
        self.quiet = quiet
        self.use_bar = config.progress and stderr_is_terminal() and not quiet
        self.progress = Progress(
            config.epochs * steps_per_epoch,
            initial=start_epoch * steps_per_epoch,
            bar=self.use_bar,
            desc=f"{config.method}/{config.encoder} D={config.latent_dim}",
            unit="step",
        )
        self.epoch_t0 = self.progress.t0
        self.steps_this_epoch = 0
        self.epoch_seconds: list[float] = []
        self.early_estimate_due = not self.use_bar and not quiet

    def start(self, state: _FitState) -> None:
        c = self.config
        if self.quiet:
            return
        if state.start_epoch >= c.epochs:
            logger.info("all %d epochs are done already; nothing to train", c.epochs)
            return
        todo = (
            f"epochs {state.start_epoch + 1} to {c.epochs}"
            if state.start_epoch
            else f"{c.epochs} epochs"
        )
        processes = f" over {state.world.size} processes" if state.world.distributed else ""
        logger.info(
            "training %s/%s D=%d on %d events (validation %d): %s of %d steps of %d events%s",
            c.method,
            c.encoder,
            c.latent_dim,
            state.n_train,
            state.n_validation,
            todo,
            self.steps_per_epoch,
            c.batch_size,
            processes,
        )

    def epoch_start(self) -> None:
        self.epoch_t0 = time.perf_counter()
        self.steps_this_epoch = 0

    def step(self, epoch: int, mean_loss: float) -> None:
        self.steps_this_epoch += 1
        self.progress.update(1)
        if self.progress.bar is not None:
            self.progress.bar.set_postfix(epoch=epoch, loss=f"{mean_loss:.4f}")
            return
        if not self.early_estimate_due or self.steps_this_epoch >= self.steps_per_epoch:
            return
        seconds = time.perf_counter() - self.epoch_t0
        if seconds < EARLY_ESTIMATE_SECONDS:
            return
        self.early_estimate_due = False
        steps_left = (self.epochs - epoch) * self.steps_per_epoch - self.steps_this_epoch
        logger.info(
            "the first %d of %d steps of epoch %d/%d took %s; about %s to go",
            self.steps_this_epoch,
            self.steps_per_epoch,
            epoch + 1,
            self.epochs,
            format_duration(seconds),
            format_duration(seconds / self.steps_this_epoch * steps_left),
        )

    def epoch_end(self, record: dict[str, Any]) -> None:
        self.early_estimate_due = False
        if self.quiet:
            return
        self.epoch_seconds.append(record["seconds"])
        epoch = record["epoch"] + 1
        left = self.epochs - epoch
        if left:
            eta = format_duration(self._seconds_per_epoch() * left)
            to_go = f"{'at most' if self.config.patience else 'about'} {eta} to go"
        else:
            to_go = "done"
        logger.log(
            logging.DEBUG if self.use_bar else logging.INFO,
            "epoch %d/%d: train loss %.4f, val loss %.4f, took %s; elapsed %s, %s",
            epoch,
            self.epochs,
            record["train_loss"],
            record["val_loss"],
            format_duration(record["seconds"]),
            format_duration(self.progress.elapsed),
            to_go,
        )

    def _seconds_per_epoch(self) -> float:
        """Seconds per epoch for the time to go: the mean of this session's last five epochs.

        The first epoch is left out once there are others (it carries start-up costs).
        """
        times = self.epoch_seconds[1:] or self.epoch_seconds
        recent = times[-5:]
        return sum(recent) / len(recent)

    def stopped_early(self, epoch: int, best_epoch: int) -> None:
        if self.quiet:
            return
        logger.info(
            "early stopping before epoch %d/%d: no lower validation loss for %d epochs "
            "(best epoch %d)",
            epoch + 1,
            self.epochs,
            self.config.patience,
            best_epoch + 1,
        )

    def close(self) -> None:
        self.progress.close()


class Trainer:
    """Train an embedding model with one :class:`TrainConfig`.

    Parameters
    ----------
    config : TrainConfig
        The run's settings (stored unchanged, scikit-learn style).

    Attributes
    ----------
    model_ : EmbeddingModel
        The trained model: the last epoch's, or the lowest-validation-loss epoch's with
        ``patience`` or ``restore_best``.
    preprocessor_ : Preprocessor
        Fitted on the training folds; its state lives inside the model too.
    class_names_ : list of str
        Process names of the training classes (label ``k`` of the model is
        ``class_names_[k]``).
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``seconds``.
    best_epoch_ : int
        Epoch with the lowest validation loss.
    stopped_early_ : bool
        Whether early stopping ended the run before ``epochs``.
    training_events_ : TrainingEvents or None
        The event file and its rows trained on (when ``fit`` was given ``event_file``).

    Examples
    --------
    >>> from contrastx.events.generators import generate_sample
    >>> ev = generate_sample({"W": 64, "Z": 64}, seed=0)
    >>> cfg = TrainConfig(latent_dim=4, epochs=1, batch_size=32, warmup_epochs=0, progress=False)
    >>> trainer = Trainer(cfg).fit(ev)
    >>> trainer.embed(ev).shape
    (128, 4)
    """

    def __init__(self, config: TrainConfig) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
        self.config = config

    # ------------------------------------------------------------------ setup
    def model_config(self, n_classes: int) -> dict[str, Any]:
        c = self.config
        return {
            "kind": "embedding",
            "encoder": c.encoder,
            "latent_dim": c.latent_dim,
            "encoder_kwargs": dict(c.encoder_kwargs),
            "head": c.resolved_head,
            "head_kwargs": dict(c.head_kwargs),
            "gaussian": c.method == "supcon_kl",
            "n_classes": n_classes if c.method == "vicreg_ce" else None,
        }

    def _optimizer(self, model: EmbeddingModel) -> torch.optim.Optimizer:
        c = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        if c.optimizer == "lars":
            return LARS(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)

    def _batches(self, labels: np.ndarray, epoch: int) -> Iterator[np.ndarray]:
        c = self.config
        n = labels.size
        if c.sampling == "balanced":
            sampler = ClassBalancedBatchSampler(
                labels, c.batch_size, seed=c.seed, allow_remainder=True
            )
            sampler.set_epoch(epoch)
            for b in sampler:
                yield np.asarray(b)
            return
        perm = np.random.default_rng((c.seed, epoch)).permutation(n)
        if n <= c.batch_size:
            yield perm
            return
        for lo in range(0, n - c.batch_size + 1, c.batch_size):  # drop the last partial batch
            yield perm[lo : lo + c.batch_size]

    def _n_batches(self, labels: np.ndarray) -> int:
        """Steps per epoch (the last partial batch is dropped in both sampling modes)."""
        return max(labels.size // self.config.batch_size, 1)

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        model: EmbeddingModel,
        x: torch.Tensor,
        y: torch.Tensor,
        augmentation: Augmentation | None,
        generator: torch.Generator,
        event_features: torch.Tensor | None = None,
        *,
        world: World = SINGLE_PROCESS,
    ) -> torch.Tensor:
        """The configured loss on one batch of raw particles ``x`` with labels ``y``.

        ``event_features`` are the batch's raw event-level features, for a model of a
        layout with event-level encoder features (augmentations leave them unchanged).

        Over several processes (``world``, see :mod:`contrastx.embed.distributed`) ``x``,
        ``y`` and ``event_features`` are the whole global batch on every process: the
        views are made of the whole batch, each process runs the model on its own rows
        of them, and the gathered outputs give every process the loss of the whole
        batch (its gradient reaches each process for its own rows only).
        """
        c = self.config
        tau = c.resolved_temperature
        ev = event_features

        def view(inp: torch.Tensor) -> torch.Tensor:
            return augmentation(inp, generator) if augmentation is not None else inp

        def forward(
            views: list[torch.Tensor], features: list[torch.Tensor | None], keys: tuple[str, ...]
        ) -> dict[str, torch.Tensor]:
            return _forward_views(model, views, None if ev is None else features, keys, world)

        if c.method in ("simclr", "vicreg"):
            n = x.shape[0]
            out = forward([view(x), view(x)], [ev, ev], ("projection",))
            p1, p2 = out["projection"][:n], out["projection"][n:]
            if c.method == "simclr":
                return nt_xent_loss(p1, p2, tau)
            return vicreg_loss(p1, p2)
        if c.method == "supcon":
            if augmentation is None:
                return supcon_loss(forward([x], [ev], ("projection",))["projection"], y, tau)
            n = x.shape[0]
            proj = forward([view(x), view(x)], [ev, ev], ("projection",))["projection"]
            return supcon_loss([proj[:n], proj[n:]], y, tau)
        if c.method == "vicreg_ce":
            n = x.shape[0]
            partner = same_label_partners(y.cpu(), generator).to(x.device)
            out = forward(
                [view(x), view(x[partner])],
                [ev, None if ev is None else ev[partner]],
                ("projection", "logits"),
            )
            p = out["projection"]
            return vicreg_ce_loss(p[:n], p[n:], out["logits"], torch.cat([y, y]), c.alpha)
        # supcon_kl
        out = forward([view(x)], [ev], ("projection", "mu", "logvar"))
        return supcon_kl_loss(out["projection"], y, out["mu"], out["logvar"], tau, c.kl_weight)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        events: Events,
        *,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
        on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
        event_file: str | os.PathLike | None = None,
        event_rows: np.ndarray | None = None,
    ) -> Trainer:
        """Train on the four training folds of ``events``, validate on ``config.fold``.

        Progress is shown as a bar with an ETA when stderr is a terminal and
        ``config.progress`` is true; otherwise it is logged (logger
        ``contrastx.embed.training``, level INFO): one line per epoch with the losses,
        the time taken and an estimate of the time to go, and, during a long first
        epoch, one early estimate.

        Launched by ``torchrun`` (``WORLD_SIZE`` > 1), or with a default process group
        made by the caller, every process calls ``fit`` with the same events and config
        and the run is spread over them (see :mod:`contrastx.embed.distributed`:
        ``batch_size`` is the global batch, the result equals the single-process run to
        rounding). The default process group is created if needed and left open
        (:func:`contrastx.embed.distributed.shutdown` closes it); rank 0 alone logs
        progress and writes the checkpoint, and every process ends with the same model.

        Parameters
        ----------
        events : Events
            Labelled events (labels are required for the supervised methods and
            for class-balanced sampling), in any layout; a layout other than ADC2021
            needs ``preprocessing="layout"``.
        checkpoint : path, optional
            Written after every epoch (atomic replace).
        resume : bool
            Continue from ``checkpoint`` if it exists (its config must match).
        on_epoch_end : callable, optional
            ``f(epoch, record)`` after each epoch's checkpoint is written.
        event_file : path, optional
            The file ``events`` were read from. Its fingerprint and the file rows of the
            training and validation events are recorded (``training_events_``) and saved
            with the model, so that a later step can leave those events out.
        event_rows : array of int, optional
            File row of every event in ``events`` (``events`` is a selection of the
            file); default ``0 .. len(events) - 1`` (the whole file, in order).

        Returns
        -------
        Trainer
            ``self``, with the fitted attributes set.

        Raises
        ------
        ValueError
            Unusable events, or a checkpoint that is not a contrastx checkpoint of this
            configuration (the message names the file).
        """
        c = self.config
        source = self._event_source(events, event_file, event_rows)
        world = init_world(c.device)
        state = self._setup(events, world)
        ckpt_path = Path(checkpoint) if checkpoint is not None else None
        if resume and ckpt_path is not None:
            self._resume(state, ckpt_path)
        report = _ProgressReport(
            c, state.steps_per_epoch, state.start_epoch, quiet=not world.is_main
        )
        report.start(state)
        try:
            with synchronised_batch_norm(state.model, world):
                for epoch in range(state.start_epoch, c.epochs):
                    if state.best["bad_epochs"] >= (c.patience or np.inf):
                        state.stopped_early = True
                        report.stopped_early(epoch, state.best["epoch"])
                        break
                    if world.distributed:  # dropout and noise inside the model, per process
                        torch.manual_seed(epoch_seed(c.seed, epoch, world.rank))
                    t0 = time.perf_counter()
                    train_loss = self._train_epoch(state, epoch, report)
                    val_loss = self._validate(
                        state.model,
                        state.x_va,
                        state.y_va,
                        state.augmentation,
                        state.device,
                        state.ev_va,
                        world,
                    )
                    record = {
                        "epoch": epoch,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "lr": state.opt.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - t0,
                    }
                    state.history.append(record)
                    self._update_best(state, epoch, val_loss)
                    if ckpt_path is not None:
                        if world.is_main:
                            self._checkpoint(ckpt_path, epoch, state)
                        world.barrier()
                    report.epoch_end(record)
                    if on_epoch_end is not None:
                        on_epoch_end(epoch, record)
        finally:
            report.close()
        self._finish(state, events, source)
        return self

    @staticmethod
    def _event_source(
        events: Events, event_file: str | os.PathLike | None, event_rows: Any
    ) -> tuple[str, dict[str, Any], np.ndarray] | None:
        """Path, fingerprint and per-event file rows of ``event_file`` (checked), or None."""
        if event_file is None:
            if event_rows is not None:
                raise ValueError("event_rows needs event_file (the file the rows refer to)")
            return None
        if not isinstance(event_file, (str, os.PathLike)):
            raise TypeError(f"event_file must be a path; got {type(event_file).__name__}")
        n = len(events) if isinstance(events, Events) else 0
        if event_rows is None:
            rows = np.arange(n, dtype=np.int64)
        else:
            rows = np.asarray(event_rows)
            if rows.shape != (n,) or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
                raise ValueError(
                    f"event_rows must be {n} integers (one file row per event); got "
                    f"{rows.dtype} {rows.shape}"
                )
            if rows.size and (rows.min() < 0 or np.unique(rows).size != rows.size):
                raise ValueError("event_rows must be distinct non-negative file rows")
            rows = rows.astype(np.int64)
        path = Path(event_file)
        return str(path.resolve()), file_fingerprint(path), rows

    def _setup(self, events: Events, world: World = SINGLE_PROCESS) -> _FitState:
        """Split and check the data, fit the preprocessing, build model and optimiser.

        The calls that draw random numbers come in a fixed order (model initialisation
        after ``torch.manual_seed``), so a run is reproducible from its config, and every
        process of a multi-process run builds the same model.
        """
        c = self.config
        if not isinstance(events, Events):
            raise TypeError(f"events must be an Events container; got {type(events).__name__}")
        device = resolve_device(process_device(c.device, world))
        needs_labels = c.method in SUPERVISED or c.sampling == "balanced"
        if needs_labels and (events.labels == UNKNOWN_LABEL).any():
            raise ValueError(
                f"method {c.method!r} with {c.sampling!r} sampling needs process labels for "
                "every event; this sample has unlabelled events"
            )
        splits = make_splits(
            len(events),
            n_folds=c.n_folds,
            test_fraction=c.test_fraction,
            seed=c.seed,
            labels=events.labels,
        )
        tr_idx, va_idx = splits.train(c.fold), splits.validation(c.fold)
        # Validation runs in batches of batch_size in this order: shuffle it once (seeded),
        # or a sample stored by process (a Pythia file) gives one-process batches and a
        # validation loss of another mixture than training's.
        va_idx = va_idx[np.random.default_rng([c.seed, 0x7A11]).permutation(va_idx.size)]
        if world.distributed and min(c.batch_size, tr_idx.size) < world.size:
            raise ValueError(
                f"each of the {world.size} processes needs events of every batch: batch_size "
                f"({c.batch_size}) and the training events ({tr_idx.size}) must be at least "
                f"{world.size}"
            )
        present = np.unique(events.labels[tr_idx])
        present = present[present != UNKNOWN_LABEL]
        class_names = [events.process_names[k] for k in present]
        lut = np.full(len(events.process_names) + 1, -1, dtype=np.int64)
        lut[present] = np.arange(present.size)
        y_all = lut[events.labels]  # label -1 indexes the trailing -1
        if c.method in SUPERVISED and present.size < 2:
            raise ValueError(f"method {c.method!r} needs at least two classes; got {class_names}")
        if c.sampling == "balanced" and c.batch_size < present.size:
            raise ValueError(
                f"batch_size {c.batch_size} must be at least the number of classes "
                f"({present.size}) for balanced sampling"
            )
        layout = events.layout
        if c.preprocessing == "layout":
            pre = Preprocessor("layout", layout).fit(events[tr_idx])
        elif layout != ADC2021:
            raise ValueError(
                f"events in layout {layout.name!r} need preprocessing 'layout' (the "
                f"{c.preprocessing!r} preprocessing is for ADC2021 events); set preprocessing "
                "to 'layout' (--preprocessing layout)"
            )
        else:
            pre = Preprocessor(c.preprocessing).fit(events.particles[tr_idx])

        torch.manual_seed(c.seed)
        model_cfg = self.model_config(len(class_names))
        model = build_model(
            {**model_cfg_without_kind(model_cfg), "preprocessing": pre.state_dict()}
        )
        model.to(device)
        opt = self._optimizer(model)
        steps_per_epoch = self._n_batches(y_all[tr_idx])
        warmup = self._warmup_steps(steps_per_epoch, log=world.is_main)
        sched = warmup_cosine_scheduler(opt, warmup, c.epochs * steps_per_epoch, c.final_lr_factor)
        augmentation = parse_augmentation(c.augmentation, layout) if c.augmentation else None
        gen = torch.Generator().manual_seed(c.seed)
        ev = None
        if layout.encoder_event_features.size:
            ev = torch.from_numpy(events.event_features)
        return _FitState(
            device=device,
            splits=splits,
            n_train=int(tr_idx.size),
            n_validation=int(va_idx.size),
            class_names=class_names,
            preprocessor=pre,
            model_config=model_cfg,
            model=model,
            opt=opt,
            sched=sched,
            augmentation=augmentation,
            gen=gen,
            steps_per_epoch=steps_per_epoch,
            x_tr=torch.from_numpy(events.particles[tr_idx]),
            y_tr=torch.from_numpy(y_all[tr_idx]),
            x_va=torch.from_numpy(events.particles[va_idx]),
            y_va=torch.from_numpy(y_all[va_idx]),
            layout=layout,
            ev_tr=None if ev is None else ev[tr_idx],
            ev_va=None if ev is None else ev[va_idx],
            world=world,
        )

    def _warmup_steps(self, steps_per_epoch: int, log: bool = True) -> int:
        """Warm-up steps: ``warmup_epochs``, at most :data:`MAX_WARMUP_FRACTION` of the run.

        A warm-up set for a long run (the presets' 10 epochs for 50) would take most or
        all of a short one; it is scaled down to that fraction of the run, and the change
        is logged (INFO) when ``log``.
        """
        c = self.config
        warmup = c.warmup_epochs * steps_per_epoch
        cap = int(MAX_WARMUP_FRACTION * c.epochs * steps_per_epoch)
        if warmup > cap:
            if not log:
                return cap
            logger.info(
                "learning-rate warm-up over the first %g of %d epochs (warmup_epochs = %d is "
                "shortened to %.0f%% of the run)",
                round(cap / steps_per_epoch, 2),
                c.epochs,
                c.warmup_epochs,
                100 * MAX_WARMUP_FRACTION,
            )
            return cap
        return warmup

    def _resume(self, state: _FitState, path: Path) -> None:
        """Restore ``state`` from the checkpoint at ``path`` if it exists.

        Over several processes rank 0 reads the file and sends its contents (or its
        error) to the others, so every process resumes from the same state, with or
        without a file system they share.
        """
        world = state.world
        if world.distributed:
            result = None
            if world.is_main:
                try:
                    result = (True, self._read_checkpoint(path))
                except Exception as err:  # every process raises it, none waits for rank 0
                    result = (False, err)
            ok, value = world.broadcast(result)
            if not ok:
                raise value
            ck = value
        else:
            ck = self._read_checkpoint(path)
        if ck is None:
            return
        check_state_dict(state.model, ck["model"], path)
        state.model.load_state_dict(ck["model"])
        state.opt.load_state_dict(ck["optimizer"])
        state.sched.load_state_dict(ck["scheduler"])
        state.gen.set_state(ck["aug_rng"])
        torch.set_rng_state(ck["torch_rng"])
        state.history = json.loads(ck["history"])
        state.best = {
            "loss": float(ck["best_loss"]),
            "epoch": int(ck["best_epoch"]),
            "state": ck["best_state"] or None,
            "bad_epochs": int(ck["bad_epochs"]),
        }
        state.start_epoch = int(ck["epoch"]) + 1
        if world.is_main:
            written_by = int(ck.get("world_size", 1))
            by = (
                f" (written by {written_by} processes, continued by {world.size})"
                if written_by != world.size
                else ""
            )
            logger.info(
                "resuming from %s after epoch %d/%d%s",
                path,
                state.start_epoch,
                self.config.epochs,
                by,
            )

    def _read_checkpoint(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint at ``path`` (None if there is none), checked against this config."""
        if not path.exists():
            return None
        c = self.config
        ck = load_torch_file(path, "contrastx checkpoint")
        if not isinstance(ck, dict):
            raise ValueError(f"{path}: not a contrastx checkpoint")
        kind = ck.get("format", CHECKPOINT_FORMAT)
        if kind != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a contrastx checkpoint (a {kind!r} file)")
        missing = [k for k in CHECKPOINT_KEYS if k not in ck]
        if missing:
            raise ValueError(f"{path}: not a contrastx checkpoint (no {missing[0]!r} entry)")
        saved_cfg = json.loads(ck["config"])
        mine = {k: v for k, v in c.to_dict().items() if k not in ("progress", "device")}
        theirs = {k: v for k, v in saved_cfg.items() if k not in ("progress", "device")}
        # a setting added after the checkpoint was written counts as its default there
        defaults = TrainConfig().to_dict()
        theirs.update({k: defaults[k] for k in mine.keys() - theirs.keys() if k in defaults})
        if mine != theirs:
            raise ValueError(f"checkpoint {path} was written with a different config")
        return ck

    def _train_epoch(self, state: _FitState, epoch: int, report: _ProgressReport) -> float:
        """One pass over the training batches; returns the mean training loss."""
        model, opt, sched = state.model, state.opt, state.sched
        model.train()
        report.epoch_start()
        total, count = 0.0, 0
        for idx in self._batches(state.y_tr.numpy(), epoch):
            if idx.size < 2:
                continue
            xb = state.x_tr[idx].to(state.device)
            yb = state.y_tr[idx].to(state.device)
            evb = None if state.ev_tr is None else state.ev_tr[idx].to(state.device)
            loss = self.compute_loss(
                model, xb, yb, state.augmentation, state.gen, evb, world=state.world
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite loss at epoch {epoch}; lower the learning rate"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            state.world.all_reduce_gradients(model.parameters())
            opt.step()
            sched.step()
            total += loss.item() * idx.size
            count += idx.size
            report.step(epoch, total / count)
        return total / max(count, 1)

    @torch.no_grad()
    def _validate(
        self,
        model: EmbeddingModel,
        x: torch.Tensor,
        y: torch.Tensor,
        augmentation: Augmentation | None,
        device: torch.device,
        event_features: torch.Tensor | None = None,
        world: World = SINGLE_PROCESS,
    ) -> float:
        """Validation loss in eval mode with fixed augmentation draws (comparable across epochs).

        Over several processes the batches are shared out like the training batches
        (the loss is the single-process one to rounding) and every process takes rank
        0's value, so that all take the same early-stopping decisions.
        """
        if x.shape[0] < 2:
            return float("nan")
        model.eval()
        gen = torch.Generator().manual_seed(self.config.seed + 1)
        bs = self.config.batch_size
        total, count = 0.0, 0
        for lo in range(0, x.shape[0], bs):
            xb, yb = x[lo : lo + bs].to(device), y[lo : lo + bs].to(device)
            if xb.shape[0] < 2:
                continue
            evb = None if event_features is None else event_features[lo : lo + bs].to(device)
            loss = self.compute_loss(model, xb, yb, augmentation, gen, evb, world=world)
            total += float(loss) * xb.shape[0]
            count += xb.shape[0]
        return world.broadcast(total / max(count, 1))

    @staticmethod
    def _update_best(state: _FitState, epoch: int, val_loss: float) -> None:
        """Early-stopping bookkeeping: keep the weights of the lowest validation loss."""
        best = state.best
        if val_loss < best["loss"]:
            best.update(
                loss=val_loss,
                epoch=epoch,
                state={k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()},
                bad_epochs=0,
            )
        else:
            best["bad_epochs"] += 1

    def _checkpoint(self, path: Path, epoch: int, state: _FitState) -> None:
        """Write everything a resumed run needs to continue identically (atomic replace)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        best = state.best
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch,
            "config": json.dumps(self.config.to_dict()),
            "model": {k: v.detach().cpu() for k, v in state.model.state_dict().items()},
            "optimizer": state.opt.state_dict(),
            "scheduler": state.sched.state_dict(),
            "aug_rng": state.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": json.dumps(state.history),
            "best_loss": best["loss"],
            "best_epoch": best["epoch"],
            "best_state": best["state"] or {},
            "bad_epochs": best["bad_epochs"],
            "world_size": state.world.size,
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    @torch.no_grad()
    def _projection_cosine(
        self,
        model: EmbeddingModel,
        x: torch.Tensor,
        device: torch.device,
        event_features: torch.Tensor | None = None,
    ) -> float:
        """Mean pairwise cosine similarity of the projections of ``x`` (eval mode).

        ``|sum_i p_i / N|^2`` for the unit-normalised projections ``p_i`` (pairs with
        themselves included): 1 when every event is projected to the same direction.
        """
        if x.shape[0] < 2:
            return float("nan")
        model.eval()
        total = None
        bs = self.config.batch_size
        for lo in range(0, x.shape[0], bs):
            extra = {}
            if event_features is not None:
                extra["event_features"] = event_features[lo : lo + bs].to(device)
            proj = model(x[lo : lo + bs].to(device), **extra)["projection"]
            part = nn.functional.normalize(proj.double(), dim=1).sum(dim=0)
            total = part if total is None else total + part
        return float((total / x.shape[0]).square().sum())

    def _finish(
        self,
        state: _FitState,
        events: Events,
        source: tuple[str, dict[str, Any], np.ndarray] | None,
    ) -> None:
        """Restore the best weights (with early stopping) and set the fitted attributes."""
        c = self.config
        model = state.model
        if (c.patience is not None or c.restore_best) and state.best["state"] is not None:
            model.load_state_dict(state.best["state"])
        model.eval()
        cosine = self._projection_cosine(model, state.x_va, state.device, state.ev_va)
        if cosine > COLLAPSE_COSINE and state.world.is_main:
            logger.warning(
                "the trained model projects the validation events to almost the same direction "
                "(mean cosine similarity %.4f): it has collapsed or has not trained enough, and "
                "its embedding carries little information. Train for more steps (more "
                "events or epochs, a smaller batch_size) or with a lower learning rate; on a "
                "CPU, train the Transformer with the supcon-transformer-cpu preset",
                cosine,
            )
        splits = state.splits
        self.model_ = model
        self.model_config_ = state.model_config
        self.preprocessor_ = state.preprocessor
        self.class_names_ = state.class_names
        self.history_ = state.history
        self.best_epoch_ = int(state.best["epoch"])
        self.stopped_early_ = state.stopped_early
        self.splits_ = splits
        self.training_events_ = None
        if source is not None:
            path, fingerprint, rows = source
            self.training_events_ = TrainingEvents(
                path=path,
                fingerprint=fingerprint,
                train_rows=rows[splits.train(c.fold)],
                validation_rows=rows[splits.validation(c.fold)],
            )
        self.metadata_ = {
            "source": events.metadata.get("source_file", events.metadata.get("generator", "")),
            "n_train": state.n_train,
            "n_validation": state.n_validation,
            "split": {
                "n": splits.n,
                "seed": splits.seed,
                "test_fraction": splits.test_fraction,
                "n_folds": splits.n_folds,
                "fold": c.fold,
                "stratified": True,
            },
            "temperature": c.resolved_temperature,
            "validation_projection_cosine": None if np.isnan(cosine) else cosine,
        }

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("this Trainer is not fitted yet: call fit() first")

    def embed(self, data: Any, batch_size: int = 4096) -> np.ndarray:
        """Embed raw events with the trained model (see :func:`contrastx.embed.embed`)."""
        from .model import embed

        self._check_fitted()
        return embed(self.model_, data, batch_size=batch_size, device=self.config.device)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the trained model, config, preprocessing and history to one file."""
        self._check_fitted()
        return save_model(
            path,
            self.model_,
            self.model_config_,
            preprocessing=self.preprocessor_.state_dict(),
            train_config=self.config.to_dict(),
            history=self.history_,
            class_names=self.class_names_,
            metadata=self.metadata_,
            training_events=self.training_events_,
        )


def model_cfg_without_kind(cfg: dict[str, Any]) -> dict[str, Any]:
    """A model config without its ``kind`` key (what :func:`build_model` takes)."""
    return {k: v for k, v in cfg.items() if k != "kind"}


def _forward_views(
    model: EmbeddingModel,
    views: list[torch.Tensor],
    features: list[torch.Tensor] | None,
    keys: tuple[str, ...],
    world: World,
) -> dict[str, torch.Tensor]:
    """``model`` on the views (each a whole batch, stacked), as one process computes it.

    One process: ``model(torch.cat(views))``, with the views' event-level ``features``
    stacked alike. Several: each process runs the model once on its
    :meth:`~contrastx.embed.distributed.World.shard` of every view, and the outputs
    ``keys`` of all processes are gathered (one collective, with gradients) into the
    single-process layout. A process without rows (a last validation batch smaller than
    the number of processes) runs one row and contributes none.
    """

    def stack(parts: list[torch.Tensor]) -> torch.Tensor:
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    if not world.distributed:
        extra = {} if features is None else {"event_features": stack(features)}
        return model(stack(views), **extra)
    n = views[0].shape[0]
    rows = world.shard(n)
    m = rows.stop - rows.start
    take = rows if m else slice(0, 1)
    extra = {} if features is None else {"event_features": stack([f[take] for f in features])}
    out = model(stack([v[take] for v in views]), **extra)
    k = len(views)
    widths = [out[key].shape[1] for key in keys]
    # (k * rows, widths) -> (rows, k * widths): the outputs of one event in every view
    # side by side, so one gather moves them all
    packed = torch.cat([out[key] for key in keys], dim=1)
    packed = packed.reshape(k, -1, packed.shape[1])[:, :m].transpose(0, 1).reshape(m, -1)
    full = world.gather_rows(packed, n).reshape(n, k, -1).transpose(0, 1).reshape(k * n, -1)
    return dict(zip(keys, full.split(widths, dim=1), strict=True))
