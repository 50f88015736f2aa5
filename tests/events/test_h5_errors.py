"""HDF5 files that cannot be used give one message naming the file and the problem."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from contrastx.events import EventFile, EventWriter, open_h5, read_events, write_events
from contrastx.events.io import load_labels


@pytest.fixture
def event_path(tmp_path, make_events):
    return write_events(tmp_path / "ev.h5", make_events(3000, seed=7), chunk_events=256)


def test_not_hdf5_truncated_and_corrupted(tmp_path, event_path):
    data = event_path.read_bytes()
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(OSError, match=r"text\.h5: not a readable HDF5 event file: no HDF5 sig"):
        read_events(tmp_path / "text.h5")
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"cut\.h5: not a readable HDF5 event file: truncated"):
        read_events(tmp_path / "cut.h5")
    bad = bytearray(data)
    mid = len(bad) // 2
    bad[mid : mid + 256] = bytes(256)  # inside the compressed Particles chunks
    (tmp_path / "bad.h5").write_bytes(bytes(bad))
    with EventFile(tmp_path / "bad.h5") as f:  # the header is intact: opening works
        with pytest.raises(OSError, match=r"bad\.h5: cannot read rows .* of dataset 'Particles'"):
            list(f.iter_chunks(1000))
    with pytest.raises(OSError, match=r"text\.h5: not a readable HDF5 label side file"):
        load_labels(tmp_path / "text.h5")
    with pytest.raises(FileNotFoundError, match="HDF5 file not found"):
        open_h5(tmp_path / "none.h5")
    with pytest.raises(ValueError, match="mode must be one of"):
        open_h5(event_path, "rw")


def test_missing_datasets_and_attributes(tmp_path, event_path):
    with h5py.File(tmp_path / "jets.h5", "w") as f:
        f["Jets"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"jets\.h5: no dataset 'Particles'.*\['Jets'\]"):
        read_events(tmp_path / "jets.h5")
    with h5py.File(event_path, "a") as f:
        del f["labels"].attrs["process_names"]
    with pytest.raises(ValueError, match=r"ev\.h5: dataset 'labels' has no 'process_names'"):
        read_events(event_path)
    with h5py.File(event_path, "a") as f:
        f["labels"].attrs["process_names"] = ["W"]
        f.attrs["metadata"] = "{not json"
    with pytest.raises(ValueError, match=r"ev\.h5: root attribute 'metadata' is not valid JSON"):
        read_events(event_path)


def test_empty_file(tmp_path, make_events):
    path = write_events(tmp_path / "none.h5", make_events(5)[:0])
    with pytest.raises(ValueError, match=r"none\.h5: the event file holds no events"):
        read_events(path)
    assert len(read_events(path, allow_empty=True)) == 0
    with EventFile(path) as f:  # a stream may be empty (an output being written)
        assert len(f) == 0
    with pytest.raises(ValueError, match="holds no events"):
        EventFile(path, allow_empty=False)
    full = write_events(tmp_path / "five.h5", make_events(5))
    assert len(read_events(full, 2, 2)) == 0  # an empty slice of a non-empty file is fine


HOLD = """
import sys, h5py
f = h5py.File(sys.argv[1], sys.argv[2])
print("open", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held(event_path):
    """``held(mode)``: another process opens the event file; returns a function to close it."""
    procs = []

    def release(proc):
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)

    def hold(mode):
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(event_path), mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "open"
        return lambda: release(proc)

    yield hold
    for proc in procs:
        release(proc)


@pytest.mark.skipif(
    os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
    reason="HDF5 file locking is switched off",
)
def test_file_held_by_another_run(event_path, held, make_events):
    before = read_events(event_path)
    release = held("a")  # another run writing it
    with pytest.raises(BlockingIOError, match=r"ev\.h5: the event file is locked: another run"):
        read_events(event_path)
    with pytest.raises(BlockingIOError, match=r"ev\.h5: the event file is locked"):
        EventWriter(event_path, mode="a")
    with pytest.raises(BlockingIOError, match=r"ev\.h5: the event file is locked"):
        write_events(event_path, make_events(10), overwrite=True)
    release()
    # HDF5 truncates before it locks: the refused overwrite must not have wiped the file
    np.testing.assert_array_equal(read_events(event_path).particles, before.particles)


@pytest.mark.skipif(
    os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE",
    reason="HDF5 file locking is switched off",
)
def test_overwrite_refused_while_another_run_reads(event_path, held, make_events):
    before = event_path.read_bytes()
    release = held("r")
    assert len(read_events(event_path)) == 3000  # readers share the file
    with pytest.raises(BlockingIOError, match=r"ev\.h5: the event file is locked"):
        write_events(event_path, make_events(10), overwrite=True)
    release()
    assert event_path.read_bytes() == before
