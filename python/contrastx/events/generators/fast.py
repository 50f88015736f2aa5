"""Fast parametric event generator in the ADC2021 layout.

.. warning::

   This generator is an **approximation** for tests, examples and quick runs.
   It mimics the ADC2021 layout, selection and the gross kinematics of its
   processes with a handful of parametric distributions; it is not a Monte Carlo
   event generator and has no detector simulation. Never use it as the only
   evidence for a physics claim: use the ADC2021 files or the Pythia-based
   generator for that.

What it does, per batch of events and fully vectorised in numpy (Python loops
run only over processes and over small fixed object counts):

* **Hard process** (13 TeV pp). Resonances get a mass from a truncated
  Breit-Wigner (W 80.4 / 2.1 GeV, Z 91.19 / 2.5 GeV, top 172.5 / 1.4 GeV;
  the BSM states are narrow), a rapidity from a broad Gaussian and a transverse
  momentum that balances the initial-state radiation (below). Pair production
  draws the pair mass as ``threshold * (1 + Gamma)``. Two-body decays are
  isotropic in the parent's rest frame and boosted to the lab.
* **Initial-state radiation.** A Poisson number of partons per event (mean per
  process) with a power-law pT spectrum above 12 GeV and a broad rapidity; the
  hard system recoils against their vector sum plus a Gaussian intrinsic kT.
* **Taus** decay leptonically (17.8 % e, 17.4 % mu) with the lepton's energy
  fraction drawn from the unpolarised V-A spectrum, or hadronically into a
  tau-jet (pi, rho, a1-like visible fractions); collinear approximation, the
  rest goes to neutrinos.
* **Processes** (labels as in :data:`contrastx.events.layout.PROCESSES`):

  - ``W``: W -> e nu, mu nu, tau nu (equal rates).
  - ``QCD``: b bbar dijets (pT-hat > 30 GeV, pT-hat^-5 spectrum) with both b
    quarks decaying semileptonically to e or mu (as in the Pythia recipe that
    forces semileptonic b hadrons): soft, non-isolated leptons inside the
    b-jets plus neutrinos. Most events fail the lepton selection.
  - ``Z``: Z/gamma* -> ee, mumu, tautau; 10 % of events from a 1/m^3
    gamma* continuum between 40 and 80 GeV.
  - ``ttbar``: t -> b W, each W -> q q' (67.6 %) or l nu.
  - ``Ato4l``: A (50 GeV, gluon fusion) -> Z* Z* -> 4l (e or mu per Z*), the
    off-shell masses drawn from the H -> V* V* matrix element with Z
    propagators, ``m1 + m2 < 50``, ``m > 1 GeV``.
  - ``LQ_btau``: **pair-produced** leptoquarks (80 GeV), each -> b tau.
  - ``h0_tautau``: h0 (60 GeV, gluon fusion) -> tau tau.
  - ``hch_taunu``: **pair-produced** h+ h- (60 GeV, Drell-Yan-like), each ->
    tau nu.

* **Detector.** Gaussian relative pT resolution (electrons 2 % + 0.1/sqrt(pT),
  muons 1 % + 1e-4 pT, jets 5 % + 1/sqrt(pT), added linearly), acceptance
  electrons pT > 3, |eta| < 3; muons pT > 3, |eta| < 2.1; jets pT > 15,
  |eta| < 4; no isolation, no jet clustering or overlap removal (each quark,
  gluon or tau-jet is one jet); MET = vector sum of neutrinos and of objects
  beyond |eta| = 4.9, plus Gaussian noise of 0.5 sqrt(sum ET) per component,
  where sum ET adds a soft term to the visible objects. No pileup.
* **Selection.** At least one electron or muon with pT > 23 GeV; batches of
  equal size, each with its own random stream, are generated and filtered in
  order until exactly the requested number pass.

Known simplifications: no spin correlations or V-A decay angles (all decays
isotropic), no final-state radiation or hadronisation, no jet merging of close
partons, no b-hadron decays in ttbar / LQ events, no fake leptons, a single
Gaussian rapidity per process.

Examples
--------
>>> from contrastx.events.generators import generate_sample, mixture_counts
>>> from contrastx.events.layout import ADC2021_MIXTURE
>>> ev = generate_sample(mixture_counts(1000, ADC2021_MIXTURE), seed=1)
>>> len(ev)
1000
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import math
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from functools import lru_cache

import numpy as np

from ..container import Events
from ..kinematics import four_vector, pt_eta_phi, two_body_decay, wrap_phi
from ..layout import (
    ELECTRON_SLOTS,
    JET_SLOTS,
    LEPTON_TRIGGER_PT,
    MET_SLOT,
    MUON_SLOTS,
    N_FEATURES,
    N_OBJECTS,
    PROCESS_LABELS,
    PROCESSES,
)
from ..splits import largest_remainder_counts

__all__ = [
    "FAST_GENERATOR_VERSION",
    "generate_process",
    "generate_sample",
    "mixture_counts",
]

FAST_GENERATOR_VERSION = "0.2.0"
"""Version of the fast generator's output; bumped whenever the events for a seed change.

0.2.0: every batch draws from its own stream (seed, process label, batch index)
instead of one stream per process, so that the batches of one process can be
generated in parallel; batches of at most 10_000 events by default (was 200_000).
Same physics model as 0.1.0.
"""

GENERATOR_NAME = "contrastx.fast"

# ---------------------------------------------------------------- physics constants
M_W, GAMMA_W, W_WINDOW = 80.4, 2.1, (50.0, 110.0)
M_Z, GAMMA_Z, Z_WINDOW = 91.19, 2.5, (60.0, 120.0)
M_TOP, GAMMA_TOP, TOP_WINDOW = 172.5, 1.4, (160.0, 185.0)
M_TAU = 1.777
M_B = 4.8
M_B_HADRON = 5.3
M_A, M_LQ, M_H0, M_HCH = 50.0, 80.0, 60.0, 60.0

W_HADRONIC_BR = 0.676
TAU_BR_E, TAU_BR_MU = 0.178, 0.174
# Hadronic tau modes (share of hadronic decays) and the lower edge of their
# visible energy fraction (m_vis^2 / m_tau^2): pi, rho, a1 and heavier.
TAU_HAD_MODES = ((0.17, 0.0), (0.39, 0.19), (0.44, 0.45))
GAMMA_STAR_FRACTION, GAMMA_STAR_RANGE = 0.10, (40.0, 80.0)

QCD_PTHAT_MIN, QCD_PTHAT_POWER = 30.0, 5.0
B_FRAGMENTATION_BETA = (7.0, 2.5)

ISR_PT_MIN, ISR_PT_MAX, ISR_PT_POWER = 12.0, 1000.0, 4.0
ISR_ETA_SIGMA = 1.8
ISR_MAX = 8
KT_SIGMA = 3.0
ISR_RATE = {
    "W": 1.0,
    "QCD": 1.0,
    "Z": 1.0,
    "ttbar": 1.8,
    "Ato4l": 1.8,
    "LQ_btau": 1.8,
    "h0_tautau": 1.8,
    "hch_taunu": 1.0,
}
"""Mean number of ISR partons per event."""

# ---------------------------------------------------------------- detector constants
ELECTRON_PT_MIN, ELECTRON_ETA_MAX = 3.0, 3.0
MUON_PT_MIN, MUON_ETA_MAX = 3.0, 2.1
JET_PT_MIN, JET_ETA_MAX = 15.0, 4.0
CALO_ETA_MAX = 4.9
MET_RESOLUTION = 0.5
SOFT_SUMET_GAMMA = (2.0, 20.0)

_E, _MU, _TAU = 0, 1, 2
_MIN_BATCH = 1000
_SHUFFLE_KEY = 1_000_003
"""SeedSequence spawn key of the shuffle stream (process streams use their label)."""


def electron_resolution(pt: np.ndarray) -> np.ndarray:
    """Relative electron pT resolution: 2 % + 0.1 / sqrt(pT)."""
    return 0.02 + 0.1 / np.sqrt(pt)


def muon_resolution(pt: np.ndarray) -> np.ndarray:
    """Relative muon pT resolution: 1 % + 1e-4 pT."""
    return 0.01 + 1e-4 * pt


def jet_resolution(pt: np.ndarray) -> np.ndarray:
    """Relative jet pT resolution: 5 % + 1 / sqrt(pT)."""
    return 0.05 + 1.0 / np.sqrt(pt)


# ---------------------------------------------------------------- truth-level objects
class _Objects:
    """Truth-level objects of a batch: lists of ``(p4 (n, 4), present (n,))`` per kind."""

    __slots__ = ("electrons", "invisible", "jets", "muons", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self.electrons: list[tuple[np.ndarray, np.ndarray]] = []
        self.muons: list[tuple[np.ndarray, np.ndarray]] = []
        self.jets: list[tuple[np.ndarray, np.ndarray]] = []
        self.invisible: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, group: list[tuple[np.ndarray, np.ndarray]], p4: np.ndarray, present=None) -> None:
        group.append((p4, np.ones(self.n, dtype=bool) if present is None else present))


def _phi(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(-np.pi, np.pi, n)


def _decay(rng: np.random.Generator, parent: np.ndarray, m1, m2) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic two-body decay in the parent's rest frame."""
    n = parent.shape[0]
    return two_body_decay(parent, m1, m2, rng.uniform(-1.0, 1.0, n), _phi(rng, n))


def _breit_wigner(
    rng: np.random.Generator, n: int, m0: float, width: float, window: tuple[float, float]
) -> np.ndarray:
    """Non-relativistic Breit-Wigner (Cauchy) truncated to ``window``, by inverse CDF."""
    half = 0.5 * width
    lo, hi = (0.5 + np.arctan((np.asarray(window) - m0) / half) / np.pi).tolist()
    u = lo + (hi - lo) * rng.random(n)
    return m0 + half * np.tan(np.pi * (u - 0.5))


def _power_law(rng: np.random.Generator, n: int, x_min: float, power: float) -> np.ndarray:
    """Samples of a density proportional to ``x^-power`` above ``x_min`` (power > 1)."""
    return x_min * (1.0 - rng.random(n)) ** (-1.0 / (power - 1.0))


def _system(mass: np.ndarray, recoil: np.ndarray, rapidity: np.ndarray) -> np.ndarray:
    """Four-vector of a system with given mass, transverse momentum and rapidity."""
    mt = np.sqrt(mass**2 + recoil[:, 0] ** 2 + recoil[:, 1] ** 2)
    return np.stack(
        [mt * np.cosh(rapidity), recoil[:, 0], recoil[:, 1], mt * np.sinh(rapidity)], axis=-1
    )


def _isr(objs: _Objects, rng: np.random.Generator, rate: float) -> np.ndarray:
    """Add ISR partons as jets; return the (n, 2) transverse recoil of the hard system."""
    n = objs.n
    count = np.minimum(rng.poisson(rate, n), ISR_MAX)
    recoil = rng.normal(0.0, KT_SIGMA, (n, 2))
    for i in range(int(count.max()) if n else 0):
        present = count > i
        pt = np.minimum(_power_law(rng, n, ISR_PT_MIN, ISR_PT_POWER), ISR_PT_MAX)
        eta = rng.normal(0.0, ISR_ETA_SIGMA, n)
        phi = _phi(rng, n)
        # Every event draws (the stream does not depend on the count); only the
        # partons that exist are built (an absent one is a zero vector, never read).
        rows = np.flatnonzero(present)
        p4 = np.zeros((n, 4))
        p4[rows] = four_vector(pt[rows], eta[rows], phi[rows])
        objs.add(objs.jets, p4, present)
        recoil[rows] -= p4[rows, 1:3]
    return recoil


@lru_cache(maxsize=1)
def _lepton_fraction_table() -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 1.0, 2049)
    cdf = (5.0 * x - 3.0 * x**3 + x**4) / 3.0  # integral of (5 - 9x^2 + 4x^3) / 3
    return cdf, x


def _lepton_fraction(rng: np.random.Generator, n: int) -> np.ndarray:
    """Energy fraction of the charged lepton in an unpolarised V-A three-body decay."""
    cdf, x = _lepton_fraction_table()
    return np.interp(rng.random(n), cdf, x)


def _add_tau(objs: _Objects, rng: np.random.Generator, tau: np.ndarray, present) -> None:
    """Decay taus (collinear approximation): lepton or tau-jet plus neutrinos."""
    n = objs.n
    u = rng.random(n)
    to_e = u < TAU_BR_E
    to_mu = (u >= TAU_BR_E) & (u < TAU_BR_E + TAU_BR_MU)
    hadronic = ~(to_e | to_mu)
    shares, x_min = np.array(TAU_HAD_MODES).T
    mode = np.minimum(
        np.searchsorted(np.cumsum(shares), rng.random(n), side="right"), len(shares) - 1
    )
    lo = x_min[mode]
    x_had = lo + (1.0 - lo) * rng.random(n)
    x = np.where(hadronic, x_had, _lepton_fraction(rng, n))
    visible = x[:, None] * tau
    objs.add(objs.electrons, visible, present & to_e)
    objs.add(objs.muons, visible, present & to_mu)
    objs.add(objs.jets, visible, present & hadronic)
    objs.add(objs.invisible, tau - visible, present)


def _add_lepton(
    objs: _Objects, rng: np.random.Generator, p4: np.ndarray, flavour: np.ndarray, present=None
) -> None:
    """Add a charged lepton of per-event flavour (0 e, 1 mu, 2 tau)."""
    base = np.ones(objs.n, dtype=bool) if present is None else present
    objs.add(objs.electrons, p4, base & (flavour == _E))
    objs.add(objs.muons, p4, base & (flavour == _MU))
    is_tau = base & (flavour == _TAU)
    if is_tau.any():
        _add_tau(objs, rng, p4, is_tau)


def _add_lepton_pair(
    objs: _Objects, rng: np.random.Generator, parent: np.ndarray, flavour: np.ndarray, mass
) -> None:
    """Decay ``parent`` into two leptons of one flavour and ``mass`` and add both."""
    for lepton in _decay(rng, parent, mass, mass):
        _add_lepton(objs, rng, lepton, flavour)


def _lepton_mass(flavour: np.ndarray) -> np.ndarray:
    return np.where(flavour == _TAU, M_TAU, 0.0)


def _pair(
    rng: np.random.Generator,
    recoil: np.ndarray,
    m1,
    m2,
    excess: tuple[float, float],
    y_sigma: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Pair production: mass ``(m1 + m2) (1 + Gamma(excess))``, isotropic in its frame."""
    n = recoil.shape[0]
    threshold = np.broadcast_to(np.asarray(m1, dtype=np.float64) + m2, (n,))
    mhat = threshold * (1.0 + rng.gamma(excess[0], excess[1], n))
    system = _system(mhat, recoil, rng.normal(0.0, y_sigma, n))
    return _decay(rng, system, m1, m2)


def _b_semileptonic(objs: _Objects, rng: np.random.Generator, b: np.ndarray) -> None:
    """A b quark whose b hadron decays to (e or mu) + nu + hadrons inside the jet."""
    n = objs.n
    kin = pt_eta_phi(b)
    z = rng.beta(*B_FRAGMENTATION_BETA, n)
    u_lep = _lepton_fraction(rng, n)
    u_nu = rng.random(n) * (1.0 - u_lep)
    p_hadron = z * np.sqrt(np.sum(b[:, 1:] ** 2, axis=1))
    spread = np.clip(M_B_HADRON / np.maximum(p_hadron, 1e-3), 0.02, 0.5)
    lep = four_vector(
        z * u_lep * kin[:, 0],
        kin[:, 1] + spread * rng.standard_normal(n),
        kin[:, 2] + spread * rng.standard_normal(n),
    )
    nu = (z * u_nu)[:, None] * b
    flavour = rng.integers(0, 2, n)
    objs.add(objs.electrons, lep, flavour == _E)
    objs.add(objs.muons, lep, flavour == _MU)
    objs.add(objs.invisible, nu)
    objs.add(objs.jets, b - lep - nu)


@lru_cache(maxsize=4)
def _offshell_weight_max(big_m: float, m_min: float) -> float:
    g = np.linspace(m_min, big_m - m_min, 801)
    m1, m2 = np.meshgrid(g, g)
    ok = m1 + m2 < big_m
    return 1.05 * float(_offshell_weight(m1[ok], m2[ok], big_m).max())


def _offshell_weight(m1: np.ndarray, m2: np.ndarray, big_m: float) -> np.ndarray:
    """H -> V* V* density in (m1, m2) with Z propagators (Keung-Marciano form)."""
    x1, x2 = (m1 / big_m) ** 2, (m2 / big_m) ** 2
    lam = np.maximum((1.0 - x1 - x2) ** 2 - 4.0 * x1 * x2, 0.0)
    prop1 = (m1**2 - M_Z**2) ** 2 + (M_Z * GAMMA_Z) ** 2
    prop2 = (m2**2 - M_Z**2) ** 2 + (M_Z * GAMMA_Z) ** 2
    return m1 * m2 * np.sqrt(lam) * (lam + 12.0 * x1 * x2) / (prop1 * prop2) * M_Z**8


def _offshell_pair(
    rng: np.random.Generator, n: int, big_m: float, m_min: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Masses of two off-shell Z's from a scalar of mass ``big_m`` (rejection sampling)."""
    wmax = _offshell_weight_max(big_m, m_min)
    m1 = np.empty(n)
    m2 = np.empty(n)
    filled = 0
    while filled < n:
        k = 4 * (n - filled) + 16
        a = rng.uniform(m_min, big_m - m_min, k)
        b = rng.uniform(m_min, big_m - m_min, k)
        ok = a + b < big_m
        ok[ok] = rng.random(int(ok.sum())) * wmax < _offshell_weight(a[ok], b[ok], big_m)
        take = np.flatnonzero(ok)[: n - filled]
        m1[filled : filled + take.size] = a[take]
        m2[filled : filled + take.size] = b[take]
        filled += take.size
    return m1, m2


# ---------------------------------------------------------------- processes
def _gen_w(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["W"])
    m = _breit_wigner(rng, n, M_W, GAMMA_W, W_WINDOW)
    w = _system(m, recoil, rng.normal(0.0, 2.0, n))
    flavour = rng.integers(0, 3, n)
    lep, nu = _decay(rng, w, _lepton_mass(flavour), 0.0)
    _add_lepton(objs, rng, lep, flavour)
    objs.add(objs.invisible, nu)
    return objs


def _gen_z(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["Z"])
    lo, hi = GAMMA_STAR_RANGE
    # gamma* continuum with density ~ m^-3 between lo and hi, by inverse CDF
    continuum = (lo**-2 - rng.random(n) * (lo**-2 - hi**-2)) ** -0.5
    peak = _breit_wigner(rng, n, M_Z, GAMMA_Z, Z_WINDOW)
    m = np.where(rng.random(n) < GAMMA_STAR_FRACTION, continuum, peak)
    z = _system(m, recoil, rng.normal(0.0, 2.0, n))
    flavour = rng.integers(0, 3, n)
    _add_lepton_pair(objs, rng, z, flavour, _lepton_mass(flavour))
    return objs


def _gen_ttbar(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["ttbar"])
    mt1 = _breit_wigner(rng, n, M_TOP, GAMMA_TOP, TOP_WINDOW)
    mt2 = _breit_wigner(rng, n, M_TOP, GAMMA_TOP, TOP_WINDOW)
    for top in _pair(rng, recoil, mt1, mt2, (1.5, 0.3), 1.0):
        m_w = _breit_wigner(rng, n, M_W, GAMMA_W, W_WINDOW)
        b, w = _decay(rng, top, M_B, m_w)
        objs.add(objs.jets, b)
        hadronic = rng.random(n) < W_HADRONIC_BR
        flavour = rng.integers(0, 3, n)
        d1, d2 = _decay(rng, w, np.where(hadronic, 0.0, _lepton_mass(flavour)), 0.0)
        objs.add(objs.jets, d1, hadronic)
        objs.add(objs.jets, d2, hadronic)
        _add_lepton(objs, rng, d1, flavour, ~hadronic)
        objs.add(objs.invisible, d2, ~hadronic)
    return objs


def _gen_qcd(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["QCD"])
    pthat = _power_law(rng, n, QCD_PTHAT_MIN, QCD_PTHAT_POWER)
    ystar = rng.normal(0.0, 1.0, n)
    p_star = pthat * np.cosh(ystar)
    mhat = 2.0 * np.sqrt(p_star**2 + M_B**2)
    system = _system(mhat, recoil, rng.normal(0.0, 1.3, n))
    b1, b2 = two_body_decay(system, M_B, M_B, np.tanh(ystar), _phi(rng, n))
    _b_semileptonic(objs, rng, b1)
    _b_semileptonic(objs, rng, b2)
    return objs


def _gen_ato4l(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["Ato4l"])
    a = _system(np.full(n, M_A), recoil, rng.normal(0.0, 2.0, n))
    m1, m2 = _offshell_pair(rng, n, M_A)
    for z in _decay(rng, a, m1, m2):
        _add_lepton_pair(objs, rng, z, rng.integers(0, 2, n), 0.0)  # e or mu, massless
    return objs


def _gen_lq(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["LQ_btau"])
    for lq in _pair(rng, recoil, M_LQ, M_LQ, (1.5, 0.3), 1.4):
        b, tau = _decay(rng, lq, M_B, M_TAU)
        objs.add(objs.jets, b)
        _add_tau(objs, rng, tau, np.ones(n, dtype=bool))
    return objs


def _gen_h0(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["h0_tautau"])
    h = _system(np.full(n, M_H0), recoil, rng.normal(0.0, 2.0, n))
    for tau in _decay(rng, h, M_TAU, M_TAU):
        _add_tau(objs, rng, tau, np.ones(n, dtype=bool))
    return objs


def _gen_hch(rng: np.random.Generator, n: int) -> _Objects:
    objs = _Objects(n)
    recoil = _isr(objs, rng, ISR_RATE["hch_taunu"])
    for h in _pair(rng, recoil, M_HCH, M_HCH, (1.5, 0.35), 1.5):
        tau, nu = _decay(rng, h, M_TAU, 0.0)
        _add_tau(objs, rng, tau, np.ones(n, dtype=bool))
        objs.add(objs.invisible, nu)
    return objs


_PROCESS_MAKERS: dict[str, Callable[[np.random.Generator, int], _Objects]] = {
    "W": _gen_w,
    "QCD": _gen_qcd,
    "Z": _gen_z,
    "ttbar": _gen_ttbar,
    "Ato4l": _gen_ato4l,
    "LQ_btau": _gen_lq,
    "h0_tautau": _gen_h0,
    "hch_taunu": _gen_hch,
}

_PRIOR_EFFICIENCY = {
    "W": 0.43,
    "QCD": 0.137,
    "Z": 0.52,
    "ttbar": 0.33,
    "Ato4l": 0.23,
    "LQ_btau": 0.14,
    "h0_tautau": 0.034,
    "hch_taunu": 0.095,
}
"""Selection efficiencies (measured) that size the batches and the parallel work.

They set how many events a batch generates, so changing one changes the events of
that process for a given seed; they never decide which events are kept.
"""

assert set(_PROCESS_MAKERS) == set(PROCESSES)


# ---------------------------------------------------------------- detector
def _stack(
    group: list[tuple[np.ndarray, np.ndarray]], n: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(n, K, 4) four-vectors and (n, K) presence of one object kind."""
    if not group:
        return np.zeros((n, 0, 4)), np.zeros((n, 0), dtype=bool)
    if keep is None:
        return np.stack([g[0] for g in group], axis=1), np.stack([g[1] for g in group], axis=1)
    return (
        np.stack([g[0][keep] for g in group], axis=1),
        np.stack([g[1][keep] for g in group], axis=1),
    )


def _smear(
    rng: np.random.Generator,
    kin: np.ndarray,
    present: np.ndarray,
    resolution: Callable[[np.ndarray], np.ndarray],
    pt_min: float,
    eta_max: float,
) -> np.ndarray:
    """Smeared pT of accepted objects, 0 elsewhere."""
    pt = kin[..., 0]
    sigma = resolution(np.maximum(pt, 1e-3))
    reco = pt * (1.0 + sigma * rng.standard_normal(pt.shape))
    accepted = present & (reco > pt_min) & (np.abs(kin[..., 1]) < eta_max)
    return np.where(accepted, reco, 0.0)


def _kinematics(p4: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(n, K, 3) pT, eta, phi of the present objects; zero where absent (never read)."""
    rows = np.flatnonzero(present)  # (integer indexing of the flat rows is the fast path)
    kin = np.zeros((present.size, 3))
    kin[rows] = pt_eta_phi(p4.reshape(-1, 4)[rows])
    return kin.reshape(*present.shape, 3)


def _fill(out: np.ndarray, slots: slice, pt: np.ndarray, kin: np.ndarray) -> None:
    """Write the leading objects of a group, pT-ordered and zero-padded, into ``out``."""
    width = slots.stop - slots.start
    n, n_kinds = pt.shape
    order = np.argsort(-pt, axis=1, kind="stable")[:, :width]
    k = order.shape[1]
    # One gather of (pT, eta, phi) rows: row i's object order[i, j] is row i * K + order[i, j].
    flat = order + (np.arange(n) * n_kinds)[:, None]
    pt_s = pt.reshape(-1)[flat]
    filled = pt_s > 0
    dest = out[:, slots.start : slots.start + k]
    dest[..., 0] = pt_s
    dest[..., 1:] = np.where(filled[..., None], kin.reshape(-1, 3)[flat, 1:], 0.0)


def _reconstruct(objs: _Objects, rng: np.random.Generator) -> np.ndarray:
    """Detector response and lepton selection: (n_pass, 19, 3) float32 particles.

    Computed in float64; each value is rounded to float32 once, as it is stored.
    """
    n = objs.n
    e_p4, e_present = _stack(objs.electrons, n)
    mu_p4, mu_present = _stack(objs.muons, n)
    e_kin, mu_kin = _kinematics(e_p4, e_present), _kinematics(mu_p4, mu_present)
    e_pt = _smear(rng, e_kin, e_present, electron_resolution, ELECTRON_PT_MIN, ELECTRON_ETA_MAX)
    mu_pt = _smear(rng, mu_kin, mu_present, muon_resolution, MUON_PT_MIN, MUON_ETA_MAX)
    passed = (e_pt > LEPTON_TRIGGER_PT).any(axis=1) | (mu_pt > LEPTON_TRIGGER_PT).any(axis=1)
    keep = np.flatnonzero(passed)
    m = keep.size
    out = np.zeros((m, N_OBJECTS, N_FEATURES), dtype=np.float32)
    if m == 0:
        return out
    e_p4, e_present, e_kin, e_pt = e_p4[keep], e_present[keep], e_kin[keep], e_pt[keep]
    mu_p4, mu_present, mu_kin, mu_pt = mu_p4[keep], mu_present[keep], mu_kin[keep], mu_pt[keep]
    j_p4, j_present = _stack(objs.jets, m, keep)
    j_kin = _kinematics(j_p4, j_present)
    j_pt = _smear(rng, j_kin, j_present, jet_resolution, JET_PT_MIN, JET_ETA_MAX)
    nu_p4, nu_present = _stack(objs.invisible, m, keep)

    # MET: invisible particles plus visible ones escaping the calorimeter
    met = np.sum(np.where(nu_present[..., None], nu_p4[..., 1:3], 0.0), axis=1)
    sum_et = rng.gamma(*SOFT_SUMET_GAMMA, m)
    for p4, present, kin in (
        (e_p4, e_present, e_kin),
        (mu_p4, mu_present, mu_kin),
        (j_p4, j_present, j_kin),
    ):
        lost = present & (np.abs(kin[..., 1]) > CALO_ETA_MAX)
        rows = np.flatnonzero(lost.any(axis=1))  # the other rows would add zeros
        met[rows] += np.sum(np.where(lost[rows, :, None], p4[rows, :, 1:3], 0.0), axis=1)
        sum_et += np.sum(np.where(present & ~lost, kin[..., 0], 0.0), axis=1)
    met += (MET_RESOLUTION * np.sqrt(sum_et))[:, None] * rng.standard_normal((m, 2))
    out[:, MET_SLOT, 0] = np.hypot(met[:, 0], met[:, 1])
    out[:, MET_SLOT, 2] = wrap_phi(np.arctan2(met[:, 1], met[:, 0]))

    _fill(out, ELECTRON_SLOTS, e_pt, e_kin)
    _fill(out, MUON_SLOTS, mu_pt, mu_kin)
    _fill(out, JET_SLOTS, j_pt, j_kin)
    # Keep phi inside [-pi, pi) after the float32 cast (float32(pi) > pi).
    # (Rounding is monotonic and the bound is a float32, so clipping after the rounding
    # is clipping before it.)
    phi_max = np.nextafter(np.float32(np.pi), np.float32(0.0))
    np.clip(out[..., 2], -phi_max, phi_max, out=out[..., 2])
    return out


# ---------------------------------------------------------------- public API
def _check_process(process: str) -> int:
    if process not in PROCESS_LABELS:
        raise ValueError(f"unknown process {process!r}; known processes: {', '.join(PROCESSES)}")
    return PROCESS_LABELS[process]


def _check_count(name: str, n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must be >= 0; got {n}")
    return int(n)


def _batch_rng(seed: int, process: str, index: int) -> np.random.Generator:
    """The stream of batch ``index`` of ``process`` under ``seed`` (keyed by label and index)."""
    key = (PROCESS_LABELS[process], index)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _batch_size(process: str, n: int, chunk_size: int) -> int:
    """Events generated per batch of ``process`` when ``n`` selected events are requested.

    A function of its arguments only (never of what earlier batches gave), so the
    batches, and the events taken from them, do not depend on where they run. The
    first estimate of the events to generate, ``1.1 n / efficiency``, is split
    into equal batches of at most ``chunk_size`` events.
    """
    planned = math.ceil(1.1 * n / _PRIOR_EFFICIENCY[process]) + 64
    batches = math.ceil(planned / chunk_size)
    return min(chunk_size, max(_MIN_BATCH, math.ceil(planned / batches)))


def _batch(process: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """The selected events (float32) of one batch of ``size`` generated events."""
    return _reconstruct(_PROCESS_MAKERS[process](rng, size), rng)


def _batches(
    process: str, seed: int, first: int, count: int, size: int, spill: str | None = None
) -> tuple[list[int], list[np.ndarray] | None]:
    """Batches ``first`` to ``first + count - 1`` of ``process`` (a worker's task).

    Returns the number of selected events of each batch and the batches. With
    ``spill`` (a file path) the batches are written to that file one after the other
    and None is returned in their place, unless the file cannot be written.
    """
    indices = range(first, first + count)
    parts = [_batch(process, _batch_rng(seed, process, i), size) for i in indices]
    counts = [p.shape[0] for p in parts]
    if spill is not None:
        try:
            with open(spill, "wb") as f:
                for p in parts:
                    p.tofile(f)
        except OSError:
            return counts, parts
        return counts, None
    return counts, parts


class _Selection:
    """Takes a process's batches in index order until ``n`` events are selected.

    ``write(start, rows)`` receives the process's selected events ``start`` to
    ``start + len(rows) - 1``. Batches may arrive in any order: each is kept
    until the ones before it have arrived, and those after the one that
    completes ``n`` are dropped, so the events, ``generated`` and ``passed``
    depend on the batches' contents only.
    """

    def __init__(
        self,
        process: str,
        n: int,
        size: int,
        write: Callable[[int, np.ndarray], None],
    ) -> None:
        self.process = process
        self.n = n
        self.size = size
        self.write = write
        self.kept = 0
        self.generated = 0
        self.passed = 0
        self.next_index = 0
        self._waiting: dict[int, np.ndarray] = {}

    @property
    def done(self) -> bool:
        return self.kept >= self.n

    def add(self, index: int, particles: np.ndarray) -> int:
        """Offer batch ``index``; return how many events were taken (in order)."""
        if self.done or index < self.next_index:
            return 0
        self._waiting[index] = particles
        before = self.kept
        while not self.done and self.next_index in self._waiting:
            batch = self._waiting.pop(self.next_index)
            self.next_index += 1
            self.generated += self.size
            self.passed += batch.shape[0]
            take = batch[: self.n - self.kept]
            if take.shape[0]:
                self.write(self.kept, take)
                self.kept += take.shape[0]
            elif self.passed == 0 and self.generated > 1000 * max(self.n, self.size):
                raise RuntimeError(f"no {self.process} event passes the lepton selection")
        if self.done:
            self._waiting.clear()
        return self.kept - before


def _generate_serial(
    selections: list[_Selection],
    stream: Callable[[str, int], np.random.Generator],
    on_taken: Callable[[int], None] | None,
) -> None:
    """Every selection's batches in index order in this process."""
    for sel in selections:
        while not sel.done:
            index = sel.next_index
            taken = sel.add(index, _batch(sel.process, stream(sel.process, index), sel.size))
            if on_taken is not None and taken:
                on_taken(taken)


def _worker_init() -> bool:
    """Make a worker keep freed memory for its next batch (glibc's malloc; True if set).

    Every batch allocates and frees the same few MB of arrays. By default glibc maps
    the larger ones afresh and gives the top of the heap back to the system, so each
    batch page-faults its memory in again (a tenth of a worker's time). The workers
    are private to :func:`generate_sample` and end with it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    settings = ((-1, 512 << 20), (-2, 64 << 20), (-3, 32 << 20))  # trim, top pad, mmap
    return all(mallopt(param, value) == 1 for param, value in settings)


_TASK_EVENTS = 200_000
"""Generated events per worker task at most (a run of consecutive batches of one process)."""


def _generate_parallel(
    selections: list[_Selection],
    seed: int,
    workers: int,
    on_taken: Callable[[int], None] | None,
) -> None:
    """Every selection's batches on ``workers`` spawned worker processes.

    Tasks are runs of consecutive batches of one process, the process with the most
    events still to generate first, shorter as the work left shrinks, so the workers
    stay busy until the end. How many batches are sent out only changes the wall time:
    the events are taken in batch order by :class:`_Selection`.
    """
    sent = {sel.process: 0 for sel in selections}  # next batch index to send
    running = {sel.process: 0 for sel in selections}  # batches sent, not back yet
    back = {sel.process: [0, 0] for sel in selections}  # generated, passed of those back
    by_process = {sel.process: sel for sel in selections}

    def shortfall(sel: _Selection) -> float:
        """Events still to generate beyond the batches running (estimated)."""
        generated, passed = back[sel.process]
        efficiency = passed / generated if passed else _PRIOR_EFFICIENCY[sel.process]
        expected = passed + running[sel.process] * sel.size * efficiency
        return (sel.n - expected) / efficiency

    def next_task() -> tuple[_Selection, int] | None:
        open_ = [sel for sel in selections if not sel.done]
        if not open_:
            return None
        short = {sel.process: shortfall(sel) for sel in open_}
        sel = max(open_, key=lambda s: short[s.process])
        if short[sel.process] <= 0:
            # Enough on its way if the estimate holds: one more batch keeps a worker busy
            # and is taken if the running ones fall short.
            return sel, 1
        left = sum(max(v, 0.0) for v in short.values())
        count = math.ceil(min(short[sel.process], left / (2 * workers)) / sel.size)
        return sel, max(1, min(count, _TASK_EVENTS // sel.size))

    pool = cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
    )
    # Results come back through files: a pipe hands them over 64 KiB at a time, each
    # piece waiting for the reader to get a core, which is slow when every core is busy.
    spill_dir = tempfile.TemporaryDirectory(prefix="contrastx-fast-", ignore_cleanup_errors=True)
    futures: dict[cf.Future, tuple[str, int, int, str]] = {}
    finished = False
    try:
        while True:
            # Two tasks per worker: the pool hands a worker its next task without
            # waiting for this thread to see the last result.
            while len(futures) < 2 * workers:
                task = next_task()
                if task is None:
                    break
                sel, count = task
                first = sent[sel.process]
                spill = os.path.join(spill_dir.name, f"{sel.process}-{first}.f32")
                fut = pool.submit(_batches, sel.process, seed, first, count, sel.size, spill)
                futures[fut] = (sel.process, first, count, spill)
                sent[sel.process] += count
                running[sel.process] += count
            if not futures:
                break
            done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                process, first, count, spill = futures.pop(fut)
                sel = by_process[process]
                running[process] -= count
                counts, parts = fut.result()
                if parts is None:
                    flat = np.fromfile(spill, dtype=np.float32)
                    flat = flat.reshape(-1, N_OBJECTS, N_FEATURES)
                    parts = np.split(flat, np.cumsum(counts)[:-1])
                if os.path.exists(spill):
                    os.remove(spill)
                for k, particles in enumerate(parts):
                    back[process][0] += sel.size
                    back[process][1] += particles.shape[0]
                    taken = sel.add(first + k, particles)
                    if on_taken is not None and taken:
                        on_taken(taken)
            if all(sel.done for sel in selections):
                break
        finished = True
    finally:
        # Batches still running are not needed; on an error it is raised at once.
        pool.shutdown(wait=finished, cancel_futures=True)
        spill_dir.cleanup()


def _check_workers(workers: object) -> int:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)):
        raise TypeError(f"workers must be an integer >= 1; got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers}")
    return int(workers)


def _planned_batches(process: str, n: int, size: int) -> int:
    """Batches a request is expected to need (for sizing the worker pool only)."""
    return math.ceil((math.ceil(1.1 * n / _PRIOR_EFFICIENCY[process]) + 64) / size)


def generate_process(
    process: str,
    n: int,
    seed: int | np.random.Generator = 0,
    *,
    chunk_size: int = 10_000,
) -> Events:
    """Generate exactly ``n`` selected events of one process with the fast generator.

    Events are generated in vectorised batches of equal size, the ADC2021
    selection (an electron or muon with pT > 23 GeV) is applied, and batches are
    added until ``n`` events pass; the first ``n`` that pass, in batch order, are
    kept. See the module docstring for the physics model and its limits: this is
    an approximation for tests and quick runs.

    Parameters
    ----------
    process : str
        One of :data:`contrastx.events.layout.PROCESSES`.
    n : int
        Number of selected events to return (>= 0).
    seed : int or numpy.random.Generator, default 0
        An integer seed gives every batch its own stream, derived from the seed,
        the process's label and the batch's index with
        :class:`numpy.random.SeedSequence`: the events are those
        :func:`generate_sample` gives for this process under that seed and
        ``chunk_size``. A ``Generator`` is used (and advanced) by every batch in
        turn.
    chunk_size : int, default 10_000
        Largest number of events generated per vectorised batch (the batch size
        also follows from ``n``, so that a small request is not oversized); the
        peak memory grows in proportion to it. Part of what determines the
        events: the same seed with another ``chunk_size`` gives other events.

    Returns
    -------
    Events
        ``n`` events with label ``layout.PROCESS_LABELS[process]``,
        ``process_names = layout.PROCESSES`` and metadata ``generator``,
        ``generator_version``, ``process``, ``seed`` (integer seeds only),
        ``n_generated`` (events in the batches used) and ``filter_efficiency``.

    Raises
    ------
    ValueError
        Unknown process (the message lists the known ones) or negative ``n``.

    Examples
    --------
    >>> ev = generate_process("Z", 100, seed=3)
    >>> ev.counts()
    {'Z': 100}
    """
    label = _check_process(process)
    n = _check_count("n", n)
    chunk_size = max(_check_count("chunk_size", chunk_size), 1)
    if isinstance(seed, np.random.Generator):
        rng = seed

        def stream(process: str, index: int) -> np.random.Generator:
            return rng
    else:
        seed = _check_count("seed", seed)

        def stream(process: str, index: int) -> np.random.Generator:
            return _batch_rng(seed, process, index)

    particles = np.empty((n, N_OBJECTS, N_FEATURES), dtype=np.float32)  # all written

    def write(start: int, rows: np.ndarray) -> None:
        particles[start : start + rows.shape[0]] = rows

    sel = _Selection(process, n, _batch_size(process, n, chunk_size), write)
    _generate_serial([sel], stream, None)
    metadata = {
        "generator": GENERATOR_NAME,
        "generator_version": FAST_GENERATOR_VERSION,
        "process": process,
        "n_generated": sel.generated,
        "filter_efficiency": sel.passed / sel.generated if sel.generated else float("nan"),
    }
    if not isinstance(seed, np.random.Generator):
        metadata["seed"] = int(seed)
    return Events(
        particles,
        labels=np.full(n, label, dtype=np.int64),
        process_names=PROCESSES,
        metadata=metadata,
    )


def mixture_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Split ``n`` events among processes by fractions (largest-remainder rounding).

    Parameters
    ----------
    n : int
        Total number of events (>= 0).
    fractions : mapping of str to float
        Non-negative weight per process name; normalised to sum to one
        (e.g. :data:`contrastx.events.layout.ADC2021_MIXTURE`).

    Returns
    -------
    dict of str to int
        Counts in the order of ``fractions``, summing exactly to ``n``. Each
        count is ``floor(n f)`` plus one for the largest remainders; ties go to
        the process listed first. Deterministic.

    Raises
    ------
    ValueError
        Unknown process name, a negative or non-finite fraction, all fractions
        zero, or negative ``n``.

    Examples
    --------
    >>> mixture_counts(10, {"W": 0.592, "QCD": 0.338, "Z": 0.067, "ttbar": 0.003})
    {'W': 6, 'QCD': 3, 'Z': 1, 'ttbar': 0}
    """
    n = _check_count("n", n)
    names = list(fractions)
    for name in names:
        _check_process(name)
    f = np.array([float(fractions[k]) for k in names], dtype=np.float64)
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ValueError(f"fractions must be finite and >= 0; got {dict(fractions)}")
    if not names or f.sum() <= 0:
        raise ValueError("fractions must contain at least one positive entry")
    counts = largest_remainder_counts(n, f)
    return {k: int(c) for k, c in zip(names, counts)}


def generate_sample(
    counts: Mapping[str, int],
    seed: int = 0,
    progress: bool = False,
    chunk_size: int = 10_000,
    workers: int = 1,
) -> Events:
    """Generate a shuffled mixture of processes with the fast generator.

    Every batch of every process draws from its own random stream, derived from
    ``seed``, the process's label and the batch's index with
    :class:`numpy.random.SeedSequence`, so adding or removing a process leaves the
    events of the others unchanged (up to the shuffle), and
    :func:`generate_process` with the same seed and ``chunk_size`` gives a
    process's events. The concatenated sample is shuffled with a separate stream
    of the same seed. For the same reason the batches can be generated in
    parallel (``workers``) with a bitwise identical result.

    Parameters
    ----------
    counts : mapping of str to int
        Number of selected events per process (see :func:`mixture_counts`).
    seed : int, default 0
        Master seed (>= 0).
    progress : bool, default False
        Show a tqdm progress bar over selected events.
    chunk_size : int, default 10_000
        As in :func:`generate_process`.
    workers : int, default 1
        Spawned worker processes that generate the batches, the processes' batches
        shared among them (at most one worker per batch the request is expected to
        need; a request of a single batch is generated in the calling process). The
        sample, labels and metadata are bitwise those of ``workers=1``; only the
        wall time and the peak memory change. The workers are spawned, so a script
        that calls this at top level needs the ``if __name__ == "__main__":`` guard.

    Returns
    -------
    Events
        ``sum(counts.values())`` events in random order, labels indexing
        :data:`contrastx.events.layout.PROCESSES`; metadata ``generator``
        (``"contrastx.fast"``), ``generator_version``, ``seed``,
        ``requested_counts``, ``n_generated`` and ``filter_efficiency`` (per
        process, before the selection).

    Raises
    ------
    ValueError
        Unknown process name or negative count (the message lists the known
        processes), or ``workers`` < 1.
    TypeError
        A count, ``seed``, ``chunk_size`` or ``workers`` that is not an integer.

    Examples
    --------
    >>> ev = generate_sample({"W": 60, "Z": 40}, seed=7)
    >>> sorted(ev.counts().items())
    [('W', 60), ('Z', 40)]
    """
    seed = _check_count("seed", seed)
    chunk_size = max(_check_count("chunk_size", chunk_size), 1)
    workers = _check_workers(workers)
    requested = {}
    for name, count in counts.items():
        _check_process(name)
        requested[name] = _check_count(f"counts[{name!r}]", count)
    total = sum(requested.values())

    # The processes' events in canonical order (independent of the mapping's order),
    # shuffled: event k of that concatenation goes to row position[k].
    shuffle = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SHUFFLE_KEY,)))
    perm = shuffle.permutation(total)
    position = np.empty_like(perm)
    position[perm] = np.arange(total)
    particles = np.empty((total, N_OBJECTS, N_FEATURES), dtype=np.float32)  # all written
    labels = np.empty(total, dtype=np.int64)
    selections: list[_Selection] = []
    offset = 0
    for process in PROCESSES:
        n = requested.get(process, 0)
        if n == 0:
            continue
        labels[position[offset : offset + n]] = PROCESS_LABELS[process]

        def write(start: int, rows: np.ndarray, offset: int = offset) -> None:
            particles[position[offset + start : offset + start + rows.shape[0]]] = rows

        selections.append(_Selection(process, n, _batch_size(process, n, chunk_size), write))
        offset += n

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="evt", desc=GENERATOR_NAME)
    planned = sum(_planned_batches(s.process, s.n, s.size) for s in selections)
    try:
        if workers > 1 and planned > 1:
            _generate_parallel(
                selections, seed, min(workers, planned), None if bar is None else bar.update
            )
        else:
            _generate_serial(
                selections,
                lambda process, index: _batch_rng(seed, process, index),
                None if bar is None else bar.update,
            )
    finally:
        if bar is not None:
            bar.close()

    return Events(
        particles,
        labels=labels,
        process_names=PROCESSES,
        metadata={
            "generator": GENERATOR_NAME,
            "generator_version": FAST_GENERATOR_VERSION,
            "seed": seed,
            "requested_counts": requested,
            "n_generated": {s.process: s.generated for s in selections},
            "filter_efficiency": {s.process: s.passed / s.generated for s in selections},
        },
    )
