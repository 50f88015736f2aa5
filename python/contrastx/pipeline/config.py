"""Configuration of a ``contrastx-pipeline`` study: TOML file -> frozen dataclasses.

A study config has five tables and a list of embeddings::

    preset = "default"            # or "paper": the primary paper's sizes (GPU)

    [run]        out_dir, seed, device
    [events]     where the events come from (built-in fast generator or files) and how many
    [splits]     the held-out NPLM share of the background and the training folds
    [[embeddings]]  one table per embedding: kind = contrastive | raw | leading_pt | vae
    [nplm]       reference size, N(B), M, lambda, toys, injection fractions
    [results]    the table's injection, Z method, latent-map settings

Values are layered: built-in defaults < the preset < the TOML file < command-line
``--set section.key=value`` overrides. An ``[[embeddings]]`` list in the file replaces
the preset's list. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contrastx.events.layout import SIGNALS

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "EMBEDDING_KINDS",
    "PRESETS",
    "EmbeddingSpec",
    "EventsConfig",
    "NPLMConfig",
    "ResultsConfig",
    "RunConfig",
    "SplitsConfig",
    "StudyConfig",
    "config_hash",
    "load_config",
    "parse_override",
]

EMBEDDING_KINDS = ("contrastive", "raw", "leading_pt", "vae")
"""Embedding kinds: a trained contrastive encoder and the paper's three baselines."""


def config_hash(obj: Any) -> str:
    """SHA-256 (hex, first 12 digits) of the canonical JSON of ``obj``."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: where outputs go and the global settings.

    Parameters
    ----------
    out_dir : str
        Output folder (relative paths are relative to the current directory).
    seed : int
        Master seed; every stage derives its own seeds from it.
    device : str
        Torch device for training, embedding and toys (``"cpu"``, ``"cuda"``, ...).
    """

    out_dir: str = "contrastx-study"
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if int(self.seed) < 0:
            raise ValueError(f"run.seed must be >= 0; got {self.seed}")


@dataclass(frozen=True)
class EventsConfig:
    """``[events]``: the background and signal samples.

    Parameters
    ----------
    background_file : str
        ADC2021 or contrastx background event file; empty: the built-in fast generator
        (quick runs only, never physics evidence).
    background_labels : str
        Label side file (``.npy`` or HDF5 ``labels``) for an unlabelled ADC2021 background
        file (0 W, 1 QCD, 2 Z, 3 ttbar); needed for supervised encoders and Fig. II.
    signal_files : dict of str to str
        Signal name -> event file (ADC2021 single-process files or contrastx files);
        with files, only these signals are studied.
    n_background : int
        Generator: background events (ADC2021 mixture), shared between embedding
        training and the NPLM pool; with files: read at most this many (0: all).
    n_signal : int
        Generator: events per signal process; with files: read at most this many.
    signals : list of str
        Signals studied (generator: any of the four ADC2021 signals).
    """

    background_file: str = ""
    background_labels: str = ""
    signal_files: dict[str, str] = field(default_factory=dict)
    n_background: int = 70_000
    n_signal: int = 3_000
    signals: tuple[str, ...] = SIGNALS

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals", tuple(str(s) for s in self.signals))
        object.__setattr__(
            self, "signal_files", {str(k): str(v) for k, v in self.signal_files.items()}
        )
        if not self.signals:
            raise ValueError("events.signals is empty")
        if self.background_file:
            missing = [s for s in self.signals if s not in self.signal_files]
            if self.signal_files and missing:
                raise ValueError(f"events.signals {missing} have no entry in events.signal_files")
        else:
            bad = [s for s in self.signals if s not in SIGNALS]
            if bad:
                raise ValueError(
                    f"events.signals {bad} unknown to the fast generator; known: {list(SIGNALS)}"
                )
            if self.signal_files:
                raise ValueError("events.signal_files needs events.background_file as well")
        if int(self.n_background) < 0 or int(self.n_signal) < 0:
            raise ValueError("events.n_background and events.n_signal must be >= 0")
        if not self.background_file and (self.n_background <= 0 or self.n_signal <= 0):
            raise ValueError("the fast generator needs events.n_background and n_signal > 0")

    @property
    def from_files(self) -> bool:
        return bool(self.background_file)


@dataclass(frozen=True)
class SplitsConfig:
    """``[splits]``: background held out for NPLM, the rest for embedding training.

    Parameters
    ----------
    nplm_fraction : float
        Fraction of the background (stratified by process) held out from every
        embedding's training: the NPLM reference and data pool, and the linear
        evaluation sample.
    n_folds : int
        Cross-validation folds of the training part (the trainer validates on one).
    linear_eval_events : int
        Held-out background events of the linear evaluation (Fig. II; 0: skip it).
    """

    nplm_fraction: float = 0.6
    n_folds: int = 5
    linear_eval_events: int = 5_000

    def __post_init__(self) -> None:
        if not 0.0 < self.nplm_fraction < 1.0:
            raise ValueError(f"splits.nplm_fraction must be in (0, 1); got {self.nplm_fraction}")
        if int(self.n_folds) < 2:
            raise ValueError(f"splits.n_folds must be >= 2; got {self.n_folds}")
        if int(self.linear_eval_events) < 0:
            raise ValueError("splits.linear_eval_events must be >= 0")


_SPEC_KEYS = ("name", "kind", "preset", "latent_dim", "epochs", "n_train", "train")


@dataclass(frozen=True)
class EmbeddingSpec:
    """One ``[[embeddings]]`` table.

    Parameters
    ----------
    kind : {"contrastive", "raw", "leading_pt", "vae"}
        A trained contrastive encoder, or a baseline: the 57-D raw input, the 6-D
        leading-object pT, the 6-D VAE latent.
    name : str
        Label in tables and figures (default: derived from the settings).
    preset : str
        :data:`contrastx.embed.PRESETS` name (``contrastive``), e.g. ``"supcon-mlp"``.
    latent_dim : int
        Embedding dimension D (``contrastive``).
    epochs : int
        Training epochs (``contrastive`` and ``vae``).
    n_train : int
        Use at most this many training events (0: all of the training split).
    train : dict
        Further :class:`~contrastx.embed.TrainConfig` overrides (``contrastive``;
        e.g. ``batch_size``, ``lr``, ``warmup_epochs``), or :func:`~contrastx.embed.fit_vae`
        keywords (``vae``: ``batch_size``, ``lr``, ``kl_weight``, ``preprocessing``).
    """

    kind: str = "contrastive"
    name: str = ""
    preset: str = "supcon-mlp"
    latent_dim: int = 4
    epochs: int = 5
    n_train: int = 0
    train: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in EMBEDDING_KINDS:
            raise ValueError(f"embeddings.kind must be one of {EMBEDDING_KINDS}; got {self.kind!r}")
        if self.kind == "contrastive":
            from contrastx.embed import PRESETS, TrainConfig

            if self.preset not in PRESETS:
                raise ValueError(
                    f"embeddings.preset {self.preset!r} unknown; choose one of {sorted(PRESETS)}"
                )
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            reserved = {"latent_dim", "epochs", "device", "seed", "progress"}
            for key in self.train:
                if key not in known:
                    raise ValueError(
                        f"unknown key embeddings.train.{key} (not a TrainConfig field)"
                    )
                if key in reserved:
                    raise ValueError(
                        f"embeddings.train.{key} is set elsewhere (embedding latent_dim/epochs, "
                        "run.seed/device)"
                    )
        elif self.kind == "vae":
            allowed = {"batch_size", "lr", "kl_weight", "preprocessing", "n_latent"}
            for key in self.train:
                if key not in allowed:
                    raise ValueError(
                        f"unknown key embeddings.train.{key} for a vae; allowed {sorted(allowed)}"
                    )
        elif self.train:
            raise ValueError(f"embeddings.train is not used by kind {self.kind!r}")
        if int(self.epochs) < 1 or int(self.n_train) < 0:
            raise ValueError("embeddings.epochs must be >= 1 and n_train >= 0")
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        if any(c in self.name for c in "/\\ "):
            raise ValueError(f"embeddings.name {self.name!r} must not contain '/', '\\' or spaces")

    def default_name(self) -> str:
        if self.kind == "contrastive":
            return f"{self.preset}-d{self.latent_dim}"
        return {"raw": "raw57", "leading_pt": "leadpt6", "vae": "vae6"}[self.kind]

    @property
    def dimension(self) -> int:
        """Embedding dimension D."""
        if self.kind == "contrastive":
            return int(self.latent_dim)
        if self.kind == "vae":
            return 2 * int(self.train.get("n_latent", 3))
        return {"raw": 57, "leading_pt": 6}[self.kind]

    @property
    def family(self) -> str:
        """Series label for the dimension plots (one line per family)."""
        if self.kind == "contrastive":
            return self.preset + "".join(
                f" {k}={v}" for k, v in sorted(self.train.items()) if k in ("method", "sampling")
            )
        return {"raw": "57D raw", "leading_pt": "6D leading pT", "vae": "6D VAE"}[self.kind]

    def as_dict(self) -> dict[str, Any]:
        """Everything that determines the embedding (for the stage hash)."""
        d = dataclasses.asdict(self)
        if self.kind not in ("contrastive",):
            d.pop("preset")
            d.pop("latent_dim")
        if self.kind in ("raw", "leading_pt"):
            d.pop("epochs")
            d.pop("n_train")
        return d


@dataclass(frozen=True)
class NPLMConfig:
    r"""``[nplm]``: the toy study (see :class:`contrastx.nplm.ToyConfig`).

    Parameters
    ----------
    n_ref, n_bkg, M, lam
        :math:`N_R`, :math:`N(B)`, centres, penalty.
    n_toys : int
        Null (background-only) toys per embedding, shared by every signal and fraction.
    n_toys_signal : int
        Signal toys per embedding, signal and injection fraction (0: ``n_toys``).
    fractions : list of float
        Injection fractions :math:`N(S)/N(B)`. The paper uses 0.1, 0.5, 1 % at
        :math:`N(B) = 10^5` (the ``paper`` preset). The CPU default uses 1, 3, 5 % at
        :math:`N(B) = 2000`: sensitivity scales as :math:`N(S)/\sqrt{N(B)}`, so 3.5 % at
        2,000 corresponds to the paper's 0.5 % at 100,000.
    data_pool : int
        Background events the toys draw their data from (0: ``10 N(B)``, capped by what
        the NPLM split holds beyond the reference).
    mode : {"shared", "paper"}
        :class:`~contrastx.nplm.ToyEngine` mode.
    standardize : bool
        Standardise every embedding with the background pool's mean and std first.
    dtype : {"float64", "float32"}
    """

    n_ref: int = 20_000
    n_bkg: float = 2_000.0
    M: int = 300
    lam: float = 1e-6
    n_toys: int = 100
    n_toys_signal: int = 50
    fractions: tuple[float, ...] = (0.01, 0.03, 0.05)
    data_pool: int = 0
    mode: str = "shared"
    standardize: bool = True
    dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        object.__setattr__(self, "n_bkg", float(self.n_bkg))
        if not self.fractions or any(not (0.0 < f < 1.0) for f in self.fractions):
            raise ValueError(f"nplm.fractions must be non-empty, in (0, 1); got {self.fractions}")
        if int(self.n_toys) < 2:
            raise ValueError(f"nplm.n_toys must be >= 2; got {self.n_toys}")
        if int(self.n_toys_signal) < 0:
            raise ValueError("nplm.n_toys_signal must be >= 0")
        if int(self.n_ref) < 1 or not (math.isfinite(self.n_bkg) and self.n_bkg > 0):
            raise ValueError("nplm.n_ref and nplm.n_bkg must be > 0")
        if int(self.M) < 1 or int(self.M) > int(self.n_ref):
            raise ValueError(f"nplm.M must be in [1, n_ref]; got {self.M}")
        if self.mode not in ("shared", "paper"):
            raise ValueError(f"nplm.mode must be 'shared' or 'paper'; got {self.mode!r}")
        if self.dtype not in ("float64", "float32"):
            raise ValueError(f"nplm.dtype must be 'float64' or 'float32'; got {self.dtype!r}")
        if int(self.data_pool) < 0:
            raise ValueError("nplm.data_pool must be >= 0")

    @property
    def signal_toys(self) -> int:
        return int(self.n_toys_signal) or int(self.n_toys)


@dataclass(frozen=True)
class ResultsConfig:
    """``[results]``: tables, figures and report.

    Parameters
    ----------
    table_fraction : float
        Injection fraction of the Table VI-like table (one of ``nplm.fractions``).
    z_method : {"chi2", "empirical"}
        Z from a :math:`\\chi^2` fitted to the null toys (dof = their mean, the paper's
        notebook) or the empirical null.
    latent_method : {"auto", "pca", "tsne", "umap"}
        2-D projection of the latent map (``auto``: identity for D = 2, else UMAP if
        ``umap-learn`` is installed, else t-SNE if scikit-learn is, else PCA).
    latent_events : int
        Events per process in the latent map.
    latent_embedding : str
        Embedding shown in the latent map (default: the first contrastive one).
    """

    table_fraction: float = 0.05
    z_method: str = "chi2"
    latent_method: str = "auto"
    latent_events: int = 1_000
    latent_embedding: str = ""

    def __post_init__(self) -> None:
        if self.z_method not in ("chi2", "empirical"):
            raise ValueError(
                f"results.z_method must be 'chi2' or 'empirical'; got {self.z_method!r}"
            )
        if self.latent_method not in ("auto", "pca", "tsne", "umap"):
            raise ValueError(
                f"results.latent_method must be auto, pca, tsne or umap; got {self.latent_method!r}"
            )
        if int(self.latent_events) < 1:
            raise ValueError("results.latent_events must be >= 1")


DEFAULT_EMBEDDINGS: tuple[dict[str, Any], ...] = (
    {"kind": "contrastive", "preset": "supcon-mlp", "latent_dim": 4, "epochs": 6,
     "n_train": 30_000, "train": {"batch_size": 512, "warmup_epochs": 1}},
    {"kind": "contrastive", "preset": "supcon-mlp", "latent_dim": 8, "epochs": 6,
     "n_train": 30_000, "train": {"batch_size": 512, "warmup_epochs": 1}},
    {"kind": "raw"},
    {"kind": "leading_pt"},
    {"kind": "vae", "epochs": 10, "n_train": 30_000},
)  # fmt: skip

_PAPER_EMBEDDINGS: list[dict[str, Any]] = [
    {"kind": "contrastive", "preset": p, "latent_dim": d, "epochs": 50}
    for p in ("supcon-mlp", "supcon-transformer", "simclr-mlp", "vicreg-transformer")
    for d in (2, 4, 8, 16, 32)
] + [{"kind": "raw"}, {"kind": "leading_pt"}, {"kind": "vae", "epochs": 50}]

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
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
"""Named presets; ``paper`` wants a GPU (``run.device = "cuda"``)."""

_SECTIONS = {
    "run": RunConfig,
    "events": EventsConfig,
    "splits": SplitsConfig,
    "nplm": NPLMConfig,
    "results": ResultsConfig,
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
    preset: str = "default"

    def __post_init__(self) -> None:
        if not self.embeddings:
            raise ValueError("a study needs at least one [[embeddings]] entry")
        names = [e.name for e in self.embeddings]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate embedding names {dup}; set embeddings.name")
        if self.results.table_fraction not in self.nplm.fractions:
            raise ValueError(
                f"results.table_fraction {self.results.table_fraction} is not one of "
                f"nplm.fractions {list(self.nplm.fractions)}"
            )
        if self.results.latent_embedding and self.results.latent_embedding not in names:
            raise ValueError(
                f"results.latent_embedding {self.results.latent_embedding!r} is not one of {names}"
            )

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out_dir)

    def to_dict(self) -> dict[str, Any]:
        """Plain (TOML/JSON-friendly) form; :func:`from_dict` inverts it."""
        d = {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}
        d["embeddings"] = [dataclasses.asdict(e) for e in self.embeddings]
        d["preset"] = self.preset
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyConfig:
        """Build and validate from nested dicts; unknown keys raise naming the key."""
        d = dict(d)
        preset = str(d.pop("preset", "default"))
        kwargs: dict[str, Any] = {"preset": preset}
        for key, value in d.items():
            if key == "embeddings":
                if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
                    raise ValueError("embeddings must be a list of tables ([[embeddings]])")
                specs = []
                for i, e in enumerate(value):
                    if not isinstance(e, Mapping):
                        raise ValueError(f"embeddings[{i}] must be a table")
                    for k in e:
                        if k not in _SPEC_KEYS:
                            raise ValueError(
                                f"unknown key embeddings[{i}].{k}; known: {', '.join(_SPEC_KEYS)}"
                            )
                    specs.append(EmbeddingSpec(**e))
                kwargs["embeddings"] = tuple(specs)
            elif key in _SECTIONS:
                section = _SECTIONS[key]
                if not isinstance(value, Mapping):
                    raise ValueError(f"[{key}] must be a table")
                known = {f.name for f in dataclasses.fields(section)}
                for k in value:
                    if k not in known:
                        raise ValueError(
                            f"unknown key {key}.{k}; known: {', '.join(sorted(known))}"
                        )
                kwargs[key] = section(**value)
            else:
                raise ValueError(
                    f"unknown top-level key {key!r}; known: preset, embeddings, "
                    + ", ".join(_SECTIONS)
                )
        return cls(**kwargs)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"section.key=value"`` -> (``["section", "key"]``, value parsed as a TOML value).

    A value that is not valid TOML is taken as a string (``run.out_dir=out``).
    """
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    keys = [k.strip() for k in path.strip().split(".") if k.strip()]
    if not keys:
        raise ValueError(f"override {text!r} has no key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return keys, value


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
    user: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            user = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: invalid TOML ({err})") from err
    name = preset or str(user.get("preset", "default"))
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    merged: dict[str, Any] = {"embeddings": [dict(e) for e in DEFAULT_EMBEDDINGS]}
    merged = _merge(merged, PRESETS[name])
    merged = _merge(merged, {k: v for k, v in user.items() if k != "preset"})
    for item in overrides:
        keys, value = parse_override(item)
        node = merged
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {k} is not a table")
        node[keys[-1]] = value
    merged["preset"] = name
    return StudyConfig.from_dict(merged)
