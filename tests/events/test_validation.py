"""Physically impossible particle values are refused where events enter contrastx."""

import h5py
import numpy as np
import pytest
from contrastx.events import EventFile, Events, check_particles, layout, read_events
from contrastx.events.preprocessing import Preprocessor


def valid(n: int = 4) -> np.ndarray:
    """A few valid events: MET, one muon and one jet at the edges of the allowed ranges."""
    p = np.zeros((n, 19, 3), np.float32)
    p[:, 0] = [25.0, 0.0, -np.pi]  # MET
    p[:, 5] = [30.0, layout.MUON_ETA_MAX, np.float32(np.pi)]  # pi rounded up to float32
    p[:, 9] = [40.0, -layout.JET_ETA_MAX, 1.0]
    return p


def with_value(event: int, slot: int, feature: int, value: float) -> np.ndarray:
    p = valid()
    p[event, slot, feature] = value
    return p


def test_valid_edges_pass():
    assert float(np.float32(np.pi)) > np.pi  # the case the phi tolerance is there for
    assert len(Events(valid())) == 4
    p = valid()
    p[:, 1] = [10.0, layout.ELECTRON_ETA_MAX + 0.5 * layout.ETA_TOLERANCE, 0.0]
    assert len(Events(p)) == 4


@pytest.mark.parametrize(
    ("event", "slot", "feature", "value", "message"),
    [
        (2, 5, layout.PT, -3.5, r"negative pT \(first at event 2, slot 5 \(mu1\): pT = -3\.5\)"),
        (1, 9, layout.PT, -0.25, r"negative pT \(first at event 1, slot 9 \(j1\): pT = -0\.25;"),
        (
            3,
            5,
            layout.ETA,
            2.5,
            r"beyond the muon acceptance .*event 3, slot 5 \(mu1\): eta = 2\.5",
        ),
        (
            0,
            9,
            layout.ETA,
            -4.5,
            r"beyond the jet acceptance .*event 0, slot 9 \(j1\): eta = -4\.5",
        ),
        (1, 0, layout.ETA, 0.5, r"non-zero MET eta .*event 1, slot 0 \(MET\): eta = 0\.5\)"),
        (2, 9, layout.PHI, 3.15, r"phi outside \[-pi, pi\] .*event 2, slot 9 \(j1\): phi = 3\.15"),
        (1, 0, layout.PHI, -6.0, r"phi outside .*event 1, slot 0 \(MET\): phi = -6\)"),
        (
            3,
            12,
            layout.ETA,
            0.7,
            r"padded slot .*not all zero .*event 3, slot 12 \(j4\): eta = 0\.7",
        ),
        (0, 2, layout.PHI, 1.5, r"padded slot .*not all zero .*event 0, slot 2 \(e2\): phi = 1\.5"),
    ],
)
def test_impossible_values_are_refused(event, slot, feature, value, message):
    p = with_value(event, slot, feature, value)
    if slot == 9 and feature == layout.PT and value == -0.25:
        p[3, 9, layout.PT] = -1.0  # a second one: the message counts them
    with pytest.raises(ValueError, match=message):
        Events(p)
    with pytest.raises(ValueError, match=message):
        check_particles(p)
    with pytest.raises(ValueError, match=message):
        Preprocessor().fit(p)  # every array entry point shares the check


def test_first_bad_event_wins_across_checks():
    p = with_value(3, 5, layout.PT, -1.0)
    p[1, 9, layout.PHI] = 4.0
    with pytest.raises(ValueError, match=r"phi outside .*first at event 1"):
        Events(p)


def test_block_by_block_pass_gives_the_same_verdict_and_message(monkeypatch):
    from contrastx.events import container

    monkeypatch.setattr(container, "_CHECK_BLOCK", 3)  # 12 events: blocks 0-2, 3-5, ...
    p = np.concatenate([valid(), valid(), valid()])
    assert check_particles(p).shape == (12, 19, 3)
    p[7, 9, layout.ETA] = 9.0
    with pytest.raises(ValueError, match=r"beyond the jet acceptance .*first at event 7, slot 9"):
        check_particles(p)
    p[10, 5, layout.PHI] = np.nan  # a NaN anywhere is named before any impossible value
    with pytest.raises(ValueError, match=r"NaN or inf \(first at event 10, slot 5, feature 2\)"):
        check_particles(p)


def write_adc2021(path, particles):
    out = np.zeros((*particles.shape[:2], 4), np.float32)
    out[..., :3] = particles
    out[..., 3] = np.where(particles[..., 0] > 0, layout.SLOT_CLASS_IDS, 0)
    with h5py.File(path, "w") as f:
        f["Particles"] = out


def test_file_messages_name_the_file_and_the_event_in_the_file(tmp_path):
    p = np.concatenate([valid(), valid(), with_value(2, 5, layout.PT, -7.0)])  # event 10
    path = tmp_path / "neg.h5"
    write_adc2021(path, p)
    with pytest.raises(ValueError, match=r"neg\.h5:Particles has a negative pT.*event 10, slot 5"):
        read_events(path)
    with EventFile(path) as f:
        assert len(f.read(0, 8)) == 8
        with pytest.raises(ValueError, match=r"neg\.h5:Particles .*first at event 10"):
            list(f.iter_chunks(3))
    p = np.concatenate([valid(), with_value(0, 0, layout.PHI, np.nan)])
    write_adc2021(path, p)
    with EventFile(path) as f, pytest.raises(ValueError, match=r"NaN or inf.*at event 4, slot 0"):
        f.read(2, 6)


def test_generators_pass(make_events):
    from contrastx.events.generators import generate_sample

    ev = generate_sample({p: 300 for p in layout.PROCESSES}, seed=2)
    check_particles(ev.particles)  # the generator's events are in range
    assert len(make_events(300, seed=4)) == 300
