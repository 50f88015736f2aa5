import numpy as np
import pytest
from contrastx.events import Events, layout
from contrastx.events.container import UNKNOWN_LABEL


def test_layout_constants():
    assert layout.SLOT_NAMES[0] == "MET" and layout.SLOT_NAMES[18] == "j10"
    assert list(layout.SLOT_CLASS_IDS[:6]) == [1, 2, 2, 2, 2, 3]
    assert (layout.SLOT_CLASS_IDS[layout.JET_SLOTS] == 4).all()
    assert layout.PROCESSES[:4] == ("W", "QCD", "Z", "ttbar")
    assert abs(sum(layout.ADC2021_MIXTURE.values()) - 1) < 1e-9
    with pytest.raises(ValueError, match="unknown process name 'Zprime'"):
        layout.process_label("Zprime")


def test_shape_errors():
    with pytest.raises(ValueError, match=r"shape \(N, 19, 3\)"):
        Events(np.zeros((4, 19, 4)))
    with pytest.raises(ValueError, match=r"shape \(N, 19, 3\)"):
        Events(np.zeros((4, 57)))
    bad = np.zeros((3, 19, 3))
    bad[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf.*event 2, slot 5, feature 1"):
        Events(bad)
    with pytest.raises(ValueError, match="labels must have shape"):
        Events(np.zeros((3, 19, 3)), labels=[0, 1])
    with pytest.raises(ValueError, match=r"labels must lie in \[-1, 7\]"):
        Events(np.zeros((2, 19, 3)), labels=[0, 8])
    with pytest.raises(ValueError, match="weights must be finite"):
        Events(np.zeros((2, 19, 3)), weights=[1.0, -1.0])


def test_defaults_and_slicing(events):
    assert events.particles.dtype == np.float32 and events.particles.flags.c_contiguous
    unl = Events(np.zeros((3, 19, 3)))
    assert (unl.labels == UNKNOWN_LABEL).all() and unl.counts() == {"unknown": 3}
    sub = events[10:20]
    assert len(sub) == 10 and np.array_equal(sub.particles, events.particles[10:20])
    mask = events.labels == 2
    assert np.array_equal(events[mask].labels, events.labels[mask])
    assert len(events[3]) == 1 and len(events[-1]) == 1
    assert np.array_equal(events[-1].particles, events.particles[-1:])


def test_select_and_counts(events):
    c = events.counts()
    assert sum(c.values()) == len(events)
    z = events.select("Z")
    assert len(z) == c["Z"] and (z.labels == events.label_of("Z")).all()
    both = events.select(["W", "Z"])
    assert len(both) == c["W"] + c["Z"]
    with pytest.raises(ValueError, match="unknown process name 'Wprime'"):
        events.select("Wprime")
    with pytest.raises(ValueError, match="empty selection"):
        events.select("Ato4l")


def test_concatenate_remaps_labels():
    a = Events(np.zeros((2, 19, 3)), labels=[0, 1], process_names=("bkg", "sig"))
    ones = np.ones((3, 19, 3))
    ones[:, 0, 1] = 0  # MET has eta = 0
    b = Events(ones, labels=[1, 0, -1], process_names=("sig2", "bkg"))
    ab = Events.concatenate([a, b])
    assert ab.process_names == ("bkg", "sig", "sig2")
    assert ab.labels.tolist() == [0, 1, 0, 2, -1]
    assert ab.counts() == {"unknown": 1, "bkg": 2, "sig": 1, "sig2": 1}


def test_adc2021_particles_class_column(make_events):
    ev = make_events(50, seed=3)
    a = ev.adc2021_particles()
    assert a.shape == (50, 19, 4)
    assert np.array_equal(a[..., :3], ev.particles)
    filled = ev.object_mask
    expected = np.where(filled, layout.SLOT_CLASS_IDS[None, :], 0)
    expected[:, 0] = 1
    assert np.array_equal(a[..., 3], expected)


def test_summary_mentions_processes(events):
    s = events.summary()
    assert f"{len(events)} events" in s and "ttbar" in s and "<n_jet>" in s
