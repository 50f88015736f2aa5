"""Configuration of a ``contrastx-pipeline`` study: TOML file -> frozen dataclasses.

A study config has five tables and a list of embeddings::

    preset = "default"            # or "paper": the primary paper's sizes (GPU)

    [run]        out_dir, seed, trainings (of every trained embedding), device
    [events]     where the events come from (built-in fast generator or files) and how many
    [splits]     the held-out NPLM share of the background and the training folds
    [[embeddings]]  one table per embedding: kind = contrastive | raw | leading_pt | vae
    [nplm]       reference size, N(B), M, lambda, toys, injection fractions
    [results]    the table's injection, Z method, latent-map settings
    [executor]   where the embed stages and NPLM toys run: in-process (default), local
                 processes or Dask
                 (contrastx.distributed.ExecutorOptions; never part of a stage's key)

Values are layered: built-in defaults < the preset < the TOML file < command-line
``--set section.key=value`` overrides. An ``[[embeddings]]`` list in the file replaces
the preset's list. Every section is an :func:`~contrastx.options.options` class: each
key is type-checked (``M = 50.7``, ``lam = "1e-6"`` and ``n_toys = true`` are errors,
never coerced), and unknown keys and bad values are errors that name the key
(``nplm.M``). The ``[nplm]`` table takes the keys of :class:`contrastx.nplm.ToyOptions`
(:class:`~contrastx.nplm.SolverOptions`, :class:`~contrastx.nplm.DeviceOptions`) as
well as the study's own.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contrastx.distributed.options import ExecutorOptions
from contrastx.events.layout import (
    ADC2021,
    ADC2021_MIXTURE,
    BACKGROUNDS,
    SIGNALS,
    EventLayout,
    get_layout,
)
from contrastx.nplm.options import ToyOptions
from contrastx.options import (
    OptionsError,
    apply_overrides,
    embedded,
    from_mapping,
    key_name,
    merge_tables,
    option,
    options,
    read_toml,
    to_dict,
)
from contrastx.stagecache import config_hash

__all__ = [
    "EMBEDDING_KINDS",
    "PRESETS",
    "TRAINED_KINDS",
    "EmbeddingSpec",
    "EventsConfig",
    "NPLMConfig",
    "ResultsConfig",
    "RunConfig",
    "SplitsConfig",
    "StudyConfig",
    "baseline_dimension",
    "config_hash",
    "load_config",
]

EMBEDDING_KINDS = ("contrastive", "raw", "leading_pt", "vae")
"""Embedding kinds: a trained contrastive encoder and the paper's three baselines."""


_TRAINING_SEED_TAG = 0x7EA1
"""Mixed into every training seed so it differs from the other seeds drawn from run.seed."""


@options(section="run")
class RunConfig:
    """``[run]``: where outputs go and the global settings."""

    out_dir: str = option(
        "contrastx-study",
        "Output folder (relative paths are relative to the current directory).",
    )
    seed: int = option(0, "Master seed; every stage derives its own seeds from it.", ge=0)
    trainings: int = option(
        3,
        "Runs of every embedding: a trained one (contrastive, vae) is trained this many "
        "times, each with its own seed derived from run.seed (training subset, "
        "initialisation, batches); the deterministic baselines (raw, leading_pt) are built "
        "once. Run i of every embedding draws its own NPLM reference, kernel centres and "
        "toys (from training i's seed). Results report the median over runs, the spread "
        "across them (retraining and reference draw) and the toy error separately.",
        ge=1,
    )
    device: str = option(
        "cpu", "Torch device for training, embedding and toys ('cpu', 'cuda', 'cuda:1', ...)."
    )

    def training_seed(self, index: int) -> int:
        """Seed of training ``index`` (0-based) of every trained embedding.

        Derived from :attr:`seed` and ``index`` alone (:class:`numpy.random.SeedSequence`),
        so training ``index`` of two embeddings shares its seed (paired comparisons) and
        raising :attr:`trainings` keeps the seeds, and so the cached stages, of the
        trainings already done.
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"training index must be an integer >= 0; got {index!r}")
        import numpy as np

        ss = np.random.SeedSequence([int(self.seed), _TRAINING_SEED_TAG, index])
        return int(ss.generate_state(1, dtype=np.uint32)[0])


@options(section="events")
class EventsConfig:
    """``[events]``: the background and signal samples.

    Events are unweighted: the background sample, the NPLM reference and every toy's data
    are drawn from the file's events as they are, in the file's composition of background
    processes (or in ``background_fractions`` when set), and the signal toys inject
    N(S) = fraction x N(B) signal events. A diphoton file records every process's cross
    section times branching ratio (metadata ``selected_cross_section_fb``,
    :func:`contrastx.events.generators.diphoton.event_weights`); the study does not weight
    events by them. Expected yields at a luminosity L are the user's choice:
    ``background_fractions`` proportional to the backgrounds' selected cross sections,
    ``nplm.n_bkg`` their sum times L and ``nplm.fractions`` a signal's selected cross
    section over that sum.
    """

    background_file: str = option(
        "",
        "ADC2021 or contrastx background event file; empty: the built-in fast generator "
        "(quick runs only, never physics evidence).",
    )
    background_labels: str = option(
        "",
        "Label side file (.npy or HDF5 'labels') for an unlabelled ADC2021 background file "
        "(0 W, 1 QCD, 2 Z, 3 ttbar); needed for supervised encoders and Fig. II.",
    )
    signal_files: dict[str, str] = option(
        default_factory=dict,
        doc="Signal name -> event file (ADC2021 single-process files or contrastx files); "
        "with files, only these signals are studied. Empty with a background_file: the "
        "signals are processes of the background file (a Pythia sample holding both).",
    )
    n_background: int = option(
        70_000,
        "Generator: background events (ADC2021 mixture), shared between embedding "
        "training and the NPLM pool; with files: read at most this many (0: all).",
        ge=0,
    )
    n_signal: int = option(
        3_000, "Generator: events per signal process; with files: read at most this many.", ge=0
    )
    signals: tuple[str, ...] = option(
        SIGNALS,
        "Signals studied (generator: any of the four ADC2021 signals). A file of another "
        'layout names its own, e.g. ["X_hh_400", "A_Zh_500"] for a diphoton file.',
    )
    layout: str = option(
        "adc2021",
        "Event layout of the background and signal files: a built-in name ('adc2021', "
        "'diphoton') or a layout file (.json/.toml). The files must record this layout "
        "(checked on every run); the names and dimensions of the raw and leading-pT "
        "baselines follow it (ADC2021: raw57, leadpt6). The fast generator is ADC2021 only.",
    )
    background_processes: tuple[str, ...] = option(
        (),
        "Processes of background_file that make the background (a contrastx file may hold "
        "signals too, e.g. a Pythia sample); empty: every process of the file except "
        "events.signals and the built-in signal processes.",
    )
    background_fractions: dict[str, float] = option(
        default_factory=dict,
        doc="Background composition, process -> fraction (summing to 1), e.g. the ADC2021 "
        "cocktail {W = 0.592, QCD = 0.338, Z = 0.067, ttbar = 0.003}: the study draws "
        "(seeded by run.seed) the largest sample of this composition that the file holds, "
        "at most n_background events; the generator makes n_background events of it. "
        "Empty: the file's first n_background background events as they come (the "
        "generator: the ADC2021 cocktail).",
    )

    def _check(self) -> None:
        if not self.signals:
            raise OptionsError(f"{key_name(self, 'signals')} is empty")
        try:
            layout = get_layout(self.layout)
        except (ValueError, FileNotFoundError) as err:
            raise OptionsError(f"{key_name(self, 'layout')}: {err}") from None
        if not self.background_file and layout != ADC2021:
            raise OptionsError(
                f"{key_name(self, 'layout')} {self.layout!r} needs "
                f"{key_name(self, 'background_file')} (the fast generator makes ADC2021 events)"
            )
        fractions = key_name(self, "background_fractions")
        for name, value in self.background_fractions.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise OptionsError(f"{fractions}.{name} must be a number > 0; got {value!r}")
        if self.background_fractions:
            total = sum(self.background_fractions.values())
            if abs(total - 1.0) > 1e-3:
                raise OptionsError(f"{fractions} must sum to 1; they sum to {total:.6g}")
            if self.background_processes and set(self.background_processes) != set(
                self.background_fractions
            ):
                raise OptionsError(
                    f"{key_name(self, 'background_processes')} {list(self.background_processes)}"
                    f" and {fractions} {sorted(self.background_fractions)} name different "
                    "processes (the fractions alone are enough)"
                )
        clash = set(self.signals) & (
            set(self.background_processes) | set(self.background_fractions)
        )
        if clash:
            raise OptionsError(
                f"{sorted(clash)} named both as signals ({key_name(self, 'signals')}) and "
                "as background"
            )
        if self.background_file:
            missing = [s for s in self.signals if s not in self.signal_files]
            if self.signal_files and missing:
                raise OptionsError(
                    f"{key_name(self, 'signals')} {missing} have no entry in "
                    f"{key_name(self, 'signal_files')}"
                )
        else:
            bad = [s for s in self.signals if s not in SIGNALS]
            if bad:
                raise OptionsError(
                    f"{key_name(self, 'signals')} {bad} unknown to the fast generator; "
                    f"known: {list(SIGNALS)}"
                )
            if self.signal_files:
                raise OptionsError(
                    f"{key_name(self, 'signal_files')} needs "
                    f"{key_name(self, 'background_file')} as well"
                )
            if self.background_processes:
                raise OptionsError(
                    f"{key_name(self, 'background_processes')} needs "
                    f"{key_name(self, 'background_file')} (the generator's background is "
                    f"set by {fractions})"
                )
            bad = [p for p in self.background_fractions if p not in BACKGROUNDS]
            if bad:
                raise OptionsError(
                    f"{fractions} {bad} unknown to the fast generator; its backgrounds: "
                    f"{list(BACKGROUNDS)}"
                )
            if self.n_background <= 0 or self.n_signal <= 0:
                raise OptionsError(
                    f"the fast generator needs {key_name(self, 'n_background')} and "
                    f"{key_name(self, 'n_signal')} > 0"
                )

    @property
    def from_files(self) -> bool:
        return bool(self.background_file)

    @property
    def event_layout(self) -> EventLayout:
        """The :class:`~contrastx.events.EventLayout` that :attr:`layout` names."""
        return get_layout(self.layout)


@options(section="splits")
class SplitsConfig:
    """``[splits]``: background held out for NPLM, the rest for embedding training."""

    nplm_fraction: float = option(
        0.6,
        "Fraction of the background (stratified by process) held out from every "
        "embedding's training: the NPLM reference and data pool, and the linear "
        "evaluation sample.",
        gt=0.0,
        lt=1.0,
    )
    n_folds: int = option(
        5, "Cross-validation folds of the training part (the trainer validates on one).", ge=2
    )
    linear_eval_events: int = option(
        5_000, "Held-out background events of the linear evaluation (Fig. II; 0: skip it).", ge=0
    )


_VAE_TRAIN_KEYS = ("batch_size", "lr", "kl_weight", "preprocessing", "n_latent")

TRAINED_KINDS = ("contrastive", "vae")
"""Embedding kinds that are trained (run.trainings times, each with its own seed)."""

_UNUSED_KEYS: dict[str, tuple[str, ...]] = {
    "contrastive": (),
    "vae": ("preset", "latent_dim"),
    "raw": ("preset", "latent_dim", "epochs", "n_train"),
    "leading_pt": ("preset", "latent_dim", "epochs", "n_train"),
}
"""Keys of an [[embeddings]] table that each kind ignores (they must keep their defaults)."""

_UNUSED_HINTS = {
    ("vae", "latent_dim"): " (a VAE's latent size is train.n_latent, D = 2 n_latent)",
}


def _field_default(cls: type, key: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


_BASELINE_PREFIX = {"raw": "raw", "leading_pt": "leadpt"}
"""Default-name prefix of each deterministic baseline (the name ends with its dimension)."""


@functools.cache
def baseline_dimension(kind: str, layout: EventLayout = ADC2021) -> int:
    """Dimension of the ``"raw"`` or ``"leading_pt"`` baseline on ``layout``.

    Read from :class:`~contrastx.embed.RawBaseline` / :class:`~contrastx.embed.LeadingPtBaseline`
    themselves: 57 and 6 for ADC2021; for another layout the flattened encoder inputs and
    the leading pT of every encoder object group.
    """
    from contrastx.embed import LeadingPtBaseline, RawBaseline

    cls = {"raw": RawBaseline, "leading_pt": LeadingPtBaseline}[kind]
    return int(cls(layout).latent_dim)


@options(section="embeddings")
class EmbeddingSpec:
    """One ``[[embeddings]]`` table."""

    kind: str = option(
        "contrastive",
        "A trained contrastive encoder, or a baseline: the raw input (57-D for ADC2021), "
        "the leading-object pT (6-D for ADC2021), the 6-D VAE latent.",
        choices=EMBEDDING_KINDS,
    )
    name: str = option(
        "",
        "Label in tables and figures (default: derived from the settings; the raw and "
        "leading-pT baselines from their dimension on events.layout, e.g. raw57, leadpt6).",
    )
    preset: str = option(
        "supcon-mlp", "contrastx.embed.PRESETS name (contrastive), e.g. 'supcon-mlp'."
    )
    latent_dim: int = option(4, "Embedding dimension D (contrastive).", ge=1)
    epochs: int = option(5, "Training epochs (contrastive and vae).", ge=1)
    n_train: int = option(0, "Use at most this many training events (0: all of them).", ge=0)
    train: dict[str, Any] = option(
        default_factory=dict,
        doc="Further contrastx.embed.TrainConfig overrides (contrastive; e.g. batch_size, "
        "lr, warmup_epochs), or contrastx.embed.fit_vae keywords (vae: "
        + ", ".join(_VAE_TRAIN_KEYS)
        + ").",
    )

    def _check(self) -> None:
        train = key_name(self, "train")
        if self.kind == "contrastive":
            from contrastx.embed import PRESETS, TrainConfig

            if self.preset not in PRESETS:
                raise OptionsError(
                    f"{key_name(self, 'preset')} {self.preset!r} unknown; choose one of "
                    f"{sorted(PRESETS)}"
                )
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            reserved = {"latent_dim", "epochs", "device", "seed", "progress"}
            for key in self.train:
                if key not in known:
                    raise OptionsError(f"unknown key {train}.{key} (not a TrainConfig field)")
                if key in reserved:
                    raise OptionsError(
                        f"{train}.{key} is set elsewhere (embedding latent_dim/epochs, "
                        "run.seed/device)"
                    )
        elif self.kind == "vae":
            for key in self.train:
                if key not in _VAE_TRAIN_KEYS:
                    raise OptionsError(
                        f"unknown key {train}.{key} for a vae; allowed {sorted(_VAE_TRAIN_KEYS)}"
                    )
        elif self.train:
            raise OptionsError(f"{train} is not used by kind {self.kind!r}")
        for key in _UNUSED_KEYS[self.kind]:
            value = getattr(self, key)
            if value != _field_default(type(self), key):
                hint = _UNUSED_HINTS.get((self.kind, key), "")
                raise OptionsError(
                    f"{key_name(self, key)} = {value!r} is not used by kind {self.kind!r}"
                    f"{hint}; remove it"
                )
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        if any(c in self.name for c in "/\\ "):
            raise OptionsError(
                f"{key_name(self, 'name')} {self.name!r} must not contain '/', '\\' or spaces"
            )

    def default_name(self, layout: EventLayout = ADC2021) -> str:
        """The name when none is given: ``raw<D>``/``leadpt<D>`` with D on ``layout``."""
        if self.kind == "contrastive":
            return f"{self.preset}-d{self.latent_dim}"
        if self.kind == "vae":
            return "vae6"
        return f"{_BASELINE_PREFIX[self.kind]}{baseline_dimension(self.kind, layout)}"

    @property
    def trained(self) -> bool:
        """Whether the embedding is trained (contrastive, vae), so run.trainings times."""
        return self.kind in TRAINED_KINDS

    @property
    def dimension(self) -> int:
        """Embedding dimension D on ADC2021 events (:meth:`dimension_on` for another layout)."""
        return self.dimension_on(ADC2021)

    def dimension_on(self, layout: EventLayout) -> int:
        """Embedding dimension D on events of ``layout`` (it matters for raw and leading_pt)."""
        if self.kind == "contrastive":
            return int(self.latent_dim)
        if self.kind == "vae":
            return 2 * int(self.train.get("n_latent", 3))
        return baseline_dimension(self.kind, layout)

    @property
    def family(self) -> str:
        """Series label on ADC2021 events (:meth:`family_on` for another layout)."""
        return self.family_on(ADC2021)

    def family_on(self, layout: EventLayout) -> str:
        """Series label for the dimension plots (one line per family): the contrastive
        preset, or ``"<D>D raw"``, ``"<D>D leading pT"``, ``"<D>D VAE"`` for a baseline."""
        if self.kind == "contrastive":
            return self.preset + "".join(
                f" {k}={v}" for k, v in sorted(self.train.items()) if k in ("method", "sampling")
            )
        what = {"raw": "raw", "leading_pt": "leading pT", "vae": "VAE"}[self.kind]
        return f"{self.dimension_on(layout)}D {what}"

    def preprocessing(self) -> str | None:
        """The input preprocessing of a trained embedding (None for raw and leading_pt)."""
        if self.kind == "contrastive":
            from contrastx.embed import PRESETS, TrainConfig

            default = PRESETS[self.preset].get(
                "preprocessing", _field_default(TrainConfig, "preprocessing")
            )
            return str(self.train.get("preprocessing", default))
        if self.kind == "vae":
            import inspect

            from contrastx.embed import fit_vae

            default = inspect.signature(fit_vae).parameters["preprocessing"].default
            return str(self.train.get("preprocessing", default))
        return None

    def as_dict(self) -> dict[str, Any]:
        """The settings this kind of embedding uses (for the stage hash, files and reports).

        Keys a kind does not use (a baseline's preset and epochs, a VAE's latent_dim) are
        left out; they must hold their defaults, so :func:`from_mapping` of this dict gives
        the same embedding.
        """
        d = to_dict(self)
        for key in _UNUSED_KEYS[self.kind]:
            d.pop(key)
        if self.kind in ("raw", "leading_pt"):
            d.pop("train")
        return d


@options(section="nplm")
class NPLMConfig:
    r"""``[nplm]``: the toy study.

    Takes every key of :class:`contrastx.nplm.ToyOptions` (and so of
    :class:`~contrastx.nplm.SolverOptions` and :class:`~contrastx.nplm.DeviceOptions`)
    except ``n_sig`` (set from ``fractions``), ``seed`` (``run.seed``) and
    ``data_pool`` (below), with CPU-sized defaults, plus the study's own keys.

    The default fractions 1, 3, 5 % at :math:`N(B) = 2000` correspond to the paper's
    0.1, 0.5, 1 % at :math:`N(B) = 10^5` (the ``paper`` preset): sensitivity scales as
    :math:`N(S)/\sqrt{N(B)}`, so 3.5 % at 2,000 is the paper's 0.5 % at 100,000.
    """

    n_toys: int = option(
        100,
        "Null (background-only) toys per embedding, shared by every signal and fraction.",
        ge=2,
    )
    n_toys_signal: int = option(
        50, "Signal toys per embedding, signal and injection fraction (0: n_toys).", ge=0
    )
    fractions: tuple[float, ...] = option(
        (0.01, 0.03, 0.05), "Injection fractions N(S)/N(B).", gt=0.0, lt=1.0
    )
    data_pool: int = option(
        0,
        "Background events the toys draw their data from (0: 10 N(B)), capped by what "
        "the NPLM split holds beyond the reference.",
        ge=0,
    )
    standardize: bool = option(
        True, "Standardise every embedding with the background pool's mean and std first."
    )
    toys: ToyOptions = embedded(
        ToyOptions,
        "The toy engine's settings.",
        exclude={
            "n_sig": "the signal toys' N(S) = fraction x N(B), see nplm.fractions",
            "seed": "the toys' seed is run.seed",
            "data_pool": "see nplm.data_pool",
        },
        n_ref=20_000,
        n_bkg=2_000.0,
        M=300,
    )

    def _check(self) -> None:
        if not self.fractions:
            raise OptionsError(f"{key_name(self, 'fractions')} must not be empty")

    @property
    def signal_toys(self) -> int:
        return self.n_toys_signal or self.n_toys


@options(section="results")
class ResultsConfig:
    """``[results]``: tables, figures and report."""

    table_fraction: float = option(
        0.05, "Injection fraction of the Table VI-like table (one of nplm.fractions).", gt=0.0
    )
    z_method: str = option(
        "chi2",
        "Z from a chi^2 fitted to the null toys (dof = their mean, the paper's notebook) "
        "or from the empirical null.",
        choices=("chi2", "empirical"),
    )
    beats_sigma: float = option(
        2.0,
        "The report says one embedding beats another on a signal only when their median Z "
        "differ by more than this many standard deviations, with the toy errors and "
        "run spreads of both in quadrature (every pair, both directions).",
        gt=0.0,
    )
    latent_method: str = option(
        "auto",
        "2-D projection of the latent map ('auto': identity for D = 2, else UMAP if "
        "umap-learn is installed, else t-SNE if scikit-learn is, else PCA).",
        choices=("auto", "pca", "tsne", "umap"),
    )
    latent_events: int = option(1_000, "Events per process in the latent map.", ge=1)
    latent_embedding: str = option(
        "", "Embedding shown in the latent map (default: the first contrastive one)."
    )


# Not from the papers: SupCon settings for CPU-sized studies. On a selection run of the
# Pythia benchmark (other seeds than the benchmark's) and on the fast generator, a softer
# temperature than the supervised 0.1, light masking and 20 epochs did better than the
# paper's settings cut to a few epochs (README, "A realistic benchmark").
STUDY_SUPCON_TRAIN: dict[str, Any] = {
    "batch_size": 512,
    "temperature": 0.3,
    "augmentation": "mask:0.1",
}
"""TrainConfig overrides of the SupCon embeddings of the default and ``pythia`` studies."""

DEFAULT_EMBEDDINGS: tuple[dict[str, Any], ...] = (
    *(
        {"kind": "contrastive", "preset": "supcon-mlp", "latent_dim": d, "epochs": 20,
         "n_train": 30_000, "train": dict(STUDY_SUPCON_TRAIN)}
        for d in (4, 8)
    ),
    {"kind": "raw"},
    {"kind": "leading_pt"},
    {"kind": "vae", "epochs": 10, "n_train": 30_000},
)  # fmt: skip

_PAPER_EMBEDDINGS: list[dict[str, Any]] = [
    {"kind": "contrastive", "preset": p, "latent_dim": d, "epochs": 50}
    for p in ("supcon-mlp", "supcon-transformer", "simclr-mlp", "vicreg-transformer")
    for d in (2, 4, 8, 16, 32)
] + [{"kind": "raw"}, {"kind": "leading_pt"}, {"kind": "vae", "epochs": 50}]

_PYTHIA_EMBEDDINGS: list[dict[str, Any]] = [
    {"kind": "contrastive", "preset": "supcon-mlp", "latent_dim": d, "epochs": 20,
     "train": dict(STUDY_SUPCON_TRAIN)}
    for d in (4, 8)
] + [{"kind": "raw"}, {"kind": "leading_pt"}, {"kind": "vae", "epochs": 10}]  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # Realistic events at CPU scale: a Pythia 8 sample (contrastx-generate --generator
    # pythia) given as events.background_file, holding backgrounds and signals, studied in
    # the ADC2021 cocktail. N(B) = 2,000 keeps the paper's N(S)/sqrt(N(B)): 0.7, 3.5, 7 %
    # here are its 0.1, 0.5, 1 % at N(B) = 1e5.
    "pythia": {
        "run": {"out_dir": "contrastx-pythia-study"},
        "events": {
            "n_background": 0,
            "n_signal": 10_000,
            "background_fractions": dict(ADC2021_MIXTURE),
        },
        "nplm": {"fractions": [0.007, 0.035, 0.07]},
        "results": {"table_fraction": 0.035},
        "embeddings": _PYTHIA_EMBEDDINGS,
    },
    # Primary paper, Sec. V-D: N_R = 1e6, N(B) = 1e5, M = 1000, 250 toys, D in {2..32}.
    "paper": {
        "run": {"device": "cuda", "out_dir": "contrastx-paper-study"},
        "events": {"n_background": 3_000_000, "n_signal": 100_000},
        "splits": {"nplm_fraction": 2.0 / 3.0},
        "nplm": {
            "n_ref": 1_000_000,
            "n_bkg": 100_000.0,
            "M": 1000,
            "n_toys": 250,
            "n_toys_signal": 250,
            "data_pool": 1_000_000,
            "fractions": [0.001, 0.005, 0.01],
        },
        "results": {"latent_events": 3_000, "table_fraction": 0.005},
        "embeddings": _PAPER_EMBEDDINGS,
    },
}
"""Named presets; ``paper`` wants a GPU (``run.device = "cuda"``), ``pythia`` a Pythia file."""

_SECTIONS = {
    "run": RunConfig,
    "events": EventsConfig,
    "splits": SplitsConfig,
    "nplm": NPLMConfig,
    "results": ResultsConfig,
    "executor": ExecutorOptions,
}


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: every section and the embeddings."""

    run: RunConfig = field(default_factory=RunConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    embeddings: tuple[EmbeddingSpec, ...] = ()
    nplm: NPLMConfig = field(default_factory=NPLMConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    preset: str = "default"

    def __post_init__(self) -> None:
        if not self.embeddings:
            raise OptionsError("a study needs at least one [[embeddings]] entry")
        names = [e.name for e in self.embeddings]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise OptionsError(f"duplicate embedding names {dup}; set embeddings.name")
        if self.results.table_fraction not in self.nplm.fractions:
            raise OptionsError(
                f"results.table_fraction {self.results.table_fraction} is not one of "
                f"nplm.fractions {list(self.nplm.fractions)}"
            )
        if self.results.latent_embedding and self.results.latent_embedding not in names:
            raise OptionsError(
                f"results.latent_embedding {self.results.latent_embedding!r} is not one of {names}"
            )
        layout = self.layout
        if layout != ADC2021:
            for i, e in enumerate(self.embeddings):
                pre = e.preprocessing()
                if pre is not None and pre != "layout":
                    raise OptionsError(
                        f"embeddings[{i}] ({e.name}): preprocessing {pre!r} is for ADC2021 "
                        f"events; events.layout {self.events.layout!r} needs "
                        'train.preprocessing = "layout"'
                    )

    @property
    def layout(self) -> EventLayout:
        """The event layout of the study (``events.layout``)."""
        return self.events.event_layout

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out_dir)

    def to_dict(self) -> dict[str, Any]:
        """Plain (TOML/JSON-friendly) form; :func:`from_dict` inverts it."""
        d = {name: to_dict(getattr(self, name)) for name in _SECTIONS}
        d["embeddings"] = [e.as_dict() for e in self.embeddings]
        d["preset"] = self.preset
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyConfig:
        """Build and validate from nested dicts; unknown keys and bad values raise
        :class:`~contrastx.options.OptionsError` naming the key (``nplm.M``)."""
        d = dict(d)
        preset = d.pop("preset", "default")
        if not isinstance(preset, str):
            raise OptionsError(f"preset must be a string; got {preset!r}")
        kwargs: dict[str, Any] = {"preset": preset}
        for key, value in d.items():
            if key == "embeddings":
                if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
                    raise OptionsError("embeddings must be a list of tables ([[embeddings]])")
                kwargs["embeddings"] = tuple(
                    from_mapping(EmbeddingSpec, e, where=f"embeddings[{i}]")
                    for i, e in enumerate(value)
                )
                unnamed = [not e.get("name") for e in value]
            elif key in _SECTIONS:
                kwargs[key] = from_mapping(_SECTIONS[key], value, where=key)
            else:
                raise OptionsError(
                    f"unknown top-level key {key!r}; known: preset, embeddings, "
                    + ", ".join(_SECTIONS)
                )
        layout = kwargs["events"].event_layout if "events" in kwargs else ADC2021
        if layout != ADC2021 and "embeddings" in kwargs:
            # Unnamed baselines are named after their dimension on the study's layout.
            kwargs["embeddings"] = tuple(
                dataclasses.replace(e, name=e.default_name(layout)) if u else e
                for e, u in zip(kwargs["embeddings"], unnamed)
            )
        return cls(**kwargs)


def load_config(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    overrides: Sequence[str] = (),
) -> StudyConfig:
    """Read a study config: defaults < preset < TOML file < ``overrides``.

    Parameters
    ----------
    path : str or Path, optional
        TOML file; None: defaults (and preset) only.
    preset : str, optional
        :data:`PRESETS` name; overrides a ``preset = ...`` line of the file.
    overrides : sequence of str
        ``"section.key=value"`` items (value in TOML syntax).

    Raises
    ------
    FileNotFoundError
        Missing config file.
    ValueError
        Bad TOML, unknown keys (the message names the key) or invalid values.
    """
    user: dict[str, Any] = {} if path is None else read_toml(path)
    name = preset or str(user.get("preset", "default"))
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    merged: dict[str, Any] = {"embeddings": [dict(e) for e in DEFAULT_EMBEDDINGS]}
    merged = merge_tables(merged, PRESETS[name])
    merged = merge_tables(merged, {k: v for k, v in user.items() if k != "preset"})
    apply_overrides(merged, overrides)
    merged["preset"] = name
    if name == "pythia" and not merged.get("events", {}).get("background_file"):
        raise OptionsError(
            "preset 'pythia' needs events.background_file: a Pythia 8 sample made with "
            "contrastx-generate --generator pythia (README, 'A realistic benchmark')"
        )
    return StudyConfig.from_dict(merged)
