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

The data are split with :func:`contrastx.events.make_splits` (stratified by label,
20 % test held out, 5 folds): the model trains on the four folds other than
``fold`` and is validated on ``fold``; the test set is never touched. The learning
rate follows ``warmup_epochs`` of linear warm-up and a cosine decay to
``final_lr_factor`` of the base (per step). Early stopping watches the validation
loss. Checkpoints hold the epoch, model, optimiser, scheduler, early-stopping state
and every random state, so an interrupted run resumes to the same result.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..events.container import UNKNOWN_LABEL, Events
from ..events.preprocessing import Preprocessor
from ..events.sampler import ClassBalancedBatchSampler
from ..events.splits import make_splits
from .augmentations import Augmentation, parse_augmentation
from .encoders import check_latent_dim
from .losses import nt_xent_loss, supcon_kl_loss, supcon_loss, vicreg_ce_loss, vicreg_loss
from .model import EmbeddingModel, build_model, resolve_device
from .model_file import save_model
from .optim import LARS, warmup_cosine_scheduler

__all__ = [
    "METHODS",
    "PRESETS",
    "SELF_SUPERVISED_TEMPERATURES",
    "TrainConfig",
    "Trainer",
    "default_temperature",
    "same_label_partners",
]

METHODS = ("simclr", "supcon", "vicreg", "vicreg_ce", "supcon_kl")
SUPERVISED = {"supcon", "vicreg_ce", "supcon_kl"}
OPTIMIZERS = ("lars", "adam", "adamw")
SAMPLINGS = ("realistic", "balanced")

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


@dataclass
class TrainConfig:
    """Every knob of a training run, with its default (primary paper's supervised MLP).

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    encoder : {"mlp", "transformer"}
    latent_dim : int
        Embedding dimension D in [2, 64].
    temperature : float or None
        NT-Xent/SupCon temperature; None takes :func:`default_temperature`.
    epochs, batch_size, lr, weight_decay
        Table I (supervised SimCLR MLP: 50, 1024, 1.2, 1e-6).
    optimizer : {"lars", "adam", "adamw"}
        LARS for the MLP, Adam/AdamW for the Transformer in the paper.
    warmup_epochs, final_lr_factor
        Linear warm-up epochs, then cosine decay to ``final_lr_factor * lr`` (10, 1e-3).
    sampling : {"realistic", "balanced"}
        Shuffled batches in the sample's own mixture, or class-balanced batches
        (:class:`~contrastx.events.ClassBalancedBatchSampler`; ``batch_size`` must be
        a multiple of the number of classes).
    augmentation : str or None
        Spec for :func:`~contrastx.embed.augmentations.parse_augmentation`
        (default ``"mask:0.5"``, the paper's naive masking); None for none.
    preprocessing : {"pt", "log_pt"}
        :class:`~contrastx.events.Preprocessor` kind, fitted on the training folds.
    fold, n_folds, test_fraction
        Validation fold and split (see :func:`~contrastx.events.make_splits`).
    patience : int or None
        Early stopping: stop after this many epochs without a lower validation loss
        (None: never); the best epoch's weights are restored at the end.
    alpha : float
        VICReg weight in VICReg + CE (Eq. 11).
    kl_weight : float
        KL weight beta of SupCon + KL.
    head : str or None
        ``"projection"``, ``"dino"`` or None; ``"auto"`` picks the projection head for
        the MLP and the DINO head for the Transformer.
    encoder_kwargs, head_kwargs : dict
        Extra architecture settings (e.g. ``{"n_layers": 2}``).
    seed : int
        Seeds the split, the model initialisation, the batches and the augmentations.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    progress : bool
        Show a tqdm progress bar.
    """

    method: str = "supcon"
    encoder: str = "mlp"
    latent_dim: int = 8
    temperature: float | None = None
    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1.2
    weight_decay: float = 1e-6
    optimizer: str = "lars"
    warmup_epochs: int = 10
    final_lr_factor: float = 1e-3
    sampling: str = "realistic"
    augmentation: str | None = "mask:0.5"
    preprocessing: str = "pt"
    fold: int = 0
    n_folds: int = 5
    test_fraction: float = 0.2
    patience: int | None = None
    alpha: float = 0.5
    kl_weight: float = 0.1
    head: str | None = "auto"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.encoder not in ("mlp", "transformer"):
            raise ValueError(f"unknown encoder {self.encoder!r}; choose 'mlp' or 'transformer'")
        check_latent_dim(self.latent_dim)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {self.sampling!r}; choose one of {SAMPLINGS}")
        if self.epochs <= 0 or self.batch_size < 2:
            raise ValueError("epochs must be > 0 and batch_size >= 2")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError("lr must be > 0; weight_decay and warmup_epochs >= 0")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be > 0; got {self.temperature}")
        if self.patience is not None and self.patience <= 0:
            raise ValueError(f"patience must be positive or None; got {self.patience}")
        if self.method in ("simclr", "vicreg") and not self.augmentation:
            raise ValueError(f"method {self.method!r} needs an augmentation to make two views")
        if self.augmentation:
            parse_augmentation(self.augmentation)  # validates the spec
        if self.head not in ("auto", "projection", "dino", None):
            raise ValueError(f"unknown head {self.head!r}; choose auto, projection, dino or None")
        if not 0 <= self.fold < self.n_folds:
            raise ValueError(f"fold must be in [0, {self.n_folds - 1}]; got {self.fold}")

    @property
    def resolved_temperature(self) -> float:
        if self.temperature is not None:
            return float(self.temperature)
        return default_temperature(self.method, self.latent_dim)

    @property
    def resolved_head(self) -> str | None:
        if self.head == "auto":
            return "projection" if self.encoder == "mlp" else "dino"
        return self.head

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}")
        return cls(**d)

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
            kw.setdefault("n_heads", _nearest(VICREG_HEADS, int(values.get("latent_dim", 8))))
            values["encoder_kwargs"] = kw
        return cls(**values)


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


def same_label_partners(
    labels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """For every row a random row with the same label (a within-class permutation).

    Returns an index tensor ``p`` with ``labels[p] == labels``; vectorised.
    """
    keys = labels.to(torch.float64) + torch.rand(
        labels.shape, generator=generator, dtype=torch.float64
    )
    shuffled = torch.argsort(keys)
    ordered = torch.argsort(labels, stable=True)
    partners = torch.empty_like(ordered)
    partners[ordered] = shuffled
    return partners


class Trainer:
    """Train an embedding model with one :class:`TrainConfig`.

    Parameters
    ----------
    config : TrainConfig
        The run's settings (stored unchanged, scikit-learn style).

    Attributes
    ----------
    model_ : EmbeddingModel
        The trained model (best validation epoch if ``patience`` is set).
    preprocessor_ : Preprocessor
        Fitted on the training folds; its state lives inside the model too.
    class_names_ : list of str
        Process names of the training classes (label ``k`` of the model is
        ``class_names_[k]``).
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``lr``, ``seconds``.
    best_epoch_ : int
        Epoch with the lowest validation loss.

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
            sampler = ClassBalancedBatchSampler(labels, c.batch_size, seed=c.seed)
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
    ) -> torch.Tensor:
        """The configured loss on one batch of raw particles ``x`` with labels ``y``."""
        c = self.config
        tau = c.resolved_temperature

        def view(inp: torch.Tensor) -> torch.Tensor:
            return augmentation(inp, generator) if augmentation is not None else inp

        if c.method in ("simclr", "vicreg"):
            n = x.shape[0]
            out = model(torch.cat([view(x), view(x)]))
            p1, p2 = out["projection"][:n], out["projection"][n:]
            if c.method == "simclr":
                return nt_xent_loss(p1, p2, tau)
            return vicreg_loss(p1, p2)
        if c.method == "supcon":
            if augmentation is None:
                return supcon_loss(model(x)["projection"], y, tau)
            n = x.shape[0]
            proj = model(torch.cat([view(x), view(x)]))["projection"]
            return supcon_loss([proj[:n], proj[n:]], y, tau)
        if c.method == "vicreg_ce":
            n = x.shape[0]
            partner = same_label_partners(y.cpu(), generator).to(x.device)
            out = model(torch.cat([view(x), view(x[partner])]))
            p = out["projection"]
            return vicreg_ce_loss(p[:n], p[n:], out["logits"], torch.cat([y, y]), c.alpha)
        # supcon_kl
        out = model(view(x))
        return supcon_kl_loss(out["projection"], y, out["mu"], out["logvar"], tau, c.kl_weight)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        events: Events,
        *,
        checkpoint: str | os.PathLike | None = None,
        resume: bool = False,
        on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> Trainer:
        """Train on the four training folds of ``events``, validate on ``config.fold``.

        Parameters
        ----------
        events : Events
            Labelled events (labels are required for the supervised methods and
            for class-balanced sampling).
        checkpoint : path, optional
            Written after every epoch (atomic replace).
        resume : bool
            Continue from ``checkpoint`` if it exists (its config must match).
        on_epoch_end : callable, optional
            ``f(epoch, record)`` after each epoch's checkpoint is written.

        Returns
        -------
        Trainer
            ``self``, with the fitted attributes set.
        """
        c = self.config
        if not isinstance(events, Events):
            raise TypeError(f"events must be an Events container; got {type(events).__name__}")
        device = resolve_device(c.device)
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
        present = np.unique(events.labels[tr_idx])
        present = present[present != UNKNOWN_LABEL]
        class_names = [events.process_names[k] for k in present]
        lut = np.full(len(events.process_names) + 1, -1, dtype=np.int64)
        lut[present] = np.arange(present.size)
        y_all = lut[events.labels]  # label -1 indexes the trailing -1
        if c.method in SUPERVISED and present.size < 2:
            raise ValueError(f"method {c.method!r} needs at least two classes; got {class_names}")
        if c.sampling == "balanced" and c.batch_size % max(present.size, 1):
            raise ValueError(
                f"batch_size {c.batch_size} must be a multiple of the {present.size} classes "
                "for balanced sampling"
            )
        pre = Preprocessor(c.preprocessing).fit(events.particles[tr_idx])

        torch.manual_seed(c.seed)
        model_cfg = self.model_config(len(class_names))
        model = build_model(
            {**model_cfg_without_kind(model_cfg), "preprocessing": pre.state_dict()}
        )
        model.to(device)
        opt = self._optimizer(model)
        steps_per_epoch = self._n_batches(y_all[tr_idx])
        sched = warmup_cosine_scheduler(
            opt, c.warmup_epochs * steps_per_epoch, c.epochs * steps_per_epoch, c.final_lr_factor
        )
        augmentation = parse_augmentation(c.augmentation) if c.augmentation else None
        gen = torch.Generator().manual_seed(c.seed)

        x_tr = torch.from_numpy(events.particles[tr_idx])
        y_tr = torch.from_numpy(y_all[tr_idx])
        x_va = torch.from_numpy(events.particles[va_idx])
        y_va = torch.from_numpy(y_all[va_idx])

        history: list[dict[str, Any]] = []
        best = {"loss": float("inf"), "epoch": -1, "state": None, "bad_epochs": 0}
        start_epoch = 0
        ckpt_path = Path(checkpoint) if checkpoint is not None else None
        if resume and ckpt_path is not None and ckpt_path.exists():
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            saved_cfg = json.loads(ck["config"])
            mine = {k: v for k, v in c.to_dict().items() if k not in ("progress", "device")}
            theirs = {k: v for k, v in saved_cfg.items() if k not in ("progress", "device")}
            if mine != theirs:
                raise ValueError(f"checkpoint {ckpt_path} was written with a different config")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            gen.set_state(ck["aug_rng"])
            torch.set_rng_state(ck["torch_rng"])
            history = json.loads(ck["history"])
            best = {
                "loss": float(ck["best_loss"]),
                "epoch": int(ck["best_epoch"]),
                "state": ck["best_state"] or None,
                "bad_epochs": int(ck["bad_epochs"]),
            }
            start_epoch = int(ck["epoch"]) + 1

        bar = tqdm(
            total=c.epochs * steps_per_epoch,
            initial=start_epoch * steps_per_epoch,
            disable=not c.progress,
            desc=f"{c.method}/{c.encoder} D={c.latent_dim}",
            unit="step",
        )
        y_tr_np = y_tr.numpy()
        stopped_early = False
        try:
            for epoch in range(start_epoch, c.epochs):
                if best["bad_epochs"] >= (c.patience or np.inf):
                    stopped_early = True
                    break
                t0 = time.perf_counter()
                model.train()
                total, count = 0.0, 0
                for idx in self._batches(y_tr_np, epoch):
                    if idx.size < 2:
                        continue
                    xb = x_tr[idx].to(device)
                    yb = y_tr[idx].to(device)
                    loss = self.compute_loss(model, xb, yb, augmentation, gen)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"non-finite loss at epoch {epoch}; lower the learning rate"
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += loss.item() * idx.size
                    count += idx.size
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{total / count:.4f}")
                val_loss = self._validate(model, x_va, y_va, augmentation, device)
                record = {
                    "epoch": epoch,
                    "train_loss": total / max(count, 1),
                    "val_loss": val_loss,
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": time.perf_counter() - t0,
                }
                history.append(record)
                if val_loss < best["loss"]:
                    best.update(
                        loss=val_loss,
                        epoch=epoch,
                        state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        bad_epochs=0,
                    )
                else:
                    best["bad_epochs"] += 1
                if ckpt_path is not None:
                    self._write_checkpoint(ckpt_path, epoch, model, opt, sched, gen, history, best)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, record)
        finally:
            bar.close()

        if c.patience is not None and best["state"] is not None:
            model.load_state_dict(best["state"])
        model.eval()
        self.model_ = model
        self.model_config_ = model_cfg
        self.preprocessor_ = pre
        self.class_names_ = class_names
        self.history_ = history
        self.best_epoch_ = int(best["epoch"])
        self.stopped_early_ = stopped_early
        self.splits_ = splits
        self.metadata_ = {
            "source": events.metadata.get("source_file", events.metadata.get("generator", "")),
            "n_train": int(tr_idx.size),
            "n_validation": int(va_idx.size),
            "split": {
                "n": splits.n,
                "seed": splits.seed,
                "test_fraction": splits.test_fraction,
                "n_folds": splits.n_folds,
                "fold": c.fold,
                "stratified": True,
            },
            "temperature": c.resolved_temperature,
        }
        return self

    @torch.no_grad()
    def _validate(
        self,
        model: EmbeddingModel,
        x: torch.Tensor,
        y: torch.Tensor,
        augmentation: Augmentation | None,
        device: torch.device,
    ) -> float:
        """Validation loss in eval mode with fixed augmentation draws (comparable across epochs)."""
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
            total += float(self.compute_loss(model, xb, yb, augmentation, gen)) * xb.shape[0]
            count += xb.shape[0]
        return total / max(count, 1)

    def _write_checkpoint(
        self,
        path: Path,
        epoch: int,
        model: EmbeddingModel,
        opt: torch.optim.Optimizer,
        sched: torch.optim.lr_scheduler.LRScheduler,
        gen: torch.Generator,
        history: list[dict[str, Any]],
        best: dict[str, Any],
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "epoch": epoch,
            "config": json.dumps(self.config.to_dict()),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "aug_rng": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": json.dumps(history),
            "best_loss": best["loss"],
            "best_epoch": best["epoch"],
            "best_state": best["state"] or {},
            "bad_epochs": best["bad_epochs"],
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

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
        )


def model_cfg_without_kind(cfg: dict[str, Any]) -> dict[str, Any]:
    """A model config without its ``kind`` key (what :func:`build_model` takes)."""
    return {k: v for k, v in cfg.items() if k != "kind"}
