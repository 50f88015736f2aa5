"""Configuration of a signal-aware study: TOML file -> frozen options objects.

A study config (``study = "signal-aware"`` in the file, or ``--preset signal-aware``)::

    preset = "signal-aware"       # or "signal-aware-paper": the paper's sizes (GPU)

    [run]          out_dir, seed, device, encoders per configuration
    [events]       the diphoton event file, tested signals, configurations, the split
    [pseudo_data]  luminosity, injections (S / sqrt(B) in the SR), instances
    [train]        preset = "<TrainConfig preset>" and any TrainConfig key
    [cathode]      any CathodeOptions key (regions in m_gammagamma, flow, template,
                   classifier: n_models BDTs per encoder and flow ensemble)
    [results]      working points, significance target, latent map, Appendix A
    [executor]     where the CATHODE stages run: inline (default), local processes or
                   Dask (contrastx.distributed.ExecutorOptions; never part of a key)

Values are layered: built-in defaults < the preset < the TOML file < ``--set
section.key=value`` overrides; every section is an options class (keys type-checked,
unknown keys are errors naming the key), ``[train]`` is checked by building the
:class:`~contrastx.embed.TrainConfig` and ``[cathode]`` is a
:class:`~contrastx.cathode.CathodeOptions` table.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contrastx.cathode import CathodeOptions
from contrastx.distributed.options import ExecutorOptions
from contrastx.embed.training import PRESETS as TRAIN_PRESETS
from contrastx.embed.training import TrainConfig
from contrastx.options import (
    OptionsError,
    apply_overrides,
    from_mapping,
    key_name,
    merge_tables,
    option,
    options,
    read_toml,
    to_dict,
)

from .configurations import CONFIGURATION_KINDS

__all__ = [
    "PRESETS",
    "PseudoDataOptions",
    "SignalAwareConfig",
    "SignalAwareEvents",
    "SignalAwareResults",
    "SignalAwareRun",
    "is_signal_aware",
    "load_signal_aware_config",
]

STUDY_NAME = "signal-aware"
"""The value of the top-level ``study`` key of a signal-aware config."""

_FIXED_TRAIN_KEYS = {
    "seed": "set per encoder from run.seed",
    "device": "set from run.device",
    "n_folds": "the 60/20/20 split fixes it (training : validation = 3 : 1)",
    "test_fraction": "set from events.test_fraction (the encoder test events are kept apart)",
    "fold": "the 60/20/20 split fixes it",
    "progress": "set by the study",
}


@options(section="run")
class SignalAwareRun:
    """``[run]``: where outputs go, the master seed and the encoder ensemble."""

    out_dir: str = option("contrastx-signal-aware", "Output folder.")
    seed: int = option(0, "Master seed; every stage derives its own seeds from it.", ge=0)
    device: str = option("cpu", "Torch device of training, embedding and flows.")
    encoders: int = option(
        2,
        "Independent encoders trained per configuration (own seed each); every encoder "
        "gets its own flows and BDTs, and the BDTs of all encoders are grouped into the "
        "ensembles whose spread is the training systematic (the paper: 5).",
        ge=1,
    )
    latent: str = option(
        "sample",
        "The latent coordinates of an event: 'sample', one draw mu + sigma * eps of the "
        "encoder's Gaussian output block (fixed per event and encoder, seeded), or "
        "'mean', mu alone. Events with equal encoder inputs (most of the diphoton "
        "continuum has no jet or lepton) share one mean, so the means lie on "
        "lower-dimensional pieces that a flow cannot model (its template then "
        "differs visibly from the background); the draws fill a smooth density.",
        choices=("sample", "mean"),
    )
    torch_threads: int = option(
        0,
        "torch CPU threads for encoder training and embedding (0: leave torch's setting).",
        ge=0,
    )


@options(section="events")
class SignalAwareEvents:
    """``[events]``: the simulated events, the tested signals and the encoder split."""

    file: str = option(
        "",
        "Diphoton event file (contrastx-generate --dataset diphoton): backgrounds and "
        "signal mass points with their cross sections. Required.",
    )
    signals: tuple[str, ...] = option(
        ("A_Zh_500", "X_hh_400"),
        "Tested signals (mass points of the file): each gets its ID, IP, EP and "
        "background-only results.",
    )
    configurations: tuple[str, ...] = option(
        CONFIGURATION_KINDS,
        "Encoder training configurations: ID (every process group), IP (the tested mass "
        "point held out), EP (the tested signal's whole group held out), background-only.",
    )
    background_processes: tuple[str, ...] = option(
        ("gamma_gamma", "ggF", "VBF", "VH", "ttH"),
        "The SM background processes (every other process of the file is a signal).",
    )
    resonant_backgrounds: tuple[str, ...] = option(
        ("ggF", "VBF", "VH", "ttH"),
        "Backgrounds peaking in the resonant variable: simulated (encoder-half test events) "
        "in the hybrid template with their expected yield; the flow models the rest.",
    )
    resonant_variable: str = option(
        "m_gg", "Event-level feature of the layout that defines signal region and sidebands."
    )
    encoder_fraction: float = option(
        0.5,
        "Share of every process in the encoder half (the rest is pseudo-data).",
        gt=0.0,
        lt=1.0,
    )
    test_fraction: float = option(
        0.2,
        "Share of the used encoder half kept as encoder test events (60/20/20: the rest "
        "is split 3 : 1 into training and validation).",
        gt=0.0,
        lt=1.0,
    )
    max_encoder_events: int = option(
        0,
        "At most this many encoder-half events per process (0: all; the paper: 100,000).",
        ge=0,
    )

    def _check(self) -> None:
        if not self.file:
            raise OptionsError(
                f"{key_name(self, 'file')} is not set: a diphoton event file "
                "(contrastx-generate --dataset diphoton --out FILE)"
            )
        if not self.signals:
            raise OptionsError(f"{key_name(self, 'signals')} is empty")
        if not self.configurations:
            raise OptionsError(f"{key_name(self, 'configurations')} is empty")
        bad = [k for k in self.configurations if k not in CONFIGURATION_KINDS]
        if bad:
            raise OptionsError(
                f"{key_name(self, 'configurations')}: unknown {bad[0]!r}; choose from "
                f"{list(CONFIGURATION_KINDS)}"
            )
        both = sorted(set(self.signals) & set(self.background_processes))
        if both:
            raise OptionsError(f"{key_name(self, 'signals')}: {both[0]!r} is a background")
        extra = sorted(set(self.resonant_backgrounds) - set(self.background_processes))
        if extra:
            raise OptionsError(
                f"{key_name(self, 'resonant_backgrounds')}: {extra[0]!r} is not one of "
                f"background_processes"
            )


@options(section="pseudo_data")
class PseudoDataOptions:
    """``[pseudo_data]``: the pseudo-data instances and the signal injections."""

    luminosity_fb: float = option(
        4.0,
        "Integrated luminosity in fb^-1: every background process is drawn with its "
        "expected yield sigma x L after the selection (the pseudo-data half must hold it).",
        gt=0.0,
    )
    injections: tuple[float, ...] = option(
        (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        "Injected signal strengths S / sqrt(B), S and B the signal and background events "
        "of the data in the signal region (0: no signal; the sculpting check).",
        ge=0.0,
    )
    instances: int = option(
        10, "Pseudo-data instances (own background draw and injections; as the paper).", ge=1
    )
    min_eval_signal: int = option(
        200,
        "Signal-region events of a tested signal that stay out of every injection (its "
        "evaluation events).",
        ge=1,
    )

    def _check(self) -> None:
        if not self.injections:
            raise OptionsError(f"{key_name(self, 'injections')} is empty")
        if len(set(self.injections)) != len(self.injections):
            raise OptionsError(f"{key_name(self, 'injections')} has repeated values")


@options(section="results")
class SignalAwareResults:
    """``[results]``: working points, the discovery target, figures and Appendix A."""

    working_points: tuple[float, ...] = option(
        (0.1, 0.01),
        "Classifier working points as background efficiencies in the signal region: the "
        "SIC is reported at each (the second is the default of the injection-for-"
        "significance summary).",
        gt=0.0,
        le=1.0,
    )
    nominal_injection: float = option(
        1.0,
        "Injection S / sqrt(B) of the summary table's SIC (one of the injections).",
        ge=0.0,
    )
    significance: float = option(
        3.0,
        "Post-selection significance target: the report gives the injection needed to "
        "reach it (SIC x S / sqrt(B) at the tighter working point).",
        gt=0.0,
    )
    min_background_events: float = option(
        20.0,
        "A working point is resolved only where the evaluation background keeps at least "
        "this many events (unweighted); elsewhere the SIC is printed as a bound.",
        gt=0.0,
    )
    map_method: str = option(
        "tsne",
        "2-D map of the latent space per configuration (Fig. 2): tsne, umap, pca.",
        choices=("tsne", "umap", "pca"),
    )
    map_events: int = option(500, "Events per process group in the latent map.", ge=10)
    information: bool = option(
        True,
        "Appendix A: confusion matrices of a BDT on the ID latent features, a BDT on raw "
        "physics features and the fully supervised transformer.",
    )
    supervised_epochs: int = option(
        0, "Epochs of the fully supervised transformer (0: the [train] epochs).", ge=0
    )


_SECTIONS: dict[str, type] = {
    "run": SignalAwareRun,
    "events": SignalAwareEvents,
    "pseudo_data": PseudoDataOptions,
    "results": SignalAwareResults,
    "executor": ExecutorOptions,
}

# The second paper's regions in m_gammagamma (GeV): a 10 GeV window around the Higgs
# mass and the rest of the 105-160 GeV selection as sidebands.
_CATHODE_DEFAULTS: dict[str, Any] = {
    "signal_region": [120.0, 130.0],
    "sidebands": [105.0, 120.0, 130.0, 160.0],
}

# Not from the paper: sizes for this 2-core CPU (about 40 min on the benchmark sample);
# the paper preset below restores the paper's.
PRESETS: dict[str, dict[str, Any]] = {
    "signal-aware": {
        "run": {"encoders": 2},
        "events": {"max_encoder_events": 1_500},
        "pseudo_data": {"instances": 3},
        "train": {"preset": "supcon-kl-particle-transformer-cpu", "epochs": 15},
        "cathode": {"n_models": 2},
    },
    # Li, Nachman, Noll: 5 encoders x 4 flows x 4 BDTs, 10 pseudo-data instances, 100,000
    # events per process (60/20/20), the particle transformer of the paper. Needs a GPU and
    # a sample of ~200,000 events per process.
    "signal-aware-paper": {
        "run": {"encoders": 5, "device": "cuda", "out_dir": "contrastx-signal-aware-paper"},
        "events": {"max_encoder_events": 100_000},
        "train": {"preset": "supcon-kl-particle-transformer"},
        "cathode": {"n_models": 4, "n_flows": 4},
        "results": {"working_points": [0.01, 0.001]},
    },
}
"""Named presets of the signal-aware study."""


def _train_config(table: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[train]`` table, checked by building its TrainConfig (errors name ``train.*``)."""
    t = dict(table)
    preset = t.pop("preset", None)
    if not isinstance(preset, str) or not preset:
        raise OptionsError(
            'train.preset must name a TrainConfig preset, e.g. "supcon-kl-particle-transformer-cpu"'
        )
    for k in t:
        if k in _FIXED_TRAIN_KEYS:
            raise OptionsError(f"train.{k} cannot be set here: {_FIXED_TRAIN_KEYS[k]}")
    if preset not in TRAIN_PRESETS:
        raise OptionsError(
            f"train.preset {preset!r} is unknown; choose one of {sorted(TRAIN_PRESETS)}"
        )
    tc = TrainConfig.from_preset(preset, **t)
    if tc.method not in ("supcon", "supcon_kl"):
        raise OptionsError(
            f"train: the signal-aware study trains supervised contrastive encoders "
            f"(supcon or supcon_kl); preset {preset!r} gives method {tc.method!r}"
        )
    if tc.preprocessing != "layout":
        raise OptionsError('train.preprocessing must be "layout" for diphoton events')
    return {"preset": preset, **t}


@dataclass(frozen=True)
class SignalAwareConfig:
    """A whole signal-aware study: every section, resolved and checked."""

    events: SignalAwareEvents
    train: dict[str, Any]
    run: SignalAwareRun = field(default_factory=SignalAwareRun)
    pseudo_data: PseudoDataOptions = field(default_factory=PseudoDataOptions)
    results: SignalAwareResults = field(default_factory=SignalAwareResults)
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    cathode: CathodeOptions = field(
        default_factory=lambda: from_mapping(CathodeOptions, _CATHODE_DEFAULTS, where="cathode")
    )
    preset: str = STUDY_NAME

    def __post_init__(self) -> None:
        if self.results.nominal_injection not in self.pseudo_data.injections:
            raise OptionsError(
                f"results.nominal_injection {self.results.nominal_injection} is not one of "
                f"pseudo_data.injections {list(self.pseudo_data.injections)}"
            )

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out_dir)

    def train_config(self, seed: int, **overrides: Any) -> TrainConfig:
        """The encoder TrainConfig with the study's fixed keys (seed, split, device)."""
        t = dict(self.train)
        preset = t.pop("preset")
        t.update(overrides)
        return TrainConfig.from_preset(
            preset,
            **t,
            seed=int(seed),
            device=self.run.device,
            n_folds=4,
            fold=0,
            test_fraction=0.0,
            progress=False,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain (TOML/JSON-friendly) form; :meth:`from_dict` inverts it."""
        d: dict[str, Any] = {"study": STUDY_NAME, "preset": self.preset}
        d.update({name: to_dict(getattr(self, name)) for name in _SECTIONS})
        d["train"] = dict(self.train)
        d["cathode"] = to_dict(self.cathode)
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SignalAwareConfig:
        """Build and validate from nested dicts (errors name the key)."""
        d = dict(d)
        d.pop("study", None)
        preset = d.pop("preset", STUDY_NAME)
        kwargs: dict[str, Any] = {"preset": preset}
        for key, value in d.items():
            if key in _SECTIONS:
                kwargs[key] = from_mapping(_SECTIONS[key], value, where=key)
            elif key == "train":
                kwargs["train"] = _train_config(value)
            elif key == "cathode":
                kwargs["cathode"] = from_mapping(CathodeOptions, value, where="cathode")
            else:
                raise OptionsError(
                    f"unknown top-level key {key!r}; known: study, preset, train, cathode, "
                    + ", ".join(_SECTIONS)
                )
        for key in ("events", "train"):
            if key not in kwargs:
                raise OptionsError(f"a signal-aware study needs a [{key}] table")
        return cls(**kwargs)


def is_signal_aware(path: str | Path | None, preset: str | None) -> bool:
    """Whether ``contrastx-pipeline`` was given a signal-aware study (preset or file)."""
    if preset is not None:
        return preset in PRESETS
    if path is None or not Path(path).is_file():
        return False
    try:
        user = read_toml(path)
    except ValueError:
        return False
    return user.get("study") == STUDY_NAME or user.get("preset") in PRESETS


def load_signal_aware_config(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    overrides: Sequence[str] = (),
) -> SignalAwareConfig:
    """Read a signal-aware study config: defaults < preset < TOML file < ``overrides``.

    Raises
    ------
    FileNotFoundError
        Missing config file.
    ValueError
        Bad TOML, unknown keys (the message names the key) or invalid values.
    """
    user: dict[str, Any] = {} if path is None else read_toml(path)
    if user.get("study", STUDY_NAME) != STUDY_NAME:
        raise ValueError(f"{path}: study = {user['study']!r}; this reader takes {STUDY_NAME!r}")
    name = preset or str(user.get("preset", STUDY_NAME))
    if name not in PRESETS:
        raise ValueError(f"unknown signal-aware preset {name!r}; choose one of {sorted(PRESETS)}")
    merged = merge_tables({"cathode": copy.deepcopy(_CATHODE_DEFAULTS)}, PRESETS[name])
    merged = merge_tables(merged, {k: v for k, v in user.items() if k not in ("preset", "study")})
    apply_overrides(merged, overrides)
    merged["preset"] = name
    return SignalAwareConfig.from_dict(merged)
