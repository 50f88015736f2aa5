"""Physics and contract checks of the Pythia 8 diphoton benchmark (small samples, MPI off).

Marked ``pythia``: skipped without the optional dependencies (see conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from contrastx.events import DIPHOTON, Events
from contrastx.events.generators import diphoton, pythia
from contrastx.events.generators.diphoton import (
    BACKGROUND_PROCESSES,
    DIPHOTON_DATASET,
    DIPHOTON_PROCESSES,
    DecayFilter,
    DiphotonOptions,
    DiphotonReco,
    decay_filter_mask,
    diphoton_counts,
    event_weights,
    generate_diphoton,
    group_labels,
    reconstruct_record,
    resolve_processes,
)
from contrastx.events.generators.pythia import committed_counts, pythia_batch
from contrastx.events.io import EventFile, read_events
from contrastx.options import OptionsError

pytestmark = pytest.mark.pythia

SEED = 11
COUNTS = {"gamma_gamma": 300, "ggF": 150, "VBF": 150, "ttH": 100, "X_hh_500": 120}
FAST = {"mpi": False, "workers": 1, "progress": False}
COL = {name: DIPHOTON.feature_index(name) for name in DIPHOTON.feature_names}
JETS = DIPHOTON.group_slots("jet")
PHOTONS = DIPHOTON.group_slots("photon")


@pytest.fixture(scope="module")
def sample_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("diphoton") / "sample.h5"
    return generate_diphoton(path, COUNTS, seed=SEED, batch_size=200, **FAST)


@pytest.fixture(scope="module")
def sample(sample_path) -> Events:
    return read_events(sample_path)


def four_vectors(p: np.ndarray) -> np.ndarray:
    """(E, px, py, pz) of (..., F) objects in the diphoton layout."""
    pt, eta, phi, m = (p[..., COL[c]].astype(np.float64) for c in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz], axis=-1)


def mass(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(v[..., 0] ** 2 - (v[..., 1:] ** 2).sum(-1), 0.0))


# ---------------------------------------------------------------- contract
def test_contract_layout_and_cross_sections(sample):
    assert sample.layout == DIPHOTON
    assert sample.counts() == COUNTS
    assert sample.process_names[:5] == BACKGROUND_PROCESSES  # the paper's labels 0-4
    assert sample.process_names == tuple(DIPHOTON_PROCESSES)
    md = sample.metadata
    assert md["generator"] == "contrastx.pythia.diphoton" and md["seed"] == SEED
    assert md["processes"]["X_hh_500"]["group"] == "X_hh"
    assert md["processes"]["X_hh_500"]["decay_filter"] == {
        "particle": 25,
        "decays": [[5, 5], [22, 22]],
    }
    assert md["process_groups"]["ggF"] == "ggF"
    for name in COUNTS:
        assert md["cross_section_pb"][name] > 0
        assert 0 < md["selected_cross_section_fb"][name] < 1e3 * md["cross_section_pb"][name]
    # h -> gamma gamma is in Pythia's cross section: ggF sigma x BR is tens of fb
    assert 10 < 1e3 * md["cross_section_pb"]["ggF"] < 200
    # the decay filter keeps one h -> gamma gamma and one h -> b bbar: half the events
    prog = md["progress"]["X_hh_500"]
    assert 0.35 < prog["accepted"] / prog["generated"] < 0.65
    for name in ("gamma_gamma", "ggF"):
        assert md["progress"][name]["accepted"] == md["progress"][name]["generated"]


def test_event_weights_give_the_expected_yields(sample):
    w = event_weights(sample, 140.0)
    for name in COUNTS:
        rows = sample.labels == sample.label_of(name)
        expected = 140.0 * sample.metadata["selected_cross_section_fb"][name]
        assert w[rows].sum() == pytest.approx(expected, rel=1e-9)
        assert np.ptp(w[rows]) == 0
    with pytest.raises(ValueError, match="luminosity_fb"):
        event_weights(sample, 0.0)
    with pytest.raises(ValueError, match="generate_diphoton"):
        event_weights(
            Events(sample.particles, layout=DIPHOTON, event_features=sample.event_features), 1.0
        )


def test_group_labels_merge_mass_points(sample):
    labels, names = group_labels(sample)
    assert names[:5] == BACKGROUND_PROCESSES and "X_hh" in names
    assert (labels[sample.labels == sample.label_of("X_hh_500")] == names.index("X_hh")).all()
    assert (labels[sample.labels == sample.label_of("VBF")] == 2).all()


def test_objects_follow_the_layout_contract(sample):
    p = sample.particles
    # photons: the diphoton candidate, leading first; its mass is the m_gg feature
    y = p[:, PHOTONS]
    assert (y[:, 0, COL["pt"]] >= y[:, 1, COL["pt"]]).all() and (y[:, 1, COL["pt"]] > 25).all()
    mgg = sample.event_feature("m_gg")
    assert np.allclose(mass(four_vectors(y).sum(1)), mgg, rtol=1e-4)
    assert ((mgg > 105) & (mgg < 160)).all()
    assert (y[:, 0, COL["pt"]] > 0.35 * mgg).all() and (y[:, 1, COL["pt"]] > 0.25 * mgg).all()
    # zeros where a feature does not apply
    for group in ("electron", "muon", "MET", "photon"):
        sl = DIPHOTON.group_slots(group)
        for c in ("btag", "tau21", "tau32"):
            assert (p[:, sl, COL[c]] == 0).all(), (group, c)
    for group in ("electron", "muon", "MET", "photon"):
        assert (p[:, DIPHOTON.group_slots(group), COL["mass"]] == 0).all()
    # b-tags are 0/1; jets above threshold; tau ratios of jets in a sane range
    jets = p[:, JETS]
    filled = jets[..., COL["pt"]] > 0
    assert set(np.unique(jets[..., COL["btag"]])) <= {0.0, 1.0}
    assert (jets[..., COL["pt"]][filled] > 25).all()
    assert (jets[..., COL["mass"]][filled] > 0).mean() > 0.95
    tau21 = p[..., COL["tau21"]][p[..., COL["pt"]] > 0]
    assert (tau21 >= 0).all() and np.median(tau21[tau21 > 0]) < 1.0
    # n_jets counts every accepted jet (four are kept), ht sums their pT
    n_jets, ht = sample.event_feature("n_jets"), sample.event_feature("ht")
    kept = filled.sum(1)
    assert (n_jets >= kept).all()
    few = n_jets <= 4
    assert (n_jets[few] == kept[few]).all()
    assert np.allclose(ht[few], jets[few][..., COL["pt"]].sum(1), rtol=1e-5)
    assert (ht[~few] > jets[~few][..., COL["pt"]].sum(1)).all()


# ---------------------------------------------------------------- physics
@pytest.mark.parametrize("process", ["ggF", "VBF", "ttH", "X_hh_500"])
def test_m_gg_peaks_at_the_higgs_mass(sample, process):
    mgg = sample.select(process).event_feature("m_gg")
    assert abs(np.median(mgg) - 125.0) < 1.0
    assert np.mean(np.abs(mgg - 125.0) < 3.0) > 0.75


def test_continuum_m_gg_is_smooth_and_falling(sample):
    mgg = sample.select("gamma_gamma").event_feature("m_gg")
    assert np.mean(np.abs(mgg - 125.0) < 3.0) < 0.2  # a flat spectrum puts 11 % there
    counts, _ = np.histogram(mgg, bins=np.linspace(105, 160, 12))
    assert counts.min() > 0  # populated across the window
    centre = counts[3:5].sum()  # 120-130 GeV
    neighbours = counts[1:3].sum() + counts[5:7].sum()  # 110-120 and 130-140 GeV
    assert centre < 0.8 * neighbours  # no peak
    assert counts[:5].sum() > counts[6:].sum()  # falling


def test_heavy_scalar_mass_from_photons_and_b_jets(sample):
    ev = sample.select("X_hh_500")
    p = ev.particles
    tagged = p[:, JETS, COL["btag"]] > 0
    two = tagged.sum(1) >= 2
    assert two.mean() > 0.3
    rows = np.flatnonzero(two)
    first = np.argmax(tagged[rows], axis=1)
    second = np.array([np.flatnonzero(t)[1] for t in tagged[rows]])
    bb = four_vectors(p[rows, first]) + four_vectors(p[rows, second])
    gg = four_vectors(p[rows, PHOTONS]).sum(1)
    # the usual mass-constrained variable: m_ggbb - (m_bb - 125) - (m_gg - 125)
    m_star = mass(gg + bb) - (mass(bb) - 125.0) - (mass(gg) - 125.0)
    assert abs(np.median(m_star) - 500.0) < 25.0
    assert np.mean(np.abs(m_star / 500.0 - 1) < 0.1) > 0.5
    assert abs(np.median(mass(bb)) - 115.0) < 20.0  # h -> b bbar, jets lose some energy


def test_vbf_has_forward_jets(sample):
    def forward_pairs(name: str) -> float:
        p = sample.select(name).particles[:, JETS]
        two = p[:, 1, COL["pt"]] > 0
        deta = np.abs(p[:, 0, COL["eta"]] - p[:, 1, COL["eta"]])
        return float(np.mean(two & (deta > 3.0)))

    assert forward_pairs("VBF") > 0.35
    assert forward_pairs("ggF") < 0.15


def test_tth_has_many_jets_and_b_tags(sample):
    def means(name: str) -> tuple[float, float]:
        ev = sample.select(name)
        n_b = (ev.particles[:, JETS, COL["btag"]] > 0).sum(1)
        return float(ev.event_feature("n_jets").mean()), float(n_b.mean())

    jets_tth, b_tth = means("ttH")
    jets_ggf, b_ggf = means("ggF")
    assert jets_tth > 3.5 and jets_tth > 2.5 * jets_ggf
    assert b_tth > 0.8 and b_ggf < 0.2


# ---------------------------------------------------------------- reconstruction unit
def _massless(pid: int, pt: float, eta: float, phi: float, status: int = 1) -> dict:
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return {"id": pid, "status": status, "px": px, "py": py, "pz": pz, "e": pt * np.cosh(eta)}


def test_reconstruct_handmade_events_exactly():
    ak = pytest.importorskip("awkward")
    exact = DiphotonReco(
        em_res_const=0.0,
        em_res_stochastic=0.0,
        muon_res_const=0.0,
        muon_res_linear=0.0,
        jet_res_const=0.0,
        jet_res_stochastic=0.0,
        photon_efficiency_barrel=1.0,
        photon_efficiency_endcap=1.0,
        electron_efficiency=1.0,
        btag_eff_b=1.0,
        btag_eff_c=0.0,
        btag_eff_light=0.0,
        met_resolution=0.0,
        large_r_jet_pt_min=40.0,
    )
    # photons A (70 GeV) and B (60 GeV) with m = 125 GeV exactly
    eta_a, eta_b = 0.3, -0.5
    dphi = np.arccos(np.cosh(eta_a - eta_b) - 125.0**2 / (2 * 70 * 60))
    a = _massless(22, 70, eta_a, 0.0)
    b = _massless(22, 60, eta_b, dphi)
    c = _massless(22, 80, 1.9, -1.0)  # the leading isolated photon, pairs far from 125
    d = _massless(22, 100, 0.9, 2.9)  # the hardest photon, inside a jet: not isolated
    around_d = [_massless(211, 15, 0.95, 2.95), _massless(-211, 15, 0.85, 2.85)]
    bjet = [_massless(211, 30, 1.5, -2.0), _massless(111, 20, 1.55, -2.05)]
    b_hadron = _massless(511, 25, 1.52, -2.02, status=-2)  # decayed: not a final particle
    electron = _massless(11, 30, -1.0, 1.5)
    neutrino = _massless(12, 40, 0.0, 0.5)
    event = [a, b, c, d, *around_d, *bjet, b_hadron, electron, neutrino]
    lonely = [_massless(22, 70, 0.0, 0.0), _massless(211, 30, 1.0, 1.0)]
    record = ak.Array([event, lonely])
    out, features, selected = reconstruct_record(record, np.random.default_rng(0), exact)
    assert selected.tolist() == [0] and out.shape == (1, 13, 12)
    ev = Events(out, layout=DIPHOTON, event_features=features)  # passes the layout checks
    y = out[0, PHOTONS]
    assert y[:, COL["pt"]] == pytest.approx([70, 60], rel=1e-6)
    assert y[:, COL["eta"]] == pytest.approx([eta_a, eta_b], rel=1e-6)
    assert ev.event_feature("m_gg")[0] == pytest.approx(125.0, rel=1e-5)
    e = DIPHOTON.group_slots("electron").start
    assert (
        out[0, e, COL["pt"]] == pytest.approx(30, rel=1e-6) and out[0, e, COL["is_electron"]] == 1
    )
    met = DIPHOTON.group_slots("MET").start
    assert out[0, met, COL["pt"]] == pytest.approx(40, rel=1e-6)
    assert out[0, met, COL["phi"]] == pytest.approx(0.5, rel=1e-6)
    # three jets: photon D with its pions (130 GeV), photon C, which is not part of the
    # candidate (80 GeV), and the b jet (50 GeV, the only one tagged)
    jets = out[0, JETS]
    assert jets[:3, COL["pt"]] == pytest.approx([130, 80, 50], rel=1e-3)
    assert jets[:3, COL["btag"]].tolist() == [0.0, 0.0, 1.0] and (jets[3:] == 0).all()
    assert features[0, DIPHOTON.event_feature_index("n_jets")] == 3
    assert features[0, DIPHOTON.event_feature_index("ht")] == pytest.approx(260, rel=1e-3)
    assert jets[0, COL["mass"]] > 0 and jets[0, COL["is_jet"]] == 1
    assert jets[1, COL["mass"]] == 0 and jets[1, COL["tau21"]] == 0  # one constituent
    assert 0 < jets[0, COL["tau21"]] < 1
    large = out[0, DIPHOTON.group_slots("large_r_jet")]
    assert large[:, COL["pt"]] == pytest.approx([130, 80], rel=1e-3)
    assert large[:, COL["is_large_r_jet"]].tolist() == [1.0, 1.0]
    # photon C leads but pairs badly; had D been isolated, B would not be a candidate
    exact_no_iso = DiphotonReco(**{**exact.to_dict(), "photon_isolation": 10.0})
    _, f2, _ = reconstruct_record(record, np.random.default_rng(0), exact_no_iso)
    assert len(f2) == 0 or abs(f2[0, DIPHOTON.event_feature_index("m_gg")] - 125.0) > 1.0


def test_decay_filter_on_a_handmade_record():
    ak = pytest.importorskip("awkward")

    def particle(pid, d1=0, d2=0):
        return {"id": pid, "daughter1": d1, "daughter2": d2}

    # entries: 0 system, 1 X, 2-3 h h (2 recoils into 4), 4 h copy, 5-6 and 7-8 decays
    yy_bb = [
        particle(90),
        particle(35, 2, 3),
        particle(25, 4, 4),
        particle(25, 7, 8),
        particle(25, 5, 6),
        particle(22),
        particle(22),
        particle(5),
        particle(-5),
    ]
    yy_yy = [*yy_bb[:7], particle(22), particle(22)]
    batch = ak.Array({"prt": [yy_bb, yy_yy, yy_bb[:1]]})
    keep = decay_filter_mask(batch, DecayFilter(25, ((22, 22), (5, -5))))
    assert keep.tolist() == [True, False, False]
    keep = decay_filter_mask(batch, DecayFilter(25, ((22, 22), (22, 22))))
    assert keep.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="at least two products"):
        DecayFilter(25, ((22,),))


# ---------------------------------------------------------------- options, registry, resume
def test_counts_options_and_registry():
    counts = diphoton_counts(100, 20, 5, signals=["X_hh", "t_ch"])
    assert counts == {
        "gamma_gamma": 100,
        **dict.fromkeys(("ggF", "VBF", "VH", "ttH"), 20),
        **dict.fromkeys(("X_hh_300", "X_hh_400", "X_hh_500", "X_hh_600"), 5),
        "t_ch": 5,
    }
    groups = {s.group for s in DIPHOTON_PROCESSES.values()} - set(BACKGROUND_PROCESSES)
    assert len(groups) >= 4
    multi = [g for g in groups if len(resolve_processes([g])) >= 3]
    assert len(multi) >= 2
    assert all(s.description and s.group for s in DIPHOTON_PROCESSES.values())
    assert DiphotonOptions(signal_groups=("none",)).counts() == diphoton_counts(n_signal=0)
    with pytest.raises(OptionsError, match=r"diphoton\.signal_groups"):
        DiphotonOptions(signal_groups=("Zprime",))
    with pytest.raises(OptionsError, match="backgrounds"):
        DiphotonOptions(signal_groups=("ggF",))
    with pytest.raises(OptionsError, match="m_gg_min"):
        DiphotonReco(m_gg_min=170.0)
    with pytest.raises(OptionsError, match="layout's jet acceptance"):
        DiphotonReco(jet_eta_max=5.0)
    with pytest.raises(ValueError, match="unknown diphoton process"):
        generate_diphoton("never.h5", {"W": 10}, **FAST)
    with pytest.raises(TypeError, match="DiphotonReco"):
        pythia_batch("ggF", dataset=DIPHOTON_DATASET, reco=pythia.RecoSettings())


def test_every_process_initialises_and_yields_diphoton_events():
    for name in DIPHOTON_PROCESSES:
        res = pythia_batch(name, seed=3, n_events=40, mpi=False, dataset=DIPHOTON_DATASET)
        assert res.sigma_pb > 0, name
        assert res.n_passed > 0, name
        assert res.event_features.shape == (res.n_passed, 3)


def test_workers_do_not_change_the_file(tmp_path):
    # the decay-filtered process crosses to the worker processes by value
    counts = {"ggF": 30, "X_hh_300": 20}
    kw = {"seed": 5, "batch_size": 60, "mpi": False, "progress": False}
    a = read_events(generate_diphoton(tmp_path / "s.h5", counts, workers=1, **kw))
    b = read_events(generate_diphoton(tmp_path / "p.h5", counts, workers=2, **kw))
    assert np.array_equal(a.particles, b.particles) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.event_features, b.event_features)
    assert a.metadata["cross_section_pb"] == b.metadata["cross_section_pb"]


def test_interrupted_file_resumes_with_its_event_features(tmp_path, monkeypatch):
    counts = {"ggF": 60, "VBF": 60}
    kw = {"seed": 8, "batch_size": 80, **FAST}
    reference = read_events(generate_diphoton(tmp_path / "ref.h5", counts, **kw))

    calls = {"n": 0}
    original = pythia.EventWriter.set_metadata

    def crash_after_append(self, md):
        calls["n"] += 1
        if calls["n"] == 3:  # the batch was appended but not committed
            raise KeyboardInterrupt
        original(self, md)

    monkeypatch.setattr(pythia.EventWriter, "set_metadata", crash_after_append)
    path = tmp_path / "cut.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_diphoton(path, counts, **kw)
    monkeypatch.undo()
    with EventFile(path) as f:
        partial = len(f)
    have = committed_counts(path)
    assert 0 < sum(have.values()) < partial
    # resuming to what is committed drops the uncommitted rows of every dataset
    generate_diphoton(path, {k: v for k, v in have.items() if v}, **kw)
    cut = read_events(path)
    assert len(cut) == sum(have.values()) == cut.event_features.shape[0]
    generate_diphoton(path, counts, **kw)
    resumed = read_events(path)
    assert np.array_equal(resumed.particles, reference.particles)
    assert np.array_equal(resumed.event_features, reference.event_features)
    assert resumed.metadata["cross_section_pb"] == reference.metadata["cross_section_pb"]


def test_module_is_registered_for_workers():
    # workers receive the reconstruction by reference: it must be a module-level function
    assert DIPHOTON_DATASET.reconstruct is diphoton.reconstruct_diphoton
    assert diphoton.reconstruct_diphoton.__qualname__ == "reconstruct_diphoton"
