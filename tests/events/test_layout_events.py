"""Events in any layout: validation by the layout, containers, and files that record it."""

import h5py
import numpy as np
import pytest
from contrastx.events import EventFile, Events, EventWriter, check_particles, read_events
from contrastx.events.container import check_event_features
from contrastx.events.io import ADC2021_NAMES, LAYOUT_ATTR
from contrastx.events.layout import (
    ADC2021,
    DIPHOTON,
    EventFeature,
    EventLayout,
    ObjectFeature,
    ObjectGroup,
)

from .conftest import random_layout_events

MINE = EventLayout(
    name="mine",
    groups=(
        ObjectGroup("jet", "j", 3, eta_max=2.5),
        ObjectGroup("photon", "y", 1, eta_max=2.37, encoder=False),
        ObjectGroup("MET", "MET", 1, eta_max=0),
    ),
    features=(
        ObjectFeature("pt", log=True),
        ObjectFeature("eta"),
        ObjectFeature("phi"),
        ObjectFeature("mass", log=True),
        ObjectFeature("btag", low=0, high=1),
        ObjectFeature("is_jet", one_hot="jet"),
        ObjectFeature("is_met", one_hot="MET"),
    ),
    event_features=(EventFeature("ht", log=True), EventFeature("m_y", encoder=False)),
)


def diphoton(n=40, seed=0):
    return random_layout_events(DIPHOTON, n, seed=seed)


def test_random_events_are_valid_in_every_layout():
    for lay in (ADC2021, DIPHOTON, MINE):
        ev = random_layout_events(lay, 200, seed=3)
        assert ev.layout is lay and ev.particles.shape == (200, lay.n_objects, lay.n_features)
        assert ev.event_features.shape == (200, lay.n_event_features)
        check_particles(ev.particles, layout=lay)


def test_adc2021_events_have_no_event_features(events):
    assert events.layout is ADC2021 and events.event_features.shape == (len(events), 0)
    with pytest.raises(ValueError, match=r"event_features must have shape \(2, 0\)"):
        Events(np.zeros((2, 19, 3)), event_features=np.zeros((2, 1)))


def test_a_diphoton_array_is_not_an_adc2021_one():
    ev = diphoton()
    with pytest.raises(ValueError, match=r"shape \(N, 19, 3\) = \(events, objects, \(pT, eta"):
        Events(ev.particles)
    with pytest.raises(
        ValueError, match=r"shape \(N, 13, 12\) = \(events, objects, \(pT, eta, phi, mass, btag"
    ):
        check_particles(np.zeros((3, 19, 3)), layout=DIPHOTON)
    with pytest.raises(
        ValueError, match=r"layout 'diphoton' has event features \(n_jets, ht, m_gg"
    ):
        Events(ev.particles, layout=DIPHOTON)
    with pytest.raises(TypeError, match="layout must be an EventLayout"):
        Events(ev.particles, layout="diphoton", event_features=ev.event_features)


def set_at(p, event, slot, feature, value):
    p = p.copy()
    p[event, slot, DIPHOTON.feature_index(feature)] = value
    return p


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a filled jet after padding: j1 empty, j2 filled
        (
            "gap",
            r"jet objects out of order \(sorted by decreasing pT, padding last\) "
            r"\(first at event 1, slot 1 \(j2\)",
        ),
        ("rising", r"jet objects out of order .*event 1, slot 1 \(j2\): pT = 99"),
        (
            "onehot",
            r"one-hot type column .*\(jet objects have is_jet = 1 and the other.*is_jet = 0",
        ),
        ("photon_onehot", r"photon objects have every type column 0.*slot 11 \(y1\): is_muon = 1"),
        ("btag", r"btag outside \[0, 1\] .*event 1, slot 0 \(j1\): btag = 1\.5"),
        ("mass", r"a negative mass .*event 1, slot 0 \(j1\): mass = -2"),
        ("tau", r"a negative tau21 .*slot 0 \(j1\): tau21 = -0\.1"),
        ("met_eta", r"non-zero MET eta \(MET has eta = 0\) .*slot 10 \(MET\)"),
        ("electron_eta", r"beyond the electron acceptance \|eta\| < 2\.47 .*slot 6 \(e1\)"),
        ("padding", r"padded slot \(pT = 0\) that is not all zero .*slot 3 \(j4\): tau32 = 0\.5"),
    ],
)
def test_validation_follows_the_layout(change, message):
    ev = diphoton(seed=5)
    p = ev.particles.copy()
    i = DIPHOTON.feature_index
    # event 1: two jets, one electron, one photon pair; built by hand
    p[1] = 0
    p[1, 0, [i("pt"), i("mass"), i("is_jet")]] = [80, 10, 1]
    p[1, 1, [i("pt"), i("mass"), i("is_jet")]] = [40, 5, 1]
    p[1, 6, [i("pt"), i("eta"), i("is_electron")]] = [30, 2.4, 1]
    p[1, 10, [i("pt"), i("is_met")]] = [20, 1]
    p[1, 11, i("pt")] = 60
    p[1, 12, i("pt")] = 40
    Events(p, event_features=ev.event_features, layout=DIPHOTON)  # valid as built
    if change == "gap":
        p[1, 0] = 0
    elif change == "rising":
        p = set_at(p, 1, 1, "pt", 99)
    elif change == "onehot":
        p = set_at(p, 1, 0, "is_jet", 0)
    elif change == "photon_onehot":
        p = set_at(p, 1, 11, "is_muon", 1)
    elif change == "btag":
        p = set_at(p, 1, 0, "btag", 1.5)
    elif change == "mass":
        p = set_at(p, 1, 0, "mass", -2)
    elif change == "tau":
        p = set_at(p, 1, 0, "tau21", -0.1)
    elif change == "met_eta":
        p = set_at(p, 1, 10, "eta", 0.3)
    elif change == "electron_eta":
        p = set_at(p, 1, 6, "eta", 2.7)
    elif change == "padding":
        p = set_at(p, 1, 3, "tau32", 0.5)
    p[2:] = 0  # later events would only add to the count
    p[2:, 10, [i("pt"), i("is_met")]] = [5, 1]
    p[2:, 11:, i("pt")] = [50, 40]
    with pytest.raises(ValueError, match=message):
        Events(p, event_features=ev.event_features, layout=DIPHOTON)
    with pytest.raises(ValueError, match=message):
        check_particles(p, layout=DIPHOTON)


def test_event_feature_validation():
    ev = diphoton()
    e = ev.event_features.copy()
    e[3, 1] = -5
    with pytest.raises(ValueError, match=r"a negative ht \(first at event 3: ht = -5\)"):
        Events(ev.particles, event_features=e, layout=DIPHOTON)
    e[2, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(first at event 2, m_gg = nan\)"):
        check_event_features(e, layout=DIPHOTON)
    with pytest.raises(ValueError, match=r"shape \(40, 3\) = \(events, \(n_jets, ht, m_gg\)\)"):
        Events(ev.particles, event_features=e[:, :2], layout=DIPHOTON)


def test_container_operations_keep_the_layout():
    ev = random_layout_events(MINE, 60, seed=1)
    sub = ev[10:20]
    assert sub.layout is MINE and np.array_equal(sub.event_features, ev.event_features[10:20])
    both = Events.concatenate([ev[:5], ev[50:]])
    assert both.layout is MINE and len(both) == 15
    assert np.array_equal(both.event_features[5:], ev.event_features[50:])
    assert np.array_equal(ev.event_feature("m_y"), ev.event_features[:, 1])
    assert np.array_equal(ev.feature("btag"), ev.particles[..., 4])
    assert np.array_equal(ev.multiplicity("jet"), (ev.particles[:, :3, 0] > 0).sum(1))
    assert "layout='mine'" in repr(ev) and "<n_j>=" in ev.summary()
    with pytest.raises(ValueError, match="different layouts: 'adc2021', 'mine'"):
        Events.concatenate([ev, random_layout_events(ADC2021, 5)])
    with pytest.raises(ValueError, match=r"needs events in the ADC2021 layout.*'mine'"):
        ev.adc2021_particles()


def test_roundtrip_with_a_user_layout(tmp_path):
    ev = random_layout_events(MINE, 300, seed=2)
    ev = Events(
        ev.particles,
        ev.labels,
        ev.process_names,
        weights=np.linspace(0, 1, len(ev)),
        event_ids=np.arange(len(ev)) * 3,
        metadata={"maker": "test"},
        layout=MINE,
        event_features=ev.event_features,
    )
    path = tmp_path / "mine.h5"
    with EventWriter(
        path,
        ev.process_names,
        layout=MINE,
        metadata=ev.metadata,
        weighted=True,
        with_event_ids=True,
        chunk_events=64,
    ) as w:
        w.append(ev[:100])
    with EventWriter(path, ev.process_names, layout=MINE, mode="a") as w:  # resume
        w.append(ev[100:])
    back = read_events(path)
    assert back.layout == MINE and back.layout.fingerprint == MINE.fingerprint
    for name in ("particles", "event_features", "labels", "weights", "event_ids"):
        assert np.array_equal(getattr(back, name), getattr(ev, name)), name
    assert back.process_names == ev.process_names and back.metadata["maker"] == "test"
    with h5py.File(path) as f:
        assert f["Particles"].shape == (300, 5, 7) and "Particles_Classes" not in f
        assert [n.decode() for n in f["Particles_Names"][()]] == list(MINE.feature_names)
        assert EventLayout.from_json(f.attrs[LAYOUT_ATTR]) == MINE
    with EventFile(path) as f:
        assert f.layout == MINE and "layout='mine'" in repr(f)
        chunks = list(f.iter_chunks(70, start=20, stop=250))
        assert np.array_equal(
            np.concatenate([c.event_features for c in chunks]), ev.event_features[20:250]
        )


def test_diphoton_roundtrip_and_preprocessing_after_reading(tmp_path):
    from contrastx.events import write_events

    ev = diphoton(200, seed=4)
    back = read_events(write_events(tmp_path / "d.h5", ev))
    assert back.layout is not DIPHOTON and back.layout == DIPHOTON
    assert np.array_equal(back.particles, ev.particles)
    assert np.array_equal(back.event_features, ev.event_features)


def test_files_and_writers_refuse_other_layouts(tmp_path):
    ev = random_layout_events(MINE, 20, seed=2)
    path = tmp_path / "mine.h5"
    from contrastx.events import write_events

    write_events(path, ev)
    with pytest.raises(
        ValueError, match=r"mine\.h5 holds events in layout 'mine', not the expected"
    ):
        read_events(path, layout=DIPHOTON)
    altered = EventLayout.from_dict({**MINE.to_dict(), "validate_order": False})
    with pytest.raises(ValueError, match=r"same name, different content: fingerprints"):
        read_events(path, layout=altered)
    with pytest.raises(ValueError, match=r"holds events in layout 'mine', not the expected 'adc2"):
        EventWriter(path, ev.process_names, mode="a")  # default layout: ADC2021
    with EventWriter(path, ev.process_names, mode="a", layout=MINE) as w:
        with pytest.raises(ValueError, match=r"events in layout 'diphoton' cannot go into"):
            w.append(diphoton(3))
    with h5py.File(path, "r+") as f:
        f.attrs[LAYOUT_ATTR] = '{"name": "mine"}'
    with pytest.raises(
        ValueError, match=r"mine\.h5: root attribute 'layout': missing key\(s\) 'groups'"
    ):
        read_events(path)
    with h5py.File(path, "r+") as f:
        del f.attrs[LAYOUT_ATTR]  # no layout recorded: ADC2021 unless told otherwise
    with pytest.raises(ValueError, match=r"'Particles' must have shape \(N, 19, 4\)"):
        read_events(path)
    assert np.array_equal(read_events(path, layout=MINE).particles, ev.particles)


def test_foreign_file_in_a_declared_layout(tmp_path):
    """A file from another tool, no layout attribute: read in the layout the user declares."""
    ev = random_layout_events(MINE, 30, seed=6)
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["Particles"] = ev.particles
    with pytest.raises(ValueError, match=r"layout 'mine' has event features but the file has no"):
        read_events(path, layout=MINE)
    with h5py.File(path, "a") as f:
        f["event_features"] = ev.event_features[:-1]
    with pytest.raises(ValueError, match=r"'event_features' has shape \(29, 2\); expected \(30, 2"):
        read_events(path, layout=MINE)
    with h5py.File(path, "a") as f:
        del f["event_features"]
        f["event_features"] = ev.event_features
    back = read_events(path, layout=MINE, process="p1", process_names=("p0", "p1"))
    assert np.array_equal(back.particles, ev.particles) and back.counts() == {"p1": 30}
    assert back.metadata["source_format"] == "hdf5" and back.layout == MINE


def test_adc2021_files_record_the_layout_and_keep_their_particles(tmp_path, events):
    from contrastx.events import write_events

    path = write_events(tmp_path / "adc.h5", events)
    with h5py.File(path) as f:
        assert EventLayout.from_json(f.attrs[LAYOUT_ATTR]) == ADC2021
        assert np.array_equal(f["Particles"][()], events.adc2021_particles())
        assert list(f["Particles_Names"][()]) == list(ADC2021_NAMES)
        assert "event_features" not in f
    # an older contrastx file, before layouts: no attribute, read as ADC2021, appendable
    with h5py.File(path, "r+") as f:
        del f.attrs[LAYOUT_ATTR]
    back = read_events(path)
    assert back.layout is ADC2021 and np.array_equal(back.particles, events.particles)
    with EventWriter(path, events.process_names, mode="a") as w:
        w.append(events[:10])
    assert len(read_events(path, layout=ADC2021)) == len(events) + 10
