"""Physics and contract checks of the Pythia 8 generator (small samples, MPI off).

Marked ``pythia``: skipped without the optional dependencies (see conftest.py).
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pytest
from contrastx.events import Events, layout
from contrastx.events.generators import processes, pythia
from contrastx.events.generators.pythia import (
    RecoSettings,
    generate_black_box,
    generate_pythia,
    pythia_batch,
)
from contrastx.events.generators.reconstruction import reconstruct
from contrastx.events.io import EventFile, load_labels, read_events
from contrastx.events.kinematics import invariant_mass, transverse_mass

pytestmark = pytest.mark.pythia

SEED = 5
COUNTS = {"W": 150, "Z": 150, "ttbar": 100, "Ato4l": 200}
FAST = {"mpi": False, "workers": 1, "progress": False}


@pytest.fixture(scope="module")
def sample_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pythia") / "sample.h5"
    return generate_pythia(path, COUNTS, seed=SEED, batch_size=200, **FAST)


@pytest.fixture(scope="module")
def sample(sample_path) -> Events:
    return read_events(sample_path)


def leading_lepton(ev: Events) -> tuple[np.ndarray, np.ndarray]:
    p = ev.particles
    slot = np.where(p[:, 1, 0] >= p[:, 5, 0], 1, 5)
    rows = np.arange(len(ev))
    return p[rows, slot, 0], p[rows, slot, 2]


# ---------------------------------------------------------------- contract
def test_contract_and_metadata(sample):
    assert sample.counts() == COUNTS
    assert sample.process_names == layout.PROCESSES
    md = sample.metadata
    assert md["generator"] == "contrastx.pythia"
    assert md["versions"]["pythia8mc"] == metadata.version("pythia8mc")
    assert md["versions"]["fastjet"] == metadata.version("fastjet")
    assert md["seed"] == SEED and md["mpi"] is False and md["batch_size"] == 200
    assert md["requested_counts"] == COUNTS and md["n_kept"] == COUNTS
    assert "PartonLevel:MPI = off" in md["common_settings"]
    assert md["reco"] == RecoSettings().to_dict()
    for name, n in COUNTS.items():
        assert md["processes"][name]["settings"] == list(processes.PROCESS_REGISTRY[name].settings)
        assert md["processes"][name]["description"]
        assert 0 < md["filter_efficiency"][name] <= 1
        assert md["n_generated"][name] * md["filter_efficiency"][name] >= n
    # events are grouped by process in canonical order
    assert list(dict.fromkeys(sample.labels.tolist())) == [0, 2, 3, 4]


def test_layout_selection_and_acceptance(sample):
    p = sample.particles
    assert (p[:, 0, 1] == 0).all() and (p[:, 0, 0] > 0).all()
    phi = p[..., 2].astype(np.float64)
    assert (phi >= -np.pi).all() and (phi < np.pi).all()
    lep = np.concatenate([p[:, layout.ELECTRON_SLOTS, 0], p[:, layout.MUON_SLOTS, 0]], axis=1)
    assert (lep.max(axis=1) > layout.LEPTON_TRIGGER_PT).all()
    for slots, pt_min, eta_max in (
        (layout.ELECTRON_SLOTS, 3.0, 3.0),
        (layout.MUON_SLOTS, 3.0, 2.1),
        (layout.JET_SLOTS, 15.0, 4.0),
    ):
        g = p[:, slots]
        filled = g[..., 0] > 0
        assert (np.diff(g[..., 0], axis=1) <= 0).all()
        assert (g[~filled] == 0).all() and (filled[:, 1:] <= filled[:, :-1]).all()
        assert (g[..., 0][filled] > pt_min).all()
        assert (np.abs(g[..., 1][filled]) < eta_max).all()


# ---------------------------------------------------------------- physics
def test_z_dilepton_mass_peaks_at_mz(sample):
    ev = sample.select("Z")
    ee = ev.multiplicity(layout.ELECTRON_SLOTS) >= 2
    mm = ev.multiplicity(layout.MUON_SLOTS) >= 2
    mll = np.concatenate(
        [invariant_mass(ev.particles[ee], [1, 2]), invariant_mass(ev.particles[mm], [5, 6])]
    )
    assert mll.size > 40
    assert abs(np.median(mll) - 91.19) < 4.0
    assert np.mean(np.abs(mll - 91.19) < 10) > 0.6


def test_w_transverse_mass_edge(sample):
    ev = sample.select("W")
    pt, phi = leading_lepton(ev)
    m_t = transverse_mass(pt, phi, ev.particles[:, 0, 0], ev.particles[:, 0, 2])
    assert 60.0 < np.percentile(m_t, 90) < 95.0
    assert np.mean(m_t > 100.0) < 0.05
    assert 45.0 < np.median(m_t) < 85.0


def test_ato4l_four_lepton_mass_near_50(sample):
    ev = sample.select("Ato4l")
    n_lep = ev.multiplicity(layout.ELECTRON_SLOTS) + ev.multiplicity(layout.MUON_SLOTS)
    four = n_lep == 4
    assert four.sum() >= 20
    m4l = invariant_mass(ev.particles[four], slice(1, 9))
    assert abs(np.median(m4l) - 50.0) < 5.0
    assert np.mean(np.abs(m4l - 50.0) < 7.5) > 0.6


def test_ttbar_jets_and_met(sample):
    tt, z = sample.select("ttbar"), sample.select("Z")
    assert tt.multiplicity(layout.JET_SLOTS).mean() > 4.0
    assert tt.particles[:, 0, 0].mean() > z.particles[:, 0, 0].mean() + 20.0


# ---------------------------------------------------------------- reproducibility and resume
def test_seed_reproduces_batches_and_files(tmp_path):
    a = pythia_batch("Z", 3, seed=1, n_events=60, mpi=False)
    b = pythia_batch("Z", 3, seed=1, n_events=60, mpi=False)
    c = pythia_batch("Z", 4, seed=1, n_events=60, mpi=False)
    assert a.n_generated == 60 and a.n_passed == a.particles.shape[0] > 0
    assert np.array_equal(a.particles, b.particles)
    assert not np.array_equal(a.particles[:5], c.particles[:5])
    f1 = generate_pythia(tmp_path / "a.h5", {"Z": 40}, seed=2, batch_size=50, **FAST)
    f2 = generate_pythia(tmp_path / "b.h5", {"Z": 40}, seed=2, batch_size=50, **FAST)
    f3 = generate_pythia(tmp_path / "c.h5", {"Z": 40}, seed=3, batch_size=50, **FAST)
    e1, e2, e3 = read_events(f1), read_events(f2), read_events(f3)
    assert np.array_equal(e1.particles, e2.particles)
    assert not np.array_equal(e1.particles, e3.particles)


def test_workers_do_not_change_the_file(tmp_path):
    counts = {"W": 30, "Z": 30}
    serial = generate_pythia(tmp_path / "s.h5", counts, seed=4, batch_size=40, **FAST)
    parallel = generate_pythia(
        tmp_path / "p.h5", counts, seed=4, batch_size=40, mpi=False, workers=2, progress=False
    )
    a, b = read_events(serial), read_events(parallel)
    assert np.array_equal(a.particles, b.particles) and np.array_equal(a.labels, b.labels)
    for p in counts:  # identical bookkeeping (CPU times aside)
        pa, pb = a.metadata["progress"][p], b.metadata["progress"][p]
        assert {k: v for k, v in pa.items() if k != "cpu_seconds"} == {
            k: v for k, v in pb.items() if k != "cpu_seconds"
        }


def test_interrupted_file_resumes_identically(tmp_path, monkeypatch):
    counts = {"W": 60, "Z": 60}
    kw = {"seed": 8, "batch_size": 50, **FAST}
    reference = read_events(generate_pythia(tmp_path / "ref.h5", counts, **kw))

    calls = {"n": 0}
    original = pythia.EventWriter.set_metadata

    def crash_after_append(self, md):
        calls["n"] += 1
        if calls["n"] == 4:  # the batch was appended but not committed
            raise KeyboardInterrupt
        original(self, md)

    monkeypatch.setattr(pythia.EventWriter, "set_metadata", crash_after_append)
    path = tmp_path / "cut.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_pythia(path, counts, **kw)
    monkeypatch.undo()
    with EventFile(path) as f:
        partial = len(f)
        committed = sum(v["kept"] for v in f.metadata["progress"].values())
    assert 0 < committed < partial < 120  # uncommitted rows exist and must be dropped
    generate_pythia(path, counts, **kw)
    resumed = read_events(path)
    assert np.array_equal(resumed.particles, reference.particles)
    assert np.array_equal(resumed.labels, reference.labels)
    assert resumed.metadata["n_kept"] == counts
    # a finished file is left alone; extending a process continues its stream
    generate_pythia(path, counts, **kw)
    assert len(read_events(path)) == 120
    short = generate_pythia(tmp_path / "short.h5", {"Z": 25}, **kw)
    generate_pythia(short, {"Z": 60}, **kw)
    assert np.array_equal(read_events(short).particles, reference.select("Z").particles)


def test_resume_refuses_other_configuration(tmp_path):
    path = generate_pythia(tmp_path / "x.h5", {"Z": 10}, seed=1, batch_size=50, **FAST)
    with pytest.raises(ValueError, match="seed"):
        generate_pythia(path, {"Z": 20}, seed=2, batch_size=50, **FAST)
    with pytest.raises(FileExistsError):
        generate_pythia(path, {"Z": 20}, seed=1, batch_size=50, resume=False, **FAST)
    with pytest.raises(ValueError, match="more than"):
        generate_pythia(path, {"Z": 5}, seed=1, batch_size=50, **FAST)
    generate_pythia(path, {"Z": 12}, seed=2, batch_size=50, overwrite=True, **FAST)
    assert read_events(path).metadata["seed"] == 2


# ---------------------------------------------------------------- registry and errors
def test_registry_and_custom_process(tmp_path):
    assert tuple(processes.PROCESS_REGISTRY)[:8] == layout.PROCESSES
    with pytest.raises(ValueError, match="unknown process"):
        generate_pythia(tmp_path / "u.h5", {"Higgsino": 3}, **FAST)
    with pytest.raises(ValueError, match="space-separated"):
        processes.register_process("bad", ["23:onIfAny = 11,13"], "comma list")
    with pytest.raises(ValueError, match="already registered"):
        processes.register_process("W", ["WeakSingleBoson:ffbar2W = on"], "dup")
    processes.register_process(
        "Zmumu_test",
        ["WeakSingleBoson:ffbar2gmZ = on", "PhaseSpace:mHatMin = 60", "23:onMode = off",
         "23:onIfAny = 13"],
        "Z/gamma* -> mu mu (test)",
    )  # fmt: skip
    processes.register_process("typo_test", ["WeakSingleBoson:ffbar2Zed = on"], "typo")
    try:
        ev = read_events(
            generate_pythia(tmp_path / "c.h5", {"Zmumu_test": 20}, batch_size=50, **FAST)
        )
        assert ev.process_names == (*layout.PROCESSES, "Zmumu_test")
        assert ev.counts() == {"Zmumu_test": 20}
        assert ev.multiplicity(layout.MUON_SLOTS).min() >= 1
        assert ev.multiplicity(layout.ELECTRON_SLOTS).max() == 0
        with pytest.raises(ValueError, match="does not recognise"):
            generate_pythia(tmp_path / "t.h5", {"typo_test": 3}, **FAST)
    finally:
        processes.unregister_process("Zmumu_test")
        processes.unregister_process("typo_test")


def test_missing_dependency_has_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pythia8mc", None)
    with pytest.raises(ImportError, match="pip install"):
        pythia.check_dependencies()


# ---------------------------------------------------------------- mixtures
def test_black_box_hides_truth_in_side_file(tmp_path):
    bb, truth = generate_black_box(
        tmp_path / "bb.h5",
        tmp_path / "truth.h5",
        40,
        "Ato4l",
        n_signal=10,
        fractions={"W": 0.5, "Z": 0.5},
        seed=3,
        batch_size=100,
        **FAST,
    )
    ev = read_events(bb)
    assert len(ev) == 50 and (ev.labels == -1).all()
    assert np.array_equal(np.sort(ev.event_ids), np.arange(50))
    assert "signal" not in ev.metadata and "requested_counts" not in ev.metadata
    labels = load_labels(truth)
    with h5py.File(truth) as f:
        names = tuple(str(n) for n in f["labels"].attrs["process_names"])
        assert np.array_equal(f["EvtId"][()], ev.event_ids)
    counts = {names[i]: int(c) for i, c in zip(*np.unique(labels, return_counts=True))}
    assert counts == {"W": 20, "Z": 20, "Ato4l": 10}
    work = read_events(tmp_path / "bb.h5.work.h5")
    assert len(set(labels[:10].tolist())) > 1  # shuffled, not blocked by process
    sig = work.select("Ato4l").particles
    assert np.array_equal(np.sort(ev.particles[labels == 4][:, 0, 0]), np.sort(sig[:, 0, 0]))


# ---------------------------------------------------------------- reconstruction unit
def test_reconstruct_handmade_event_without_smearing():
    exact = RecoSettings(
        electron_res_const=0,
        electron_res_stochastic=0,
        muon_res_const=0,
        muon_res_linear=0,
        jet_res_const=0,
        jet_res_stochastic=0,
        met_resolution=0,
    )

    def p(pid, pt, eta, phi, m=0.0):
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        return {"id": pid, "px": px, "py": py, "pz": pz, "e": np.sqrt(px**2 + py**2 + pz**2 + m**2)}

    event = [
        p(11, 40.0, 0.5, 0.1),  # accepted electron, triggers
        p(-13, 10.0, 2.5, 1.0),  # muon beyond |eta| 2.1: goes into the jets
        p(12, 30.0, 0.0, -2.0),  # neutrino: MET
        p(211, 20.0, -1.0, 2.0),  # a jet of two pions
        p(-211, 10.0, -1.05, 2.05),
        p(22, 5.0, 5.5, 0.0),  # forward photon beyond the calorimeter: MET
    ]
    no_trigger = [p(11, 20.0, 0.0, 0.0), p(211, 50.0, 0.0, 3.0)]
    ak = pytest.importorskip("awkward")  # fastjet's event format
    parts = ak.Array([no_trigger, event])
    out, sel = reconstruct(parts, np.random.default_rng(0), exact)
    assert sel.tolist() == [1] and out.shape == (1, 19, 3)
    ev = out[0]
    np.testing.assert_allclose(ev[1], [40.0, 0.5, 0.1], rtol=1e-5)
    assert (ev[2:9, 0] == 0).all()  # one electron, no muon
    assert ev[9, 0] == pytest.approx(30.0, rel=0.01) and ev[9, 1] == pytest.approx(-1.02, abs=0.02)
    assert ev[10, 0] == 0  # the 10 GeV muon jet is below 15 GeV
    met = np.array([30 * np.cos(-2.0) + 5.0, 30 * np.sin(-2.0)])
    assert ev[0, 0] == pytest.approx(np.hypot(*met), rel=1e-5)
    assert ev[0, 2] == pytest.approx(np.arctan2(met[1], met[0]), abs=1e-5)
    with pytest.raises(ValueError, match="jet_radius"):
        RecoSettings(jet_radius=0)
