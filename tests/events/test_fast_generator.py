"""Physics and contract checks of the fast parametric generator (small samples)."""

import subprocess
import sys
import tempfile

import numpy as np
import pytest
from contrastx.events import Events, layout
from contrastx.events.generators import (
    FAST_GENERATOR_VERSION,
    fast,
    generate_process,
    generate_sample,
    mixture_counts,
)
from contrastx.events.kinematics import invariant_mass, transverse_mass

N = 3000
SEED = 11


@pytest.fixture(scope="module")
def samples() -> dict[str, Events]:
    return {p: generate_process(p, N, seed=SEED) for p in layout.PROCESSES}


def lepton_pts(ev: Events) -> np.ndarray:
    return np.concatenate(
        [ev.particles[:, layout.ELECTRON_SLOTS, 0], ev.particles[:, layout.MUON_SLOTS, 0]], axis=1
    )


def leading_lepton(ev: Events) -> tuple[np.ndarray, np.ndarray]:
    """pT and phi of the leading electron or muon of every event."""
    p = ev.particles
    slot = np.where(p[:, 1, 0] >= p[:, 5, 0], 1, 5)
    rows = np.arange(len(ev))
    return p[rows, slot, 0], p[rows, slot, 2]


def sorted_rows(x: np.ndarray) -> np.ndarray:
    """Rows of an (N, 19, 3) array in a canonical order (by MET, a continuous variable)."""
    return x[np.argsort(x[:, 0, 0], kind="stable")]


@pytest.mark.parametrize("process", layout.PROCESSES)
def test_contract_and_selection(samples, process):
    ev = samples[process]
    assert len(ev) == N and ev.particles.dtype == np.float32
    assert ev.process_names == layout.PROCESSES
    assert (ev.labels == layout.PROCESS_LABELS[process]).all()
    assert ev.metadata["generator"] == "contrastx.fast"
    assert ev.metadata["generator_version"] == FAST_GENERATOR_VERSION
    assert ev.metadata["seed"] == SEED and ev.metadata["process"] == process
    assert 0 < ev.metadata["filter_efficiency"] <= 1
    assert ev.metadata["n_generated"] * ev.metadata["filter_efficiency"] >= N
    # ADC2021 selection: an electron or muon above 23 GeV in every event
    assert (lepton_pts(ev).max(axis=1) > layout.LEPTON_TRIGGER_PT).all()


@pytest.mark.parametrize("process", layout.PROCESSES)
def test_layout_padding_ordering_acceptance(samples, process):
    p = samples[process].particles
    assert (p[:, 0, 1] == 0).all()  # MET eta
    assert (p[:, 0, 0] > 0).all()
    phi = p[..., 2].astype(np.float64)
    assert (phi >= -np.pi).all() and (phi < np.pi).all()
    cuts = {
        "e": (layout.ELECTRON_SLOTS, 3.0, 3.0),
        "mu": (layout.MUON_SLOTS, 3.0, 2.1),
        "jet": (layout.JET_SLOTS, 15.0, 4.0),
    }
    for group, (slots, pt_min, eta_max) in cuts.items():
        g = p[:, slots]
        pt = g[..., 0]
        filled = pt > 0
        assert (np.diff(pt, axis=1) <= 0).all(), f"{group} not pT-ordered"
        assert (g[~filled] == 0).all(), f"{group} padding not zero"
        # padding only after the filled slots
        assert (filled[:, 1:] <= filled[:, :-1]).all()
        assert (pt[filled] > pt_min).all() and (np.abs(g[..., 1][filled]) < eta_max).all()


def test_z_dilepton_mass_peaks_at_mz(samples):
    ev = samples["Z"]
    ee = ev.multiplicity(layout.ELECTRON_SLOTS) >= 2
    mm = ev.multiplicity(layout.MUON_SLOTS) >= 2
    assert ee.mean() > 0.2 and mm.mean() > 0.2
    mll = np.concatenate(
        [invariant_mass(ev.particles[ee], [1, 2]), invariant_mass(ev.particles[mm], [5, 6])]
    )
    assert abs(np.median(mll) - 91.19) < 5.0
    assert np.mean(np.abs(mll - 91.19) < 10) > 0.6


def test_w_transverse_mass_edge(samples):
    ev = samples["W"]
    pt, phi = leading_lepton(ev)
    m_t = transverse_mass(pt, phi, ev.particles[:, 0, 0], ev.particles[:, 0, 2])
    assert 60.0 < np.percentile(m_t, 95) < 95.0
    assert np.mean(m_t > 100.0) < 0.02
    assert 50.0 < np.median(m_t) < 85.0  # a Jacobian peak, not a falling spectrum


def test_ato4l_four_lepton_mass_near_50(samples):
    ev = samples["Ato4l"]
    n_lep = ev.multiplicity(layout.ELECTRON_SLOTS) + ev.multiplicity(layout.MUON_SLOTS)
    four = n_lep == 4
    assert four.mean() > 0.2
    m4l = invariant_mass(ev.particles[four], slice(1, 9))
    assert abs(np.median(m4l) - 50.0) < 8.0
    # the lepton pairs come from off-shell Z's: no Z peak anywhere
    assert (m4l < 70).mean() > 0.9


def test_ttbar_jets_and_met(samples):
    tt, z = samples["ttbar"], samples["Z"]
    assert tt.multiplicity(layout.JET_SLOTS).mean() > 4.0
    assert tt.particles[:, 0, 0].mean() > z.particles[:, 0, 0].mean() + 20.0
    assert tt.multiplicity(layout.JET_SLOTS).mean() > z.multiplicity(layout.JET_SLOTS).mean() + 2


def test_process_signatures(samples):
    met = {p: ev.particles[:, 0, 0].mean() for p, ev in samples.items()}
    nj = {p: ev.multiplicity(layout.JET_SLOTS).mean() for p, ev in samples.items()}
    eff = {p: ev.metadata["filter_efficiency"] for p, ev in samples.items()}
    # neutrinos: W, ttbar and the tau signals have real MET, Z and A -> 4l do not
    for p in ("W", "ttbar", "hch_taunu", "LQ_btau"):
        assert met[p] > 2 * met["Z"], p
    assert met["Ato4l"] < met["W"] / 2
    # QCD: soft non-isolated leptons from b decays, most events fail the 23 GeV cut
    assert eff["QCD"] < eff["W"] / 2
    assert nj["QCD"] > nj["W"] + 0.5
    # LQ pairs give two b jets (plus tau jets): more jets than W
    assert nj["LQ_btau"] > nj["W"] + 1.5


def test_same_seed_same_events_different_seed_different():
    a = generate_process("ttbar", 200, seed=3)
    b = generate_process("ttbar", 200, seed=3)
    c = generate_process("ttbar", 200, seed=4)
    assert np.array_equal(a.particles, b.particles)
    assert not np.array_equal(a.particles, c.particles)
    s1 = generate_sample({"W": 150, "Z": 50}, seed=9)
    s2 = generate_sample({"Z": 50, "W": 150}, seed=9)  # mapping order is irrelevant
    s3 = generate_sample({"W": 150, "Z": 50}, seed=10)
    assert np.array_equal(s1.particles, s2.particles) and np.array_equal(s1.labels, s2.labels)
    assert not np.array_equal(s1.particles, s3.particles)


@pytest.mark.parametrize("chunk_size", [10_000, 300])
def test_process_streams_are_independent(chunk_size):
    alone = generate_sample({"W": 200}, seed=5, chunk_size=chunk_size)
    mixed = generate_sample({"W": 200, "QCD": 100, "hch_taunu": 30}, seed=5, chunk_size=chunk_size)
    assert mixed.counts() == {"W": 200, "QCD": 100, "hch_taunu": 30}
    w_alone = sorted_rows(alone.particles)
    assert np.array_equal(w_alone, sorted_rows(mixed.select("W").particles))
    # generate_process with an integer seed uses the same per-batch streams
    single = generate_process("W", 200, seed=5, chunk_size=chunk_size)
    assert np.array_equal(w_alone, sorted_rows(single.particles))
    assert single.metadata["n_generated"] == alone.metadata["n_generated"]["W"]
    # one batch of 1000 events is enough; batches of 300: the 200 W events need several
    generated, size = alone.metadata["n_generated"]["W"], min(chunk_size, 1000)
    assert generated % size == 0 and (generated > size) == (chunk_size == 300)
    # and the sample is shuffled, not blocked by process
    assert len(set(mixed.labels[:50].tolist())) > 1


def test_selection_takes_batches_in_order_whatever_order_they_arrive():
    # The events, n_generated and the efficiency depend on the batches, not on the
    # order in which (parallel) workers send them back; batches after the one that
    # completes the request are dropped.
    rng = np.random.default_rng(4)
    batches = [rng.random((int(k), 19, 3)).astype(np.float32) for k in (3, 0, 5, 2, 4, 6)]

    def run(order):
        out = np.full((9, 19, 3), np.nan, dtype=np.float32)

        def write(start, rows):
            assert np.isnan(out[start : start + len(rows)]).all()  # each row written once
            out[start : start + len(rows)] = rows

        sel = fast._Selection("W", 9, 10, write)
        taken = [sel.add(i, batches[i]) for i in order]
        return out, sel, taken

    expected = np.concatenate(batches)[:9]
    for order in ([0, 1, 2, 3, 4, 5], [5, 3, 2, 0, 4, 1], [1, 2, 3, 0, 5, 4]):
        out, sel, taken = run(order)
        assert np.array_equal(out, expected), order
        assert sel.done and (sel.generated, sel.passed) == (40, 10)  # batches 0-3 used
        assert sum(taken) == 9
    # a batch arriving after the request is complete changes nothing
    assert sel.add(5, batches[5]) == 0 and (sel.generated, sel.passed) == (40, 10)


def test_selection_gives_up_when_nothing_passes():
    sel = fast._Selection("QCD", 2, 10, lambda start, rows: None)
    empty = np.zeros((0, 19, 3), dtype=np.float32)
    with pytest.raises(RuntimeError, match="no QCD event passes the lepton selection"):
        for i in range(1002):
            sel.add(i, empty)
    assert sel.generated == 1001 * 10


def test_generator_seed_and_small_chunks():
    rng = np.random.default_rng(0)
    ev = generate_process("QCD", 120, seed=rng, chunk_size=300)
    assert len(ev) == 120 and "seed" not in ev.metadata
    assert ev.metadata["n_generated"] >= 120 and ev.metadata["n_generated"] % 300 == 0
    assert len(generate_process("Z", 0)) == 0


def test_sample_metadata_and_progress(capsys):
    ev = generate_sample({"W": 40, "Ato4l": 10, "Z": 0}, seed=2, progress=True, chunk_size=5000)
    assert ev.counts() == {"W": 40, "Ato4l": 10}
    md = ev.metadata
    assert md["generator"] == "contrastx.fast" and md["generator_version"] == FAST_GENERATOR_VERSION
    assert md["seed"] == 2
    assert md["requested_counts"] == {"W": 40, "Ato4l": 10, "Z": 0}
    assert set(md["filter_efficiency"]) == {"W", "Ato4l"}
    assert all(0 < f <= 1 for f in md["filter_efficiency"].values())
    assert "50/50" in capsys.readouterr().err
    assert len(generate_sample({})) == 0


def test_mixture_counts():
    counts = mixture_counts(100_000, layout.ADC2021_MIXTURE)
    assert sum(counts.values()) == 100_000
    assert counts == {"W": 59_200, "QCD": 33_800, "Z": 6_700, "ttbar": 300}
    for n in (0, 1, 7, 999, 12345):
        c = mixture_counts(n, layout.ADC2021_MIXTURE)
        assert sum(c.values()) == n
        for k, f in layout.ADC2021_MIXTURE.items():
            assert abs(c[k] - n * f) < 1.0
    # largest remainder, normalisation, ties to the first listed, zero fractions kept
    assert mixture_counts(10, {"W": 0.592, "QCD": 0.338, "Z": 0.067, "ttbar": 0.003}) == {
        "W": 6,
        "QCD": 3,
        "Z": 1,
        "ttbar": 0,
    }
    assert mixture_counts(3, {"W": 2, "Z": 1}) == {"W": 2, "Z": 1}
    assert mixture_counts(1, {"Z": 1, "W": 1}) == {"Z": 1, "W": 0}
    assert mixture_counts(5, {"W": 1.0, "Z": 0.0}) == {"W": 5, "Z": 0}


@pytest.mark.parametrize(
    ("fractions", "match"),
    [
        ({"W": 0.5, "Zprime": 0.5}, "unknown process 'Zprime'.*hch_taunu"),
        ({"W": 0.0, "Z": 0.0}, "at least one positive"),
        ({}, "at least one positive"),
        ({"W": -0.1, "Z": 1.0}, ">= 0"),
        ({"W": float("nan")}, ">= 0"),
    ],
)
def test_mixture_counts_errors(fractions, match):
    with pytest.raises(ValueError, match=match):
        mixture_counts(10, fractions)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown process 'Zprime'; known processes: W, QCD"):
        generate_process("Zprime", 10)
    with pytest.raises(ValueError, match="unknown process 'gluino'"):
        generate_sample({"W": 10, "gluino": 5})
    with pytest.raises(ValueError, match=">= 0"):
        generate_process("W", -1)
    with pytest.raises(ValueError, match=">= 0"):
        generate_sample({"W": -3})
    with pytest.raises(ValueError, match=">= 0"):
        mixture_counts(-1, {"W": 1})
    with pytest.raises(TypeError, match="integer"):
        generate_process("W", 2.5)


def test_worker_task_spills_its_batches_to_a_file(tmp_path):
    counts, parts = fast._batches("Z", 4, 2, 3, 500)
    assert counts == [len(p) for p in parts] and len(parts) == 3
    # the same batches whatever the task they belong to
    assert fast._batches("Z", 4, 3, 1, 500)[1][0].tobytes() == parts[1].tobytes()
    spill = tmp_path / "z.f32"
    assert fast._batches("Z", 4, 2, 3, 500, str(spill)) == (counts, None)
    assert spill.read_bytes() == b"".join(p.tobytes() for p in parts)
    # a file that cannot be written: the batches come back directly
    missing = str(tmp_path / "no" / "z.f32")
    again = fast._batches("Z", 4, 2, 3, 500, missing)
    assert again[0] == counts and all(a.tobytes() == b.tobytes() for a, b in zip(again[1], parts))


def test_worker_init_keeps_freed_memory_on_linux():
    # In a child process: the setting lasts for the life of the process it is made in.
    code = "from contrastx.events.generators import fast; print(fast._worker_init())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == str(sys.platform.startswith("linux"))


def test_parallel_batches_give_the_bitwise_same_sample(capsys, monkeypatch, tmp_path):
    # A small mixture in batches of at most 1000 events on two worker processes: the
    # batches of one process are shared among the workers and come back in any order;
    # particles, labels and metadata are bitwise those of the serial run.
    counts = {"Z": 600, "W": 2000, "QCD": 300, "ttbar": 0, "Ato4l": 250}
    serial = generate_sample(counts, seed=SEED, chunk_size=1000)
    assert serial.metadata["n_generated"]["W"] >= 4000  # several batches per process

    def not_here(*args):
        raise AssertionError("a batch was generated in the calling process")

    # The spawned workers import the module afresh; only this process sees the patch.
    monkeypatch.setattr(fast, "_batch", not_here)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the results pass
    parallel = generate_sample(counts, seed=SEED, chunk_size=1000, workers=2, progress=True)
    assert not any(tmp_path.iterdir())  # nothing left behind
    assert parallel.particles.dtype == serial.particles.dtype
    assert parallel.particles.tobytes() == serial.particles.tobytes()
    assert np.array_equal(parallel.labels, serial.labels)
    assert parallel.metadata == serial.metadata
    for key in ("requested_counts", "n_generated", "filter_efficiency"):
        assert list(parallel.metadata[key]) == list(serial.metadata[key])
    assert "3150/3150" in capsys.readouterr().err

    # One process whose efficiency is far below the one that sizes its batches: it
    # needs many more batches than planned, the same ones in serial and in parallel.
    monkeypatch.setitem(fast._PRIOR_EFFICIENCY, "W", 1.0)
    lone = generate_sample({"W": 3000}, seed=3, chunk_size=1000, workers=2)
    monkeypatch.undo()
    monkeypatch.setitem(fast._PRIOR_EFFICIENCY, "W", 1.0)
    lone_serial = generate_sample({"W": 3000}, seed=3, chunk_size=1000)
    monkeypatch.undo()
    assert lone.particles.tobytes() == lone_serial.particles.tobytes()
    assert lone.metadata == lone_serial.metadata
    assert lone.metadata["n_generated"]["W"] >= 6000  # twice the 3300 events first planned
    # more workers than batches (one batch: generated here) is the same too
    one = generate_sample({"W": 300}, seed=3, workers=4)
    assert one.particles.tobytes() == generate_sample({"W": 300}, seed=3).particles.tobytes()


@pytest.mark.parametrize(
    ("workers", "error"), [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_bad_workers_are_refused(workers, error):
    with pytest.raises(error, match=r"workers must be an integer >= 1"):
        generate_sample({"W": 10}, workers=workers)
