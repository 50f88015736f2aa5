"""Vectorised detector-level reconstruction of generator events into the ADC2021 layout.

:func:`reconstruct` turns a batch of hadron-level events (the final-state
particles of every event, as a jagged awkward array) into the (N, 19, 3)
ADC2021 table, whole batch at once: numpy on the flattened particle list with
per-particle event indices, and FastJet's awkward (multi-event) interface for
the jets. There is no Python loop over particles or events.

The default choices (:class:`RecoSettings`):

* **Leptons**, no isolation: final-state electrons with smeared pT > 3 GeV and
  |eta| < 3, muons with smeared pT > 3 GeV and |eta| < 2.1 (whatever their origin,
  so semileptonic b decays give leptons inside jets).
* **Jets**: anti-kt R = 0.4 (FastJet) on every other visible final-state particle
  with |eta| < 4.9 (accepted leptons removed; neutrinos never enter); jets are
  clustered above ``jet_cluster_pt_min`` (so resolution can move them across the
  threshold), smeared, and kept with pT > 15 GeV and |eta| < 4.
* **MET**: vector sum of the neutrinos (and other invisible ids) and of the
  visible particles beyond |eta| = 4.9, plus Gaussian noise of
  0.5 sqrt(sum ET) GeV per component, sum ET being the scalar pT sum of the
  visible particles within |eta| < 4.9.
* **Smearing** (Gaussian, on pT only; eta and phi are exact): relative resolution
  electrons 2 % + 0.1/sqrt(pT), muons 1 % + 1e-4 pT, jets 5 % + 1/sqrt(pT).
* **Selection** (ADC2021): at least one accepted electron or muon with pT > 23 GeV.

No pileup (ADC2021 had ~20 pileup interactions per event), no fake leptons, no
b-tagging, no overlap removal beyond removing accepted leptons from the jet
inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kinematics import wrap_phi
from ..layout import (
    ELECTRON_SLOTS,
    JET_SLOTS,
    LEPTON_TRIGGER_PT,
    MET_SLOT,
    MUON_SLOTS,
    N_FEATURES,
    N_OBJECTS,
)

__all__ = ["RecoSettings", "final_state", "reconstruct"]


@dataclass(frozen=True)
class RecoSettings:
    """Detector-level reconstruction choices (defaults as in the module docstring).

    Attributes
    ----------
    electron_pt_min, electron_eta_max : float
        Electron acceptance after smearing (3 GeV, 3.0).
    muon_pt_min, muon_eta_max : float
        Muon acceptance after smearing (3 GeV, 2.1).
    electron_res_const, electron_res_stochastic : float
        Relative electron resolution ``const + stochastic / sqrt(pT)`` (0.02, 0.1).
    muon_res_const, muon_res_linear : float
        Relative muon resolution ``const + linear * pT`` (0.01, 1e-4).
    jet_res_const, jet_res_stochastic : float
        Relative jet resolution ``const + stochastic / sqrt(pT)`` (0.05, 1.0).
    jet_radius : float
        Anti-kt distance parameter (0.4).
    jet_pt_min, jet_eta_max : float
        Jet acceptance after smearing (15 GeV, 4.0).
    jet_cluster_pt_min : float
        Minimum pT of clustered jets before smearing (5 GeV).
    calo_eta_max : float
        Visible particles beyond this |eta| escape (into MET) (4.9).
    met_resolution : float
        MET noise per component is ``met_resolution * sqrt(sum ET)`` (0.5).
    trigger_pt : float
        Selection: an accepted electron or muon above this pT (23 GeV).
    invisible_ids : tuple of int
        |PDG id| of invisible particles (neutrinos and the lightest neutralino).
    """

    electron_pt_min: float = 3.0
    electron_eta_max: float = 3.0
    muon_pt_min: float = 3.0
    muon_eta_max: float = 2.1
    electron_res_const: float = 0.02
    electron_res_stochastic: float = 0.1
    muon_res_const: float = 0.01
    muon_res_linear: float = 1e-4
    jet_res_const: float = 0.05
    jet_res_stochastic: float = 1.0
    jet_radius: float = 0.4
    jet_pt_min: float = 15.0
    jet_eta_max: float = 4.0
    jet_cluster_pt_min: float = 5.0
    calo_eta_max: float = 4.9
    met_resolution: float = 0.5
    trigger_pt: float = LEPTON_TRIGGER_PT
    invisible_ids: tuple[int, ...] = (12, 14, 16, 1000022)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "invisible_ids":
                continue
            value = getattr(self, f.name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"RecoSettings.{f.name} must be finite and >= 0; got {value}")
        if self.jet_radius <= 0:
            raise ValueError(f"RecoSettings.jet_radius must be > 0; got {self.jet_radius}")
        object.__setattr__(self, "invisible_ids", tuple(int(abs(i)) for i in self.invisible_ids))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (stored in the output metadata)."""
        d = dataclasses.asdict(self)
        d["invisible_ids"] = list(self.invisible_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecoSettings:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        if "invisible_ids" in d:
            d["invisible_ids"] = tuple(d["invisible_ids"])
        return cls(**d)


def final_state(batch: Any) -> Any:
    """Final-state particles ``{id, px, py, pz, e}`` of a ``Pythia.nextBatch`` array.

    Parameters
    ----------
    batch : awkward.Array
        Events from ``pythia8mc.Pythia.nextBatch`` (fields ``prt`` and ``info``).

    Returns
    -------
    awkward.Array
        Jagged array (events x particles) of records with fields ``id``, ``px``,
        ``py``, ``pz``, ``e`` for particles with ``status > 0``.
    """
    import awkward as ak

    prt = batch.prt
    fs = prt[prt.status > 0]
    return ak.zip(
        {"id": fs.id, "px": fs.p.px, "py": fs.p.py, "pz": fs.p.pz, "e": fs.p.e},
        depth_limit=2,
    )


_FASTJET_QUIET = False


def _quiet_fastjet() -> None:
    """Silence FastJet's start-up banner (printed once per process otherwise)."""
    global _FASTJET_QUIET
    if _FASTJET_QUIET:
        return
    _FASTJET_QUIET = True
    try:
        from fastjet import _swig

        _swig.ClusterSequence.set_fastjet_banner_stream(None)
        _swig.ClusterSequence.print_banner()  # marks the banner as shown
    except Exception:  # pragma: no cover - cosmetic only
        pass


def _kin(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(pz / pt)
    eta = np.where(pt > 0, eta, np.copysign(1e6, pz))
    return pt, eta, np.arctan2(py, px)


def _smear(rng: np.random.Generator, pt: np.ndarray, rel_sigma: np.ndarray) -> np.ndarray:
    return pt * (1.0 + rel_sigma * rng.standard_normal(pt.shape))


def _fill(
    out: np.ndarray,
    slots: slice,
    evt: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
) -> None:
    """Scatter objects (event index, pT, eta, phi) into ``out``: per event pT-ordered, truncated."""
    if evt.size == 0:
        return
    order = np.lexsort((-pt, evt))
    evt_s = evt[order]
    rank = np.arange(evt_s.size) - np.searchsorted(evt_s, evt_s, side="left")
    width = slots.stop - slots.start
    keep = rank < width
    rows, cols = evt_s[keep], slots.start + rank[keep]
    o = order[keep]
    out[rows, cols, 0] = pt[o]
    out[rows, cols, 1] = eta[o]
    out[rows, cols, 2] = phi[o]


def reconstruct(
    particles: Any,
    rng: np.random.Generator,
    settings: RecoSettings | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruct and select a batch of events into the ADC2021 layout.

    Parameters
    ----------
    particles : awkward.Array
        Final-state particles per event (see :func:`final_state`): records with
        ``id``, ``px``, ``py``, ``pz``, ``e`` (GeV).
    rng : numpy.random.Generator
        Source of the smearing; the draws are made in a fixed order, so the
        result is a pure function of the input and the generator state.
    settings : RecoSettings, optional
        Reconstruction choices; default :class:`RecoSettings()`.

    Returns
    -------
    particles : ndarray, shape (n_pass, 19, 3), float32
        ``(pT, eta, phi)`` of the selected events, slots as in
        :mod:`contrastx.events.layout`.
    selected : ndarray of int64, shape (n_pass,)
        Indices of the selected events in the input batch.
    """
    import awkward as ak
    import fastjet

    _quiet_fastjet()
    s = RecoSettings() if settings is None else settings
    n = len(particles)
    counts = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    flat = ak.flatten(particles, axis=1)
    pid = np.abs(ak.to_numpy(flat.id).astype(np.int64))
    px, py, pz, en = (ak.to_numpy(flat[f]).astype(np.float64) for f in ("px", "py", "pz", "e"))
    evt = np.repeat(np.arange(n), counts)
    pt, eta, phi = _kin(px, py, pz)
    abseta = np.abs(eta)
    invisible = np.isin(pid, s.invisible_ids)
    in_calo = ~invisible & (abseta < s.calo_eta_max)

    # Leptons: smear every candidate in particle order (electrons, then muons).
    e_idx = np.flatnonzero(pid == 11)
    mu_idx = np.flatnonzero(pid == 13)
    e_root = np.sqrt(np.maximum(pt[e_idx], 1e-3))
    e_pt = _smear(rng, pt[e_idx], s.electron_res_const + s.electron_res_stochastic / e_root)
    mu_pt = _smear(rng, pt[mu_idx], s.muon_res_const + s.muon_res_linear * pt[mu_idx])
    e_acc = (e_pt > s.electron_pt_min) & (abseta[e_idx] < s.electron_eta_max)
    mu_acc = (mu_pt > s.muon_pt_min) & (abseta[mu_idx] < s.muon_eta_max)
    e_idx, e_pt = e_idx[e_acc], e_pt[e_acc]
    mu_idx, mu_pt = mu_idx[mu_acc], mu_pt[mu_acc]

    passed = np.zeros(n, dtype=bool)
    passed[evt[e_idx[e_pt > s.trigger_pt]]] = True
    passed[evt[mu_idx[mu_pt > s.trigger_pt]]] = True
    selected = np.flatnonzero(passed)
    m = selected.size
    out = np.zeros((m, N_OBJECTS, N_FEATURES), dtype=np.float64)
    if m == 0:
        return out.astype(np.float32), selected
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[selected] = np.arange(m)

    for idx, lpt, slots in ((e_idx, e_pt, ELECTRON_SLOTS), (mu_idx, mu_pt, MUON_SLOTS)):
        keep = passed[evt[idx]]
        idx, lpt = idx[keep], lpt[keep]
        _fill(out, slots, new_index[evt[idx]], lpt, eta[idx], phi[idx])

    # Jets: the other visible particles inside the calorimeter, selected events only.
    is_lepton = np.zeros(pid.size, dtype=bool)
    is_lepton[e_idx] = True
    is_lepton[mu_idx] = True
    jet_in = np.flatnonzero(in_calo & ~is_lepton & passed[evt])
    jet_counts = np.bincount(evt[jet_in], minlength=n)[selected]
    inputs = ak.unflatten(
        ak.zip({"px": px[jet_in], "py": py[jet_in], "pz": pz[jet_in], "E": en[jet_in]}),
        jet_counts,
    )
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, s.jet_radius)
    jets = fastjet.ClusterSequence(inputs, jet_def).inclusive_jets(min_pt=s.jet_cluster_pt_min)
    j_evt = np.repeat(np.arange(m), ak.to_numpy(ak.num(jets, axis=1)))
    jflat = ak.flatten(jets, axis=1)
    j_pt, j_eta, j_phi = _kin(
        *(np.asarray(ak.to_numpy(jflat[f]), dtype=np.float64) for f in ("px", "py", "pz"))
    )
    j_root = np.sqrt(np.maximum(j_pt, 1e-3))
    j_pt = _smear(rng, j_pt, s.jet_res_const + s.jet_res_stochastic / j_root)
    j_acc = (j_pt > s.jet_pt_min) & (np.abs(j_eta) < s.jet_eta_max)
    _fill(out, JET_SLOTS, j_evt[j_acc], j_pt[j_acc], j_eta[j_acc], j_phi[j_acc])

    # MET: invisible particles plus visible ones escaping the calorimeter, plus noise.
    lost = np.flatnonzero(~in_calo & passed[evt])
    met_x = np.bincount(evt[lost], weights=px[lost], minlength=n)[selected]
    met_y = np.bincount(evt[lost], weights=py[lost], minlength=n)[selected]
    vis = np.flatnonzero(in_calo & passed[evt])
    sum_et = np.bincount(evt[vis], weights=pt[vis], minlength=n)[selected]
    noise = rng.standard_normal((m, 2)) * (s.met_resolution * np.sqrt(sum_et))[:, None]
    met_x = met_x + noise[:, 0]
    met_y = met_y + noise[:, 1]
    out[:, MET_SLOT, 0] = np.hypot(met_x, met_y)
    out[:, MET_SLOT, 2] = wrap_phi(np.arctan2(met_y, met_x))

    # Keep phi inside [-pi, pi) after the float32 cast (float32(pi) > pi).
    phi_max = float(np.nextafter(np.float32(np.pi), np.float32(0.0)))
    np.clip(out[..., 2], -phi_max, phi_max, out=out[..., 2])
    return out.astype(np.float32), selected
