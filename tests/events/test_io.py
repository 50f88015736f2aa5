import h5py
import numpy as np
import pytest
from contrastx.events import EventFile, Events, EventWriter, read_events, write_events
from contrastx.events.io import ADC2021_CLASSES, ADC2021_NAMES, FORMAT_NAME


def write_adc2021(path, ev: Events, evtid=False):
    """A file laid out exactly like the ADC2021 challenge files."""
    with h5py.File(path, "w") as f:
        f["Particles"] = ev.adc2021_particles()
        f["Particles_Classes"] = np.array(ADC2021_CLASSES)
        f["Particles_Names"] = np.array(ADC2021_NAMES)
        if evtid:
            f["EvtId"] = np.arange(len(ev), dtype=np.int64)[:, None] + 1000


def assert_same(a: Events, b: Events):
    assert np.array_equal(a.particles, b.particles)
    assert [a.process_names[i] if i >= 0 else None for i in a.labels] == [
        b.process_names[i] if i >= 0 else None for i in b.labels
    ]


def test_roundtrip_contrastx(tmp_path, events):
    events.metadata["note"] = "roundtrip"
    events.metadata["array"] = np.arange(3)
    path = write_events(tmp_path / "ev.h5", events)
    back = read_events(path)
    assert_same(events, back)
    assert back.metadata["note"] == "roundtrip" and back.metadata["array"] == [0, 1, 2]
    with h5py.File(path) as f:
        assert f.attrs["format"] == FORMAT_NAME
        # Particles stays exactly in the ADC2021 layout so their tools read our files
        assert f["Particles"].shape == (len(events), 19, 4)
        assert np.array_equal(f["Particles"][()], events.adc2021_particles())
        assert list(f["Particles_Names"][()]) == list(ADC2021_NAMES)
    with pytest.raises(FileExistsError):
        write_events(path, events)
    write_events(path, events[:5], overwrite=True)
    assert len(read_events(path)) == 5


def test_weights_and_ids_roundtrip(tmp_path, events):
    ev = Events(
        events.particles,
        events.labels,
        weights=np.linspace(0, 1, len(events)),
        event_ids=np.arange(len(events)) * 7,
    )
    back = read_events(write_events(tmp_path / "w.h5", ev))
    assert np.array_equal(back.weights, ev.weights) and np.array_equal(back.event_ids, ev.event_ids)


def test_read_adc2021(tmp_path, events):
    path = tmp_path / "adc.h5"
    write_adc2021(path, events, evtid=True)
    plain = read_events(path)
    assert np.array_equal(plain.particles, events.particles)
    assert (plain.labels == -1).all()
    assert plain.event_ids[:3].tolist() == [1000, 1001, 1002]
    sig = read_events(path, process="Ato4l")
    assert sig.counts() == {"Ato4l": len(events)}
    np.save(tmp_path / "labels.npy", events.labels)
    lab = read_events(path, labels=tmp_path / "labels.npy")
    assert_same(lab, events)
    with pytest.raises(ValueError, match="unknown process name 'Ato5l'"):
        read_events(path, process="Ato5l")
    np.save(tmp_path / "short.npy", events.labels[:-1])
    with pytest.raises(ValueError, match="label side file has 499 labels"):
        read_events(path, labels=tmp_path / "short.npy")


def test_streaming_slices_and_chunks(tmp_path, make_events):
    ev = make_events(1000, seed=5)
    path = write_events(tmp_path / "big.h5", ev, chunk_events=128)
    with EventFile(path) as f:
        assert len(f) == 1000 and f.format == "contrastx"
        assert_same(f.read(100, 250), ev[100:250])
        assert_same(f.read(-10), ev[-10:])
        chunks = list(f.iter_chunks(300))
        assert [len(c) for c in chunks] == [300, 300, 300, 100]
        assert_same(Events.concatenate(chunks), ev)
        assert [len(c) for c in f.iter_chunks(64, start=10, stop=140)] == [64, 64, 2]
        with pytest.raises(ValueError, match="chunk_size must be positive"):
            next(f.iter_chunks(0))


def test_writer_append_and_resume(tmp_path, make_events):
    ev = make_events(300, seed=2)
    path = tmp_path / "inc.h5"
    with EventWriter(path, ev.process_names, metadata={"job": 1}) as w:
        w.append(ev[:100])
        w.append(ev[100:120])
    with EventWriter(path, ev.process_names, mode="a") as w:  # resume
        assert len(w) == 120
        w.append(ev[120:])
    assert_same(read_events(path), ev)
    with pytest.raises(ValueError, match="process_names"):
        EventWriter(path, ("a", "b"), mode="a")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="event file not found"):
        read_events(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["Jets"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"empty\.h5: no dataset 'Particles'.*\['Jets'\]"):
        read_events(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f["Particles"] = np.zeros((3, 18, 4), np.float32)
    with pytest.raises(ValueError, match=r"must have shape \(N, 19, 4\)"):
        read_events(tmp_path / "shape.h5")
    p = np.zeros((3, 19, 4), np.float32)
    p[1, 3, 0] = np.inf
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["Particles"] = p
    with pytest.raises(ValueError, match="NaN or inf"):
        read_events(tmp_path / "nan.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(
        OSError, match=r"text\.h5: not a readable HDF5 event file: no HDF5 signature"
    ):
        read_events(tmp_path / "text.h5")
