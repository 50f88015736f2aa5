"""Pythia 8 diphoton benchmark: the diphoton final state of Li, Nachman and Noll.

Events with a Higgs-like diphoton candidate, in the
:data:`~contrastx.events.layout.DIPHOTON` layout (4 small-R jets, 2 large-R jets,
2 electrons, 2 muons and MET, each with (pT, eta, phi, mass, b-tag, tau21, tau32,
one-hot type); the two photons of the candidate beside them, kept out of the
encoder; event level: ``n_jets``, ``ht`` and ``m_gg``). Generation runs through
:func:`~contrastx.events.generators.pythia.generate_pythia` with
:data:`DIPHOTON_DATASET`: the same batches, seeds, worker processes, resumable
files, progress reports and bounded memory as the ADC2021 generator.

Processes
---------
Every process is a :class:`DiphotonProcess` in :data:`DIPHOTON_PROCESSES` (list them
with :func:`describe_processes`): Pythia settings, a one-line description, its
*group* (the training label of the paper: every mass point of a model shares it)
and the factor that turns Pythia's cross section into sigma x BR. The SM
backgrounds come first, in the paper's label order:

0. ``gamma_gamma`` -- non-resonant diphoton continuum (q qbar -> gamma gamma and the
   g g -> gamma gamma box; 100 < m_hat < 170 GeV, pT_hat > 25 GeV). Photon + jet and
   dijet events with fake photons are not generated. The generator cuts lie outside
   the selection (the subleading photon needs pT > 0.25 x 105 GeV; no selected event
   had pT_hat < 25 GeV in a sample generated down to 15 GeV).
1. ``ggF``, 2. ``VBF``, 3. ``VH`` (W h and Z h), 4. ``ttH`` -- SM Higgs production
   with h -> gamma gamma, other particles decaying inclusively.

Then the BSM signals (h -> gamma gamma in each), as Pythia generates them with its
internal processes and default couplings:

* ``X_hh`` -- a heavy CP-even scalar (H2, gluon fusion) -> h h -> gamma gamma b bbar
  (masses 300, 400, 500, 600 GeV). Pythia cannot decay the two identical h
  differently, so h decays to gamma gamma or b bbar with equal probability and a
  generator-level :class:`DecayFilter` keeps exactly one of each.
* ``X_Sh`` -- a heavy scalar (H2) -> h S, S (the CP-odd A3, 100 GeV) -> b bbar
  (X = 500, 750, 1000 GeV), the X -> S h topology of the ATLAS bb gamma gamma search.
* ``A_Zh`` -- a CP-odd A (A3, gluon fusion) -> Z h, Z inclusive (300, 500, 700 GeV).
* ``Hpm_Wh`` -- a charged Higgs produced with a top (b g -> H+- t) -> W+- h
  (300, 500, 700 GeV).
* ``t_ch`` -- t tbar with one top decaying through the flavour-changing t -> c h
  (a decay channel added to Pythia's top with a branching ratio of 0.1 %), the
  other to W b.

SUSY signals need an SLHA spectrum, which Pythia does not provide internally; they
are not included.

Cross sections
--------------
Pythia's cross-section estimate of a process includes the branching ratios of the
decay channels left open (h -> gamma gamma at Pythia's own width, about 0.23 %).
Each batch records its estimate; the file's metadata holds, per process,
``cross_section_pb`` = sigma x BR of the process's final state
(Pythia's sigma x generator-filter efficiency x :attr:`DiphotonProcess.branching`)
and ``selected_cross_section_fb`` (times the selection efficiency), so that
:func:`event_weights` gives every event its expected yield at a luminosity.
These are leading-order Pythia cross sections (ggF is about half the
state-of-the-art value); the BSM ones follow Pythia's default couplings and are
benchmarks to be scaled, not predictions.

Reconstruction
--------------
A parametric detector (:class:`DiphotonReco`, all numbers settable), no pileup:

* **Photons**: final-state photons, energy smeared by
  ``sqrt(c^2 + s^2 / E)`` (1 %, 10 %), pT > 25 GeV, |eta| < 2.37 outside the
  barrel-endcap crack 1.37-1.52, identification efficiency 95 % (barrel) /
  85 % (endcap), isolated: the scalar pT sum of the other visible particles within
  Delta R < 0.2 below 6.5 % of the photon pT (this removes photons from pi0
  decays inside jets).
* **Diphoton candidate** (the paper's selection): of the three leading photons, the
  pair with mass closest to 125 GeV; leading / subleading pT > 35 / 25 GeV and
  pT / m_gg > 0.35 / 0.25; 105 < m_gg < 160 GeV. The two photons fill the photon
  slots (leading first) and m_gg the event feature.
* **Electrons** (|eta| < 2.47, same resolution as photons) and **muons**
  (|eta| < 2.7, 1 % + 1e-4 pT): pT > 10 GeV, efficiency 90 % / 95 %, isolated
  (pT sum within Delta R < 0.2 below 15 %).
* **Jets**: anti-kt R = 0.4 and R = 1.0 (FastJet) on the visible particles with
  |eta| < 4.9 other than the diphoton candidate and the accepted leptons; four-momenta
  scaled by a Gaussian with relative width 5 % + 100 % / sqrt(pT / GeV). Small-R jets:
  pT > 25 GeV, |eta| < 4.5; large-R jets: pT > 200 GeV, |eta| < 2.0; no overlap
  removal between them (as in the paper). tau21 and tau32 are FastJet's normalised
  N-subjettiness ratios (beta = 1, R0 = the jet radius, one-pass kT axes) of the
  jet's constituents, zero where the lower tau vanishes.
* **b-tag**: 1 or 0, drawn per jet from truth matching to weakly decaying hadrons
  with pT > 5 GeV (a b hadron within Delta R < 0.3 of a small-R jet, or inside the
  radius of a large-R jet; else a c hadron; else light): efficiency 77 % (b),
  20 % (c), 1 % (light), only for |eta| < 2.5.
* **MET**: invisible particles and visible ones beyond |eta| = 4.9, plus Gaussian noise
  of 0.5 sqrt(sum ET) GeV per component.
* Event features: ``n_jets`` = the number of accepted small-R jets (all of them, not
  only the four kept), ``ht`` = their scalar pT sum, ``m_gg``.

Examples
--------
>>> from contrastx.events.generators.diphoton import diphoton_counts, generate_diphoton
>>> counts = diphoton_counts(n_continuum=500, n_higgs=100, n_signal=100)  # doctest: +SKIP
>>> generate_diphoton("diphoton.h5", counts, seed=1)  # doctest: +SKIP
PosixPath('diphoton.h5')
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...options import OptionsError, key_name, option, options
from ...options import to_dict as options_to_dict
from ..container import Events
from ..kinematics import wrap_phi
from ..layout import DIPHOTON
from .processes import ProcessSpec, _check_settings
from .pythia import DEFAULT_BATCH_SIZE, PythiaDataset, Reconstructed, generate_pythia
from .reconstruction import _kin

__all__ = [
    "BACKGROUND_PROCESSES",
    "DIPHOTON_DATASET",
    "DIPHOTON_GENERATOR_NAME",
    "DIPHOTON_GENERATOR_VERSION",
    "DIPHOTON_GROUPS",
    "DIPHOTON_PROCESSES",
    "DecayFilter",
    "DiphotonOptions",
    "DiphotonProcess",
    "DiphotonReco",
    "describe_processes",
    "diphoton_counts",
    "event_weights",
    "generate_diphoton",
    "group_labels",
    "reconstruct_diphoton",
    "reconstruct_record",
    "register_diphoton_process",
    "resolve_processes",
]

logger = logging.getLogger(__name__)

DIPHOTON_GENERATOR_NAME = "contrastx.pythia.diphoton"
DIPHOTON_GENERATOR_VERSION = "0.1.0"
"""Version of the diphoton recipes and reconstruction (part of a file's configuration)."""

HIGGS_MASS = 125.0
"""Mass of the SM-like Higgs boson h in GeV (Pythia's default)."""

SM_BR_H_GAMMA_GAMMA = 2.27e-3
"""BR(h -> gamma gamma) at 125 GeV (LHC Higgs cross-section working group)."""

SM_BR_H_BB = 0.5809
"""BR(h -> b bbar) at 125 GeV (LHC Higgs cross-section working group)."""

TOP_FCNC_BR = 1e-3
"""BR(t -> c h) of the ``t_ch`` benchmark."""

B_HADRONS_WEAK = (511, 521, 531, 541, 5122, 5132, 5232, 5332)
C_HADRONS_WEAK = (411, 421, 431, 4122, 4132, 4232, 4332)

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


# ---------------------------------------------------------------- processes
@dataclass(frozen=True)
class DecayFilter:
    """Generator-level filter: the decays of one particle species in an event.

    An event passes when the decays of every last copy of ``particle`` (|PDG id|) in
    it are exactly ``decays`` (as a multiset; each decay is its products' |PDG ids|,
    in any order). ``DecayFilter(25, ((22, 22), (5, 5)))`` keeps h h events with one
    h -> gamma gamma and one h -> b bbar.

    Attributes
    ----------
    particle : int
        |PDG id| of the decaying particle.
    decays : tuple of tuple of int
        The required decays, one tuple of product |PDG ids| each.
    """

    particle: int
    decays: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if isinstance(self.particle, bool) or not isinstance(self.particle, (int, np.integer)):
            raise TypeError(f"DecayFilter.particle must be an integer; got {self.particle!r}")
        decays = tuple(tuple(sorted(abs(int(i)) for i in d)) for d in self.decays)
        if not decays or any(len(d) < 2 for d in decays):
            raise ValueError(
                f"DecayFilter.decays must list decays of at least two products; got {self.decays!r}"
            )
        object.__setattr__(self, "particle", abs(int(self.particle)))
        object.__setattr__(self, "decays", tuple(sorted(decays)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in the file's metadata)."""
        return {"particle": self.particle, "decays": [list(d) for d in self.decays]}


@dataclass(frozen=True)
class DiphotonProcess(ProcessSpec):
    """A process of the diphoton benchmark.

    Attributes
    ----------
    name, settings, description
        As in :class:`~contrastx.events.generators.processes.ProcessSpec`.
    group : str
        Process group: the label shared by every mass point of one model (a
        background's group is its name).
    branching : float
        Factor from Pythia's cross section of the generated events (open decay
        channels included) times the decay-filter efficiency to sigma x BR of the
        physical final state (1 when Pythia's decay table already does it).
    branching_note : str
        Where ``branching`` comes from.
    decay_filter : DecayFilter or None
        Generator-level filter applied before the reconstruction.
    masses : dict of str to float
        The model's mass parameters in GeV (empty for the backgrounds).
    """

    group: str = ""
    branching: float = 1.0
    branching_note: str = ""
    decay_filter: DecayFilter | None = None
    masses: dict[str, float] = field(default_factory=dict)


DIPHOTON_PROCESSES: dict[str, DiphotonProcess] = {}
"""Every diphoton process by name: the five SM backgrounds first (labels 0-4), then the signals."""

DIPHOTON_GROUPS: dict[str, str] = {}
"""One-line description of every process group, in label order."""

BACKGROUND_PROCESSES = ("gamma_gamma", "ggF", "VBF", "VH", "ttH")
"""The SM backgrounds in the paper's label order (0 continuum, 1 ggF, 2 VBF, 3 VH, 4 ttH)."""


def register_diphoton_process(
    name: str,
    settings: Iterable[str],
    description: str,
    *,
    group: str | None = None,
    group_description: str | None = None,
    branching: float = 1.0,
    branching_note: str = "",
    decay_filter: DecayFilter | None = None,
    masses: Mapping[str, float] | None = None,
    overwrite: bool = False,
) -> DiphotonProcess:
    """Add a process to :data:`DIPHOTON_PROCESSES`.

    Parameters
    ----------
    name : str
        Process name (letters, digits, ``_ + - .``), the event label.
    settings : iterable of str
        Pythia settings of the hard process and the decays; the generator adds the
        beams, MPI and seeds. Force h -> gamma gamma yourself (``25:onMode = off``,
        ``25:onIfMatch = 22 22``).
    description : str
        One-line physics description.
    group : str, optional
        Process group (default: the name).
    group_description : str, optional
        Description of a new group (default: ``description``).
    branching : float
        Factor to sigma x BR (see :class:`DiphotonProcess`), > 0.
    branching_note : str
        Where ``branching`` comes from.
    decay_filter : DecayFilter, optional
        Generator-level filter.
    masses : mapping of str to float, optional
        Mass parameters (GeV).
    overwrite : bool
        Replace an existing process of that name.

    Returns
    -------
    DiphotonProcess
    """
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS:
        raise ValueError(f"process name must be letters, digits or '_+-.' characters; got {name!r}")
    if name in DIPHOTON_PROCESSES and not overwrite:
        raise ValueError(
            f"diphoton process {name!r} is already registered; pass overwrite=True to replace it"
        )
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"process {name!r} needs a one-line description")
    group = name if group is None else group
    if not isinstance(group, str) or not group or not set(group) <= _NAME_CHARS:
        raise ValueError(f"process {name!r}: bad group name {group!r}")
    if isinstance(branching, bool) or not isinstance(branching, (int, float)):
        raise TypeError(f"process {name!r}: branching must be a number; got {branching!r}")
    if not (math.isfinite(branching) and branching > 0):
        raise ValueError(f"process {name!r}: branching must be finite and > 0; got {branching}")
    if decay_filter is not None and not isinstance(decay_filter, DecayFilter):
        raise TypeError(f"process {name!r}: decay_filter must be a DecayFilter")
    mass = {str(k): float(v) for k, v in (masses or {}).items()}
    spec = DiphotonProcess(
        name,
        _check_settings(name, settings),
        " ".join(description.split()),
        group=group,
        branching=float(branching),
        branching_note=" ".join(branching_note.split()),
        decay_filter=decay_filter,
        masses=mass,
    )
    DIPHOTON_PROCESSES[name] = spec
    if group not in DIPHOTON_GROUPS:
        DIPHOTON_GROUPS[group] = " ".join((group_description or description).split())
    return spec


def describe_processes() -> str:
    """A table of every diphoton process: name, group and description."""
    width = max(len(n) for n in DIPHOTON_PROCESSES)
    gwidth = max(len(s.group) for s in DIPHOTON_PROCESSES.values())
    return "\n".join(
        f"{n:<{width}}  {s.group:<{gwidth}}  {s.description}" for n, s in DIPHOTON_PROCESSES.items()
    )


_H_YY = ("25:onMode = off", "25:onIfMatch = 22 22")

register_diphoton_process(
    "gamma_gamma",
    [
        "PromptPhoton:ffbar2gammagamma = on",
        "PromptPhoton:gg2gammagamma = on",
        "PhaseSpace:mHatMin = 100",
        "PhaseSpace:mHatMax = 170",
        "PhaseSpace:pTHatMin = 25",
    ],
    "non-resonant gamma gamma continuum (q qbar and the g g box, 100 < m_hat < 170 GeV, "
    "pT_hat > 25 GeV)",
)
register_diphoton_process(
    "ggF", ["HiggsSM:gg2H = on", *_H_YY], "SM Higgs, gluon fusion, h -> gamma gamma"
)
register_diphoton_process(
    "VBF",
    ["HiggsSM:ff2Hff(t:WW) = on", "HiggsSM:ff2Hff(t:ZZ) = on", *_H_YY],
    "SM Higgs, vector-boson fusion (WW and ZZ), h -> gamma gamma",
)
register_diphoton_process(
    "VH",
    ["HiggsSM:ffbar2HW = on", "HiggsSM:ffbar2HZ = on", *_H_YY],
    "SM Higgs with a W or Z (inclusive decays), h -> gamma gamma",
)
register_diphoton_process(
    "ttH",
    ["HiggsSM:gg2Httbar = on", "HiggsSM:qqbar2Httbar = on", *_H_YY],
    "SM Higgs with t tbar (inclusive top decays), h -> gamma gamma",
)

for _m in (300, 400, 500, 600):
    register_diphoton_process(
        f"X_hh_{_m}",
        [
            "Higgs:useBSM = on",
            "HiggsBSM:gg2H2 = on",
            f"35:m0 = {_m}",
            "35:onMode = off",
            "35:onIfMatch = 25 25",
            "25:oneChannel = 1 0.5 100 22 22",
            "25:addChannel = 1 0.5 100 5 -5",
        ],
        f"heavy scalar X ({_m} GeV, gluon fusion) -> h h -> gamma gamma b bbar",
        group="X_hh",
        group_description="heavy scalar X (gluon fusion) -> h h -> gamma gamma b bbar",
        branching=4 * SM_BR_H_GAMMA_GAMMA * SM_BR_H_BB,
        branching_note=(
            "h decays to gamma gamma or b bbar with probability 1/2 each and the decay "
            "filter keeps one of each (probability 1/2): sigma x 2 BR(gamma gamma) BR(b bbar) "
            "= sigma_filtered x 4 BR(gamma gamma) BR(b bbar), SM branching ratios"
        ),
        decay_filter=DecayFilter(25, ((22, 22), (5, 5))),
        masses={"m_X": _m},
    )
for _m in (500, 750, 1000):
    register_diphoton_process(
        f"X_Sh_{_m}",
        [
            "Higgs:useBSM = on",
            "HiggsBSM:gg2H2 = on",
            "HiggsH2:coup2A3H1 = 1",
            f"35:m0 = {_m}",
            "36:m0 = 100",
            "35:onMode = off",
            "35:onIfMatch = 25 36",
            "36:onMode = off",
            "36:onIfMatch = 5 -5",
            *_H_YY,
        ],
        f"heavy scalar X ({_m} GeV, gluon fusion) -> S h, S (100 GeV) -> b bbar, h -> gamma gamma",
        group="X_Sh",
        group_description="heavy scalar X -> S h, S (100 GeV) -> b bbar, h -> gamma gamma",
        masses={"m_X": _m, "m_S": 100},
    )
for _m in (300, 500, 700):
    register_diphoton_process(
        f"A_Zh_{_m}",
        [
            "Higgs:useBSM = on",
            "HiggsBSM:gg2A3 = on",
            f"36:m0 = {_m}",
            "36:onMode = off",
            "36:onIfMatch = 23 25",
            *_H_YY,
        ],
        f"CP-odd scalar A ({_m} GeV, gluon fusion) -> Z h, Z inclusive, h -> gamma gamma",
        group="A_Zh",
        group_description="CP-odd scalar A (gluon fusion) -> Z h, h -> gamma gamma",
        masses={"m_A": _m},
    )
for _m in (300, 500, 700):
    register_diphoton_process(
        f"Hpm_Wh_{_m}",
        [
            "Higgs:useBSM = on",
            "HiggsBSM:bg2H+-t = on",
            f"37:m0 = {_m}",
            "37:onMode = off",
            "37:onIfMatch = 24 25",
            *_H_YY,
        ],
        f"charged Higgs H+- ({_m} GeV) with a top (b g -> H+- t), H+- -> W+- h, h -> gamma gamma",
        group="Hpm_Wh",
        group_description="charged Higgs with a top, H+- -> W+- h, h -> gamma gamma",
        masses={"m_H+": _m},
    )
register_diphoton_process(
    "t_ch",
    [
        "Top:gg2ttbar = on",
        "Top:qqbar2ttbar = on",
        f"6:addChannel = 1 {TOP_FCNC_BR:g} 100 4 25",
        "6:onMode = off",
        "6:onPosIfMatch = 4 25",
        "6:onNegIfMatch = 24 5",
        *_H_YY,
    ],
    f"t tbar, one top -> c h (FCNC, BR {TOP_FCNC_BR:g}), the other -> W b, h -> gamma gamma",
    group="t_ch",
    group_description="top FCNC in t tbar: t -> c h, h -> gamma gamma",
    branching=2.0,
    branching_note=(
        "Pythia decays the top to c h and the antitop to W b; the charge-conjugate "
        "configuration doubles the rate"
    ),
)
del _m

_BUILTIN = tuple(DIPHOTON_PROCESSES)
assert _BUILTIN[: len(BACKGROUND_PROCESSES)] == BACKGROUND_PROCESSES


def resolve_processes(names: Iterable[str]) -> list[str]:
    """Process names for a list of process or group names (groups expand to their members).

    Raises
    ------
    ValueError
        For a name that is neither, listing the known groups.
    """
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name in DIPHOTON_PROCESSES:
            members = [name]
        else:
            members = [p for p, s in DIPHOTON_PROCESSES.items() if s.group == name]
        if not members:
            raise ValueError(
                f"unknown diphoton process or group {name!r}; groups: "
                f"{', '.join(DIPHOTON_GROUPS)} (processes: contrastx-generate --dataset "
                "diphoton --list-processes)"
            )
        out += [m for m in members if m not in out]
    return out


def diphoton_counts(
    n_continuum: int = 50_000,
    n_higgs: int = 10_000,
    n_signal: int = 10_000,
    signals: Iterable[str] | None = None,
) -> dict[str, int]:
    """Selected events per process of a benchmark sample (zeros left out).

    Parameters
    ----------
    n_continuum : int
        Events of the gamma gamma continuum.
    n_higgs : int
        Events of each SM Higgs mode (ggF, VBF, VH, ttH).
    n_signal : int
        Events of each signal mass point.
    signals : iterable of str, optional
        Signal processes or groups (default: every registered signal).
    """
    for what, n in (("n_continuum", n_continuum), ("n_higgs", n_higgs), ("n_signal", n_signal)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{what} must be an integer >= 0; got {n!r}")
    counts = {"gamma_gamma": int(n_continuum)}
    counts.update(dict.fromkeys(BACKGROUND_PROCESSES[1:], int(n_higgs)))
    if signals is None:
        chosen = [p for p in DIPHOTON_PROCESSES if p not in BACKGROUND_PROCESSES]
    else:
        chosen = resolve_processes(signals)
    for p in chosen:
        counts[p] = counts.get(p, 0) + int(n_signal)
    return {k: v for k, v in counts.items() if v > 0}


# ---------------------------------------------------------------- reconstruction settings
@options(section="diphoton.reco")
class DiphotonReco:
    """Detector model of the diphoton benchmark (see the module docstring)."""

    photon_pt_min: float = option(25.0, "Photon candidates: smeared pT above (GeV).", ge=0)
    photon_eta_max: float = option(
        DIPHOTON.group("photon").eta_max, "Photon acceptance |eta| (the layout's).", gt=0
    )
    photon_crack: tuple[float, ...] = option(
        (1.37, 1.52), "Barrel-endcap crack (|eta| range) without photons; () for none."
    )
    photon_efficiency_barrel: float = option(
        0.95, "Photon identification efficiency below the crack.", ge=0, le=1
    )
    photon_efficiency_endcap: float = option(
        0.85, "Photon identification efficiency above the crack.", ge=0, le=1
    )
    em_res_const: float = option(0.01, "Electromagnetic energy resolution: constant term.", ge=0)
    em_res_stochastic: float = option(
        0.10, "Electromagnetic energy resolution: stochastic term (x 1/sqrt(E / GeV)).", ge=0
    )
    isolation_cone: float = option(0.2, "Isolation cone Delta R of photons and leptons.", gt=0)
    photon_isolation: float = option(
        0.065, "Photons: maximum pT sum of other visible particles in the cone / pT.", ge=0
    )
    lepton_isolation: float = option(
        0.15, "Leptons: maximum pT sum of other visible particles in the cone / pT.", ge=0
    )
    higgs_mass: float = option(HIGGS_MASS, "Diphoton candidate: the pair closest to it (GeV).")
    n_photon_candidates: int = option(3, "Photons (leading) that form candidate pairs.", ge=2)
    leading_pt_min: float = option(35.0, "Leading photon of the pair: pT above (GeV).", ge=0)
    subleading_pt_min: float = option(25.0, "Subleading photon: pT above (GeV).", ge=0)
    leading_pt_over_m: float = option(0.35, "Leading photon: pT / m_gg above.", ge=0)
    subleading_pt_over_m: float = option(0.25, "Subleading photon: pT / m_gg above.", ge=0)
    m_gg_min: float = option(105.0, "Diphoton mass window: lower edge (GeV).", ge=0)
    m_gg_max: float = option(160.0, "Diphoton mass window: upper edge (GeV).", gt=0)
    electron_pt_min: float = option(10.0, "Electrons: smeared pT above (GeV).", ge=0)
    electron_eta_max: float = option(
        DIPHOTON.group("electron").eta_max, "Electron acceptance |eta| (the layout's).", gt=0
    )
    electron_efficiency: float = option(0.90, "Electron efficiency.", ge=0, le=1)
    muon_pt_min: float = option(10.0, "Muons: smeared pT above (GeV).", ge=0)
    muon_eta_max: float = option(
        DIPHOTON.group("muon").eta_max, "Muon acceptance |eta| (the layout's).", gt=0
    )
    muon_efficiency: float = option(0.95, "Muon efficiency.", ge=0, le=1)
    muon_res_const: float = option(0.01, "Muon pT resolution: constant term.", ge=0)
    muon_res_linear: float = option(1e-4, "Muon pT resolution: term x pT / GeV.", ge=0)
    jet_radius: float = option(0.4, "Small-R jets: anti-kt radius.", gt=0)
    jet_pt_min: float = option(25.0, "Small-R jets: smeared pT above (GeV).", ge=0)
    jet_eta_max: float = option(
        DIPHOTON.group("jet").eta_max, "Small-R jet acceptance |eta| (the layout's).", gt=0
    )
    large_r_jet_radius: float = option(1.0, "Large-R jets: anti-kt radius.", gt=0)
    large_r_jet_pt_min: float = option(200.0, "Large-R jets: smeared pT above (GeV).", ge=0)
    large_r_jet_eta_max: float = option(
        DIPHOTON.group("large_r_jet").eta_max,
        "Large-R jet acceptance |eta| (the layout's).",
        gt=0,
    )
    jet_cluster_pt_min: float = option(
        10.0, "Jets are clustered above this pT before smearing (GeV).", ge=0
    )
    jet_res_const: float = option(0.05, "Jet resolution: constant term.", ge=0)
    jet_res_stochastic: float = option(
        1.0, "Jet resolution: stochastic term (x 1/sqrt(pT / GeV)).", ge=0
    )
    btag_eff_b: float = option(0.77, "b-tag efficiency of b jets.", ge=0, le=1)
    btag_eff_c: float = option(0.20, "b-tag mistag rate of c jets.", ge=0, le=1)
    btag_eff_light: float = option(0.01, "b-tag mistag rate of light jets.", ge=0, le=1)
    btag_eta_max: float = option(2.5, "b-tagging acceptance |eta| (tracker).", ge=0)
    btag_match_dr: float = option(
        0.3, "Small-R jets: Delta R to a b or c hadron for the flavour.", gt=0
    )
    hadron_pt_min: float = option(5.0, "b and c hadrons used for the flavour: pT above.", ge=0)
    calo_eta_max: float = option(4.9, "Visible particles beyond this |eta| escape into MET.", gt=0)
    met_resolution: float = option(0.5, "MET noise per component: x sqrt(sum ET / GeV).", ge=0)
    invisible_ids: tuple[int, ...] = option(
        (12, 14, 16, 1000022), "|PDG id| of invisible particles."
    )

    def _check(self) -> None:
        crack = self.photon_crack
        if crack and (len(crack) != 2 or not 0 <= crack[0] < crack[1]):
            raise OptionsError(
                f"{key_name(self, 'photon_crack')} must be () or two increasing |eta| "
                f"values; got {crack}"
            )
        if self.m_gg_min >= self.m_gg_max:
            raise OptionsError(
                f"{key_name(self, 'm_gg_min')} must be below {key_name(self, 'm_gg_max')}; "
                f"got {self.m_gg_min} >= {self.m_gg_max}"
            )
        for name in ("photon", "electron", "muon", "jet", "large_r_jet"):
            value = getattr(self, f"{name}_eta_max")
            limit = DIPHOTON.group(name).eta_max
            if value > limit:
                raise OptionsError(
                    f"{key_name(self, name + '_eta_max')} = {value} exceeds the diphoton "
                    f"layout's {name} acceptance {limit}"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored in the file's metadata)."""
        return options_to_dict(self)


# ---------------------------------------------------------------- reconstruction helpers
def _delta_r2(eta1, phi1, eta2, phi2) -> np.ndarray:
    dphi = wrap_phi(phi1 - phi2)
    return (eta1 - eta2) ** 2 + dphi**2


def _pairs(evt_a: np.ndarray, evt_b: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    """All (a, b) index pairs with ``evt_a[a] == evt_b[b]``; ``evt_b`` sorted."""
    counts_b = np.bincount(evt_b, minlength=n_events)
    start_b = np.concatenate([[0], np.cumsum(counts_b)[:-1]])
    per_a = counts_b[evt_a]
    a = np.repeat(np.arange(evt_a.size), per_a)
    first = np.repeat(np.cumsum(per_a) - per_a, per_a)
    b = np.repeat(start_b[evt_a], per_a) + (np.arange(a.size) - first)
    return a, b


def _cone_sum(
    idx: np.ndarray,
    evt: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    others: np.ndarray,
    cone: float,
    n_events: int,
) -> np.ndarray:
    """Scalar pT sum of the particles ``others`` (sorted by event) within ``cone`` of each
    particle ``idx``, itself excluded."""
    if idx.size == 0:
        return np.zeros(0)
    a, b = _pairs(evt[idx], evt[others], n_events)
    i, j = idx[a], others[b]
    inside = (_delta_r2(eta[i], phi[i], eta[j], phi[j]) < cone * cone) & (i != j)
    return np.bincount(a[inside], weights=pt[j][inside], minlength=idx.size)


def _rank_in_event(evt: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order by (event, decreasing key) and the rank of each object within its event."""
    order = np.lexsort((-key, evt))
    evt_s = evt[order]
    rank = np.arange(evt_s.size) - np.searchsorted(evt_s, evt_s, side="left")
    return order, rank


def _fill_group(
    out: np.ndarray, group: str, evt: np.ndarray, columns: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scatter objects into a layout group: per event pT-ordered and truncated.

    Returns the indices (into the inputs) of the objects kept and their rows and slots.
    """
    slots = DIPHOTON.group_slots(group)
    order, rank = _rank_in_event(evt, columns["pt"])
    keep = rank < slots.stop - slots.start
    o = order[keep]
    rows, cols = evt[o], slots.start + rank[keep]
    for name, values in columns.items():
        out[rows, cols, DIPHOTON.feature_index(name)] = values[o]
    return o, rows, cols


def _smear_factor(rng: np.random.Generator, rel_sigma: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 + rel_sigma * rng.standard_normal(rel_sigma.shape), 0.0)


def _em_resolution(energy: np.ndarray, reco: DiphotonReco) -> np.ndarray:
    e = np.maximum(energy, 1e-3)
    return np.sqrt(reco.em_res_const**2 + reco.em_res_stochastic**2 / e)


def _flat_record(record: Any) -> dict[str, np.ndarray]:
    """Flat numpy arrays of an event record (fields id, status, px, py, pz, e) + ``evt``."""
    import awkward as ak

    counts = ak.to_numpy(ak.num(record, axis=1)).astype(np.int64)
    flat = ak.flatten(record, axis=1)
    out = {"id": ak.to_numpy(flat.id).astype(np.int64)}
    out["status"] = ak.to_numpy(flat.status).astype(np.int64)
    for f in ("px", "py", "pz", "e"):
        out[f] = np.asarray(ak.to_numpy(flat[f]), dtype=np.float64)
    out["evt"] = np.repeat(np.arange(counts.size), counts)
    out["counts"] = counts
    return out


def event_record(batch: Any) -> Any:
    """Every particle ``{id, status, px, py, pz, e}`` of a ``Pythia.nextBatch`` array."""
    import awkward as ak

    prt = batch.prt
    return ak.zip(
        {
            "id": prt.id,
            "status": prt.status,
            "px": prt.p.px,
            "py": prt.p.py,
            "pz": prt.p.pz,
            "e": prt.p.e,
        },
        depth_limit=2,
    )


def decay_filter_mask(batch: Any, decay_filter: DecayFilter) -> np.ndarray:
    """Events of a ``Pythia.nextBatch`` array that pass ``decay_filter`` (bool per event)."""
    import awkward as ak

    prt = batch.prt
    counts = ak.to_numpy(ak.num(prt.id, axis=1)).astype(np.int64)
    n = counts.size
    offset = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pid = np.abs(ak.to_numpy(ak.flatten(prt.id)).astype(np.int64))
    d1 = ak.to_numpy(ak.flatten(prt.daughter1)).astype(np.int64)
    d2 = ak.to_numpy(ak.flatten(prt.daughter2)).astype(np.int64)
    evt = np.repeat(np.arange(n), counts)
    cand = np.flatnonzero((pid == decay_filter.particle) & (d1 > 0))
    first = offset[evt[cand]] + d1[cand]
    last_copy = pid[first] != decay_filter.particle
    cand, first = cand[last_copy], first[last_copy]
    stop = offset[evt[cand]] + np.maximum(d2[cand], d1[cand]) + 1
    # each decay of a candidate as the sorted tuple of its product ids (a few per event)
    decays = [
        tuple(sorted(pid[a:b].tolist())) for a, b in zip(first.tolist(), stop.tolist(), strict=True)
    ]
    required: dict[tuple[int, ...], int] = {}
    for d in decay_filter.decays:
        required[d] = required.get(d, 0) + 1
    c_evt = evt[cand]
    ok = np.bincount(c_evt, minlength=n) == len(decay_filter.decays)
    for decay, k in required.items():
        match = np.array([d == decay for d in decays], dtype=bool)
        ok &= np.bincount(c_evt[match], minlength=n) == k
    return ok


# ---------------------------------------------------------------- reconstruction
def reconstruct_record(
    record: Any, rng: np.random.Generator, reco: DiphotonReco | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reconstruct and select events into the diphoton layout.

    Parameters
    ----------
    record : awkward.Array
        Per event, every particle as a record ``{id, status, px, py, pz, e}`` (see
        :func:`event_record`): final-state particles have ``status > 0``; b and c
        hadrons (any status) give the jet flavours.
    rng : numpy.random.Generator
        Source of the smearing, efficiencies and tags (drawn in a fixed order: the
        result is a pure function of the input and the generator state).
    reco : DiphotonReco, optional
        The detector model; default :class:`DiphotonReco()`.

    Returns
    -------
    particles : ndarray, shape (n_pass, 13, 12), float32
        The selected events in the :data:`~contrastx.events.layout.DIPHOTON` layout.
    event_features : ndarray, shape (n_pass, 3), float32
        ``n_jets``, ``ht``, ``m_gg``.
    selected : ndarray of int64
        Indices of the selected events in ``record``.
    """
    s = DiphotonReco() if reco is None else reco
    r = _flat_record(record)
    n = r["counts"].size
    pid_signed = r["id"]
    pid = np.abs(pid_signed)
    evt = r["evt"]
    px, py, pz, en = r["px"], r["py"], r["pz"], r["e"]
    pt, eta, phi = _kin(px, py, pz)
    abseta = np.abs(eta)
    final = r["status"] > 0
    invisible = np.isin(pid, s.invisible_ids)
    visible = final & ~invisible & (abseta < s.calo_eta_max)
    vis_idx = np.flatnonzero(visible)  # sorted by event

    # ---- photons: smear, accept, identify, isolate
    g = np.flatnonzero(final & (pid == 22))
    g_scale = _smear_factor(rng, _em_resolution(en[g], s))
    g_pt = pt[g] * g_scale
    g_eta = abseta[g]
    acc = (g_pt > s.photon_pt_min) & (g_eta < s.photon_eta_max)
    if s.photon_crack:
        acc &= ~((g_eta >= s.photon_crack[0]) & (g_eta <= s.photon_crack[1]))
    g, g_pt, g_scale, g_eta = g[acc], g_pt[acc], g_scale[acc], g_eta[acc]
    boundary = s.photon_crack[0] if s.photon_crack else 1.37
    eff = np.where(g_eta < boundary, s.photon_efficiency_barrel, s.photon_efficiency_endcap)
    keep = rng.random(g.size) < eff
    g, g_pt, g_scale = g[keep], g_pt[keep], g_scale[keep]
    iso = _cone_sum(g, evt, pt, eta, phi, vis_idx, s.isolation_cone, n)
    keep = iso < s.photon_isolation * g_pt
    g, g_pt, g_scale = g[keep], g_pt[keep], g_scale[keep]

    # ---- diphoton candidate among the leading photons
    k = s.n_photon_candidates
    order, rank = _rank_in_event(evt[g], g_pt)
    top = order[rank < k]
    cand = np.full((n, k), -1, dtype=np.int64)  # index into g, leading first
    cand[evt[g][top], rank[rank < k]] = top
    best_m = np.full(n, np.nan)
    best = np.full((n, 2), -1, dtype=np.int64)
    best_dist = np.full(n, np.inf)
    g_e = en[g] * g_scale
    g_px, g_py, g_pz = px[g] * g_scale, py[g] * g_scale, pz[g] * g_scale
    for i in range(k):
        for j in range(i + 1, k):
            a, b = cand[:, i], cand[:, j]
            ok = (a >= 0) & (b >= 0)
            aa, bb = a[ok], b[ok]
            m2 = (g_e[aa] + g_e[bb]) ** 2 - (
                (g_px[aa] + g_px[bb]) ** 2 + (g_py[aa] + g_py[bb]) ** 2 + (g_pz[aa] + g_pz[bb]) ** 2
            )
            m = np.sqrt(np.maximum(m2, 0.0))
            dist = np.full(n, np.inf)
            dist[ok] = np.abs(m - s.higgs_mass)
            better = dist < best_dist
            best_dist = np.where(better, dist, best_dist)
            mm = np.full(n, np.nan)
            mm[ok] = m
            best_m = np.where(better, mm, best_m)
            best[better, 0] = a[better]
            best[better, 1] = b[better]
    has = best[:, 0] >= 0
    lead = np.full(n, -1, dtype=np.int64)
    sub = np.full(n, -1, dtype=np.int64)
    lead[has] = np.where(g_pt[best[has, 0]] >= g_pt[best[has, 1]], best[has, 0], best[has, 1])
    sub[has] = np.where(g_pt[best[has, 0]] >= g_pt[best[has, 1]], best[has, 1], best[has, 0])
    lead_pt = np.where(has, g_pt[np.maximum(lead, 0)] if g.size else 0.0, 0.0)
    sub_pt = np.where(has, g_pt[np.maximum(sub, 0)] if g.size else 0.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        passed = (
            has
            & (lead_pt > s.leading_pt_min)
            & (sub_pt > s.subleading_pt_min)
            & (lead_pt > s.leading_pt_over_m * best_m)
            & (sub_pt > s.subleading_pt_over_m * best_m)
            & (best_m > s.m_gg_min)
            & (best_m < s.m_gg_max)
        )
    selected = np.flatnonzero(passed)
    m_sel = selected.size
    out = np.zeros((m_sel, DIPHOTON.n_objects, DIPHOTON.n_features), dtype=np.float64)
    ef = np.zeros((m_sel, DIPHOTON.n_event_features), dtype=np.float64)
    if m_sel == 0:
        return out.astype(np.float32), ef.astype(np.float32), selected
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[selected] = np.arange(m_sel)
    in_sel = passed[evt]

    pair = np.concatenate([lead[selected], sub[selected]])
    photon_idx = g[pair]
    _fill_group(
        out,
        "photon",
        new_index[evt[photon_idx]],
        {"pt": g_pt[pair], "eta": eta[photon_idx], "phi": phi[photon_idx]},
    )
    ef[:, DIPHOTON.event_feature_index("m_gg")] = best_m[selected]

    # ---- leptons of the selected events
    lep_used = []
    for code, group in ((11, "electron"), (13, "muon")):
        li = np.flatnonzero(final & (pid == code) & in_sel)
        if code == 11:
            rel = _em_resolution(en[li], s)
            pt_min, eta_max, eff_l = s.electron_pt_min, s.electron_eta_max, s.electron_efficiency
        else:
            rel = s.muon_res_const + s.muon_res_linear * pt[li]
            pt_min, eta_max, eff_l = s.muon_pt_min, s.muon_eta_max, s.muon_efficiency
        l_pt = pt[li] * _smear_factor(rng, rel)
        acc = (l_pt > pt_min) & (abseta[li] < eta_max)
        li, l_pt = li[acc], l_pt[acc]
        keep = rng.random(li.size) < eff_l
        li, l_pt = li[keep], l_pt[keep]
        iso = _cone_sum(li, evt, pt, eta, phi, vis_idx, s.isolation_cone, n)
        keep = iso < s.lepton_isolation * l_pt
        li, l_pt = li[keep], l_pt[keep]
        lep_used.append(li)
        _fill_group(out, group, new_index[evt[li]], {"pt": l_pt, "eta": eta[li], "phi": phi[li]})

    # ---- jets: the other visible particles of the selected events
    removed = np.zeros(pid.size, dtype=bool)
    removed[photon_idx] = True
    for li in lep_used:
        removed[li] = True
    jet_in = np.flatnonzero(visible & ~removed & in_sel)
    hadrons = _flavour_hadrons(pid, pt, new_index[evt], s)
    hadrons["eta"], hadrons["phi"] = eta, phi
    n_jets = np.zeros(m_sel)
    ht = np.zeros(m_sel)
    for group, radius, pt_min, eta_max, match_dr in (
        ("jet", s.jet_radius, s.jet_pt_min, s.jet_eta_max, s.btag_match_dr),
        (
            "large_r_jet",
            s.large_r_jet_radius,
            s.large_r_jet_pt_min,
            s.large_r_jet_eta_max,
            s.large_r_jet_radius,
        ),
    ):
        jets = _cluster(jet_in, evt, new_index, px, py, pz, en, m_sel, radius, s)
        scale = _smear_factor(
            rng, s.jet_res_const + s.jet_res_stochastic / np.sqrt(np.maximum(jets["pt"], 1e-3))
        )
        j_pt = jets["pt"] * scale
        j_mass = jets["mass"] * scale
        acc = (j_pt > pt_min) & (np.abs(jets["eta"]) < eta_max)
        j_evt = jets["evt"][acc]
        if group == "jet":
            n_jets = np.bincount(j_evt, minlength=m_sel).astype(np.float64)
            ht = np.bincount(j_evt, weights=j_pt[acc], minlength=m_sel)
        btag = _btag(j_evt, jets["eta"][acc], jets["phi"][acc], hadrons, m_sel, match_dr, rng, s)
        kept, rows, cols = _fill_group(
            out,
            group,
            j_evt,
            {
                "pt": j_pt[acc],
                "eta": jets["eta"][acc],
                "phi": jets["phi"][acc],
                "mass": j_mass[acc],
                "btag": btag,
            },
        )
        tau21, tau32 = _nsubjettiness(jets, np.flatnonzero(acc)[kept], px, py, pz, en, radius)
        out[rows, cols, DIPHOTON.feature_index("tau21")] = tau21
        out[rows, cols, DIPHOTON.feature_index("tau32")] = tau32
    ef[:, DIPHOTON.event_feature_index("n_jets")] = n_jets
    ef[:, DIPHOTON.event_feature_index("ht")] = ht

    # ---- MET: invisible particles and visible ones beyond the calorimeter, plus noise
    lost = np.flatnonzero(final & ~visible & in_sel)
    met_x = np.bincount(new_index[evt[lost]], weights=px[lost], minlength=m_sel)
    met_y = np.bincount(new_index[evt[lost]], weights=py[lost], minlength=m_sel)
    vis_sel = vis_idx[in_sel[vis_idx]]
    sum_et = np.bincount(new_index[evt[vis_sel]], weights=pt[vis_sel], minlength=m_sel)
    noise = rng.standard_normal((m_sel, 2)) * (s.met_resolution * np.sqrt(sum_et))[:, None]
    met_x = met_x + noise[:, 0]
    met_y = met_y + noise[:, 1]
    met = DIPHOTON.group_slots("MET").start
    out[:, met, DIPHOTON.feature_index("pt")] = np.hypot(met_x, met_y)
    out[:, met, DIPHOTON.feature_index("phi")] = wrap_phi(np.arctan2(met_y, met_x))

    # keep phi inside [-pi, pi) after the float32 cast (float32(pi) > pi)
    phi_col = DIPHOTON.feature_index("phi")
    phi_max = float(np.nextafter(np.float32(np.pi), np.float32(0.0)))
    np.clip(out[..., phi_col], -phi_max, phi_max, out=out[..., phi_col])
    particles = out.astype(np.float32)
    DIPHOTON.fill_one_hot(particles)
    return particles, ef.astype(np.float32), selected


def _flavour_hadrons(
    pid: np.ndarray, pt: np.ndarray, sel_evt: np.ndarray, s: DiphotonReco
) -> dict[str, np.ndarray]:
    """Weakly decaying b and c hadrons above ``hadron_pt_min`` in the selected events:
    particle indices (sorted by event) per flavour ``"b"``, ``"c"``, and ``"evt"`` (the
    selected-event index of every particle, -1 elsewhere)."""
    hard = (pt > s.hadron_pt_min) & (sel_evt >= 0)
    return {
        "b": np.flatnonzero(hard & np.isin(pid, B_HADRONS_WEAK)),
        "c": np.flatnonzero(hard & np.isin(pid, C_HADRONS_WEAK)),
        "evt": sel_evt,
    }


def _cluster(
    jet_in: np.ndarray,
    evt: np.ndarray,
    new_index: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    en: np.ndarray,
    n_sel: int,
    radius: float,
    s: DiphotonReco,
) -> dict[str, np.ndarray]:
    """Anti-kt jets of the particles ``jet_in`` per selected event, with their constituents."""
    import awkward as ak
    import fastjet

    from .reconstruction import _quiet_fastjet

    _quiet_fastjet()
    counts = np.bincount(new_index[evt[jet_in]], minlength=n_sel)
    if jet_in.size == 0:
        empty = np.zeros(0)
        return {
            "evt": np.zeros(0, dtype=np.int64),
            "pt": empty,
            "eta": empty,
            "phi": empty,
            "mass": empty,
            "n_const": np.zeros(0, dtype=np.int64),
            "const": np.zeros(0, dtype=np.int64),
        }
    inputs = ak.unflatten(
        ak.zip({"px": px[jet_in], "py": py[jet_in], "pz": pz[jet_in], "E": en[jet_in]}), counts
    )
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    cs = fastjet.ClusterSequence(inputs, jet_def)
    jets = cs.inclusive_jets(min_pt=s.jet_cluster_pt_min)
    index = cs.constituent_index(min_pt=s.jet_cluster_pt_min)
    per_event = ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)
    j_evt = np.repeat(np.arange(n_sel), per_event)
    jflat = ak.flatten(jets, axis=1)
    jx, jy, jz, je = (
        np.asarray(ak.to_numpy(jflat[f]), dtype=np.float64) for f in ("px", "py", "pz", "E")
    )
    j_pt, j_eta, j_phi = _kin(jx, jy, jz)
    mass = np.sqrt(np.maximum(je**2 - jx**2 - jy**2 - jz**2, 0.0))
    n_const = ak.to_numpy(ak.flatten(ak.num(index, axis=2))).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    local = ak.to_numpy(ak.flatten(index, axis=None)).astype(np.int64)
    const = jet_in[np.repeat(start[j_evt], n_const) + local]
    return {
        "evt": j_evt,
        "pt": j_pt,
        "eta": j_eta,
        "phi": j_phi,
        "mass": mass,
        "n_const": n_const,
        "const": const,  # particle indices, jet after jet
    }


def _btag(
    j_evt: np.ndarray,
    j_eta: np.ndarray,
    j_phi: np.ndarray,
    hadrons: dict[str, np.ndarray],
    n_sel: int,
    match_dr: float,
    rng: np.random.Generator,
    s: DiphotonReco,
) -> np.ndarray:
    """0/1 b-tags of jets from their truth flavour and the efficiency model."""
    flavour = np.zeros(j_evt.size, dtype=np.int64)  # 0 light, 1 c, 2 b
    for code, which in ((1, "c"), (2, "b")):
        h = hadrons[which]
        a, b = _pairs(j_evt, hadrons["evt"][h], n_sel)
        hb = h[b]
        near = (
            _delta_r2(j_eta[a], j_phi[a], hadrons["eta"][hb], hadrons["phi"][hb])
            < match_dr * match_dr
        )
        flavour[np.unique(a[near])] = code
    prob = np.array([s.btag_eff_light, s.btag_eff_c, s.btag_eff_b])[flavour]
    prob = np.where(np.abs(j_eta) < s.btag_eta_max, prob, 0.0)
    return (rng.random(j_evt.size) < prob).astype(np.float64)


def _nsubjettiness(
    jets: dict[str, np.ndarray],
    which: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    en: np.ndarray,
    radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """tau21 and tau32 of the jets ``which`` (normalised N-subjettiness, beta 1, R0 = radius)."""
    if which.size == 0:
        return np.zeros(0), np.zeros(0)
    import awkward as ak
    import fastjet

    n_const = jets["n_const"]
    start = np.concatenate([[0], np.cumsum(n_const)[:-1]])
    sizes = n_const[which]
    first = np.repeat(start[which], sizes)
    offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    idx = jets["const"][first + offsets]
    inputs = ak.unflatten(
        ak.zip({"px": px[idx], "py": py[idx], "pz": pz[idx], "E": en[idx]}), sizes
    )
    cs = fastjet.ClusterSequence(inputs, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
    tau = np.asarray(ak.to_numpy(cs.njettiness(njets=[1, 2, 3], R0=radius)), dtype=np.float64)
    tau = tau.reshape(which.size, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau21 = np.where(tau[:, 0] > 0, tau[:, 1] / tau[:, 0], 0.0)
        tau32 = np.where(tau[:, 1] > 0, tau[:, 2] / tau[:, 1], 0.0)
    return np.nan_to_num(tau21), np.nan_to_num(tau32)


def reconstruct_diphoton(
    raw: Any, rng: np.random.Generator, reco: DiphotonReco, spec: ProcessSpec | None
) -> Reconstructed:
    """The :data:`DIPHOTON_DATASET` reconstruction of a ``Pythia.nextBatch`` array.

    Applies the process's :class:`DecayFilter` (if any), then
    :func:`reconstruct_record` on the events that pass.
    """
    decay_filter = getattr(spec, "decay_filter", None)
    if decay_filter is not None:
        keep = decay_filter_mask(raw, decay_filter)
        raw = raw[keep]
    n_accepted = len(raw)
    if n_accepted == 0:
        empty = np.zeros((0, DIPHOTON.n_objects, DIPHOTON.n_features), dtype=np.float32)
        return Reconstructed(empty, np.zeros((0, DIPHOTON.n_event_features), np.float32), 0)
    particles, features, _ = reconstruct_record(event_record(raw), rng, reco)
    return Reconstructed(particles, features, n_accepted)


# ---------------------------------------------------------------- cross sections and weights
def _summarize(progress: dict[str, Any], processes: dict[str, Any]) -> dict[str, Any]:
    """Cross sections per process from the file's progress (metadata entries)."""
    sigma: dict[str, float | None] = {}
    selected: dict[str, float | None] = {}
    groups: dict[str, str] = {}
    for name, st in progress.items():
        info = processes.get(name, {})
        groups[name] = info.get("group", name)
        if not st["generated"]:
            sigma[name] = selected[name] = None
            continue
        sigma_gen = st["sigma_sum_pb"] / st["generated"]
        accepted = st.get("accepted", st["generated"])
        value = sigma_gen * accepted / st["generated"] * float(info.get("branching", 1.0))
        sigma[name] = value
        selected[name] = 1e3 * value * (st["passed"] / accepted if accepted else 0.0)
    return {
        "process_groups": groups,
        "cross_section_pb": sigma,
        "selected_cross_section_fb": selected,
    }


def event_weights(events: Events, luminosity_fb: float) -> np.ndarray:
    """Expected number of events each event stands for at an integrated luminosity.

    ``weight = selected_cross_section_fb[process] x luminosity / n_kept[process]``,
    from the metadata of a file of :func:`generate_diphoton` (``read_events(path)``):
    the sum of the weights of a process is its expected yield after the selection.
    Subsets of the file keep the weights of the whole file (draw pseudo-data with
    probabilities proportional to them).

    Parameters
    ----------
    events : Events
        Events read from a diphoton file (with its metadata).
    luminosity_fb : float
        Integrated luminosity in fb^-1, > 0.

    Returns
    -------
    ndarray of float64, shape (N,)

    Raises
    ------
    ValueError
        If the metadata lacks the cross sections, or an event's process has none.
    """
    if not isinstance(events, Events):
        raise TypeError(f"events must be Events; got {type(events).__name__}")
    if isinstance(luminosity_fb, bool) or not isinstance(luminosity_fb, (int, float)):
        raise TypeError(f"luminosity_fb must be a number; got {luminosity_fb!r}")
    if not (math.isfinite(luminosity_fb) and luminosity_fb > 0):
        raise ValueError(f"luminosity_fb must be finite and > 0; got {luminosity_fb}")
    md = events.metadata
    xs, kept = md.get("selected_cross_section_fb"), md.get("n_kept")
    if not isinstance(xs, Mapping) or not isinstance(kept, Mapping):
        raise ValueError(
            "events carry no selected_cross_section_fb / n_kept metadata: read them from a "
            "file written by generate_diphoton (contrastx-generate --dataset diphoton)"
        )
    per_label = np.zeros(len(events.process_names) + 1)
    for label in np.unique(events.labels):
        if label < 0:
            raise ValueError("events with unknown labels (-1) have no weight")
        name = events.process_names[label]
        if xs.get(name) is None or not kept.get(name):
            raise ValueError(f"the metadata has no cross section for process {name!r}")
        per_label[label] = xs[name] * luminosity_fb / kept[name]
    return per_label[events.labels]


def group_labels(events: Events) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels by process group (every mass point of a model shares one), and the group names.

    Backgrounds keep their labels 0-4; signal groups follow in registry order.
    """
    if not isinstance(events, Events):
        raise TypeError(f"events must be Events; got {type(events).__name__}")
    stored = events.metadata.get("process_groups") or {}
    groups = []
    for name in events.process_names:
        spec = DIPHOTON_PROCESSES.get(name)
        groups.append(stored.get(name) or (spec.group if spec is not None else name))
    names = tuple(dict.fromkeys([*DIPHOTON_GROUPS, *groups]))
    names = tuple(g for g in names if g in groups)
    lut = np.array([names.index(g) for g in groups] + [-1], dtype=np.int64)
    return lut[events.labels], names


# ---------------------------------------------------------------- the dataset
DIPHOTON_DATASET = PythiaDataset(
    name="diphoton",
    generator=DIPHOTON_GENERATOR_NAME,
    version=DIPHOTON_GENERATOR_VERSION,
    layout=DIPHOTON,
    registry=DIPHOTON_PROCESSES,
    builtin=_BUILTIN,
    reco_type=DiphotonReco,
    reconstruct=reconstruct_diphoton,
    selection="the diphoton selection",
    summarize=_summarize,
)
"""The diphoton processes, reconstruction and layout, for
:func:`~contrastx.events.generators.pythia.generate_pythia`."""


@options(section="diphoton")
class DiphotonOptions:
    """What a diphoton benchmark sample contains (``contrastx-generate --dataset diphoton``)."""

    n_continuum: int = option(50_000, "Selected events of the gamma gamma continuum.", ge=0)
    n_higgs: int = option(
        10_000, "Selected events of each SM Higgs mode (ggF, VBF, VH, ttH).", ge=0
    )
    n_signal: int = option(10_000, "Selected events of each BSM signal mass point.", ge=0)
    signal_groups: tuple[str, ...] = option(
        (),
        "BSM signal groups or single mass points to generate, comma-separated ('none': the "
        "backgrounds only; the default () means every signal).",
    )

    def _check(self) -> None:
        if self.signal_groups and self.signal_groups != ("none",):
            try:
                names = resolve_processes(self.signal_groups)
            except ValueError as err:
                raise OptionsError(f"{key_name(self, 'signal_groups')}: {err}") from None
            bad = [p for p in names if p in BACKGROUND_PROCESSES]
            if bad:
                raise OptionsError(
                    f"{key_name(self, 'signal_groups')} lists the backgrounds {bad}; their "
                    "counts are n_continuum and n_higgs"
                )

    def counts(self) -> dict[str, int]:
        """Selected events per process."""
        if self.signal_groups == ("none",):
            return diphoton_counts(self.n_continuum, self.n_higgs, 0, signals=())
        return diphoton_counts(
            self.n_continuum, self.n_higgs, self.n_signal, signals=self.signal_groups or None
        )


def generate_diphoton(
    path: str | os.PathLike,
    counts: Mapping[str, int] | None = None,
    *,
    seed: int = 0,
    mpi: bool = True,
    workers: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    reco: DiphotonReco | None = None,
    extra_settings: Sequence[str] = (),
    progress: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    extra_metadata: Mapping[str, Any] | None = None,
    executor: Any = None,
) -> Path:
    """Generate selected diphoton events per process into a contrastx HDF5 file.

    :func:`~contrastx.events.generators.pythia.generate_pythia` with
    :data:`DIPHOTON_DATASET`: the same arguments, seeding, resumption and worker
    processes. The file's metadata adds ``process_groups``, ``cross_section_pb`` and
    ``selected_cross_section_fb`` per process (see :func:`event_weights`).

    Parameters
    ----------
    path : str or PathLike
        Output file (layout ``diphoton``).
    counts : mapping of str to int, optional
        Selected events per process (:data:`DIPHOTON_PROCESSES`); default the benchmark
        sample :func:`diphoton_counts` (50k continuum, 10k per SM Higgs mode and per
        signal mass point).
    seed, mpi, workers, batch_size, extra_settings, progress, resume, overwrite, extra_metadata
        As in :func:`~contrastx.events.generators.pythia.generate_pythia`.
    executor : contrastx.distributed.ExecutorOptions, optional
        Where the batches run (local processes, Dask), as in
        :func:`~contrastx.events.generators.pythia.generate_pythia`.
    reco : DiphotonReco, optional
        The detector model (default :class:`DiphotonReco()`).

    Returns
    -------
    Path
    """
    return generate_pythia(
        path,
        diphoton_counts() if counts is None else counts,
        seed=seed,
        mpi=mpi,
        workers=workers,
        batch_size=batch_size,
        reco=reco,
        extra_settings=extra_settings,
        progress=progress,
        resume=resume,
        overwrite=overwrite,
        extra_metadata=extra_metadata,
        dataset=DIPHOTON_DATASET,
        executor=executor,
    )
