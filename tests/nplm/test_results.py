"""The toy results file: atomic block commits, verified resume, format 1 files."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest
from contrastx.nplm import results as results_mod
from contrastx.nplm.results import COMMITTED, ToyResultsFile, read_toy_results
from contrastx.nplm.toys import NULL, SIGNAL, ToyBlock

KEY = {"seed": 0, "n_ref": 10}


def block(hyp: int, ids, t0: float = 1.0) -> ToyBlock:
    ids = np.asarray(ids, dtype=np.int64)
    n = ids.size
    return ToyBlock(
        hyp,
        ids,
        t0 + np.arange(n, dtype=np.float64),
        np.full(n, 50),
        np.full(n, 3 if hyp == SIGNAL else 0),
        np.full(n, 7),
        seconds=0.5 * n,
    )


class _Stop(KeyboardInterrupt):
    pass


def _interrupt_at(monkeypatch, k: int) -> list[int]:
    """Raise _Stop at the k-th write operation of h5py (resize, setitem, flush, attrs)."""
    count = [0]

    def wrap(cls, name):
        orig = getattr(cls, name)

        def f(*a, **kw):
            count[0] += 1
            if count[0] == k:
                raise _Stop
            return orig(*a, **kw)

        monkeypatch.setattr(cls, name, f)

    wrap(h5py.Dataset, "__setitem__")
    wrap(h5py.Dataset, "resize")
    wrap(h5py.File, "flush")
    wrap(h5py.AttributeManager, "modify")
    wrap(h5py.AttributeManager, "create")
    return count


def test_block_interrupted_at_any_write_is_never_counted_done(tmp_path, monkeypatch):
    """An exception (SIGINT) at every write step of an append: the block is all or nothing.

    The reported bug: toys of a block whose write was interrupted were counted done on
    resume with seed rows [0, 0, 0] and t = 0. Here the second block is interrupted after
    its k-th HDF5 write, for every k; after reopening, the file holds the first block and
    either all of the second or none of it, with the values written.
    """
    first, second = block(NULL, [0, 1, 2], t0=10.0), block(NULL, [3, 4, 5], t0=20.0)
    outcomes = set()
    for k in range(1, 100):
        path = tmp_path / f"r{k}.h5"
        with ToyResultsFile(path, KEY, KEY) as f:
            f.append(first)
            with monkeypatch.context() as m:
                count = _interrupt_at(m, k)
                try:
                    f.append(second)
                    finished = True
                except _Stop:
                    finished = False
        with ToyResultsFile(path, KEY, KEY) as f:
            done = sorted(f.done(NULL).tolist())
            rows = f.read(NULL)
        assert done in ([0, 1, 2], [0, 1, 2, 3, 4, 5]), (k, done)
        assert rows["toy_index"].tolist() == done
        np.testing.assert_array_equal(rows["t"], [10, 11, 12, 20, 21, 22][: len(done)])
        assert rows["seed"].tolist() == [[0, NULL, i] for i in done]
        assert read_toy_results(path)["null"]["toy_index"].tolist() == done
        with h5py.File(path, "r") as h:  # the uncommitted rows were dropped on reopening
            assert all(h["null"][c].shape[0] == len(done) for c in h["null"])
        outcomes.add(len(done))
        if finished:
            assert count[0] < k and len(done) == 6
            break
    else:
        pytest.fail("the append never finished")
    assert outcomes == {3, 6}


def test_uncommitted_rows_are_ignored_and_dropped(tmp_path, caplog):
    """Rows written past n_committed (a process killed mid-block) are not results."""
    path = tmp_path / "r.h5"
    with ToyResultsFile(path, KEY, KEY) as f:
        f.append(block(SIGNAL, [4, 2]))
    with h5py.File(path, "a") as h:  # what a kill between data and commit leaves
        g = h["signal"]
        for col in g:
            g[col].resize(g[col].shape[0] + 3, axis=0)  # zero rows: seed [0, 0, 0], t 0
    assert read_toy_results(path)["signal"]["toy_index"].tolist() == [2, 4]
    with caplog.at_level(logging.INFO, logger="contrastx.nplm.results"):
        with ToyResultsFile(path, KEY, KEY) as f:
            assert sorted(f.done(SIGNAL).tolist()) == [2, 4]
            f.append(block(SIGNAL, [0, 1, 3], t0=5.0))
    assert "discarded 3 uncommitted rows" in caplog.text
    res = read_toy_results(path)["signal"]
    assert res["toy_index"].tolist() == [0, 1, 2, 3, 4]
    assert res["t"].tolist() == [5.0, 6.0, 2.0, 7.0, 1.0]


def test_inconsistent_committed_row_is_refused(tmp_path):
    path = tmp_path / "r.h5"
    with ToyResultsFile(path, KEY, KEY) as f:
        f.append(block(NULL, [0, 1, 2]))
    with h5py.File(path, "a") as h:
        h["null"]["seed"][1] = [0, 0, 0]  # toy 1's row no longer says toy 1
    msg = r"r\.h5: /null: committed rows of toys 1 are inconsistent \(seed is not \[0, 0, toy\]\)"
    with pytest.raises(ValueError, match=msg):
        ToyResultsFile(path, KEY, KEY)
    with pytest.raises(ValueError, match=msg):
        read_toy_results(path)
    with h5py.File(path, "a") as h:
        h["null"]["seed"][1] = [0, 0, 1]
        h["null"]["t"][2] = np.nan
    with pytest.raises(ValueError, match=r"toys 2 are inconsistent \(t is not finite\)"):
        read_toy_results(path)
    with h5py.File(path, "a") as h:
        h["null"]["t"][2] = 3.0
        h["null"].attrs.modify(COMMITTED, 5)  # more committed than stored
    with pytest.raises(ValueError, match=r"5 rows are committed but .* shorter: the file is"):
        ToyResultsFile(path, KEY, KEY)


def _write_format1(path, rows_null):
    """A file as format 1 wrote it (no n_committed; columns resized one by one)."""
    with h5py.File(path, "w") as h:
        h.attrs["format"] = "contrastx-nplm-toys"
        h.attrs["format_version"] = 1
        h.attrs["key"] = json.dumps(KEY, sort_keys=True)
        h.attrs["config"] = json.dumps(KEY, sort_keys=True)
        for name in ("null", "signal"):
            g = h.create_group(name)
            rows = rows_null if name == "null" else {}
            for col, dt in results_mod._COLUMNS.items():
                v = np.asarray(rows.get(col, []), dtype=dt)
                g.create_dataset(col, data=v, maxshape=(None,), chunks=(1024,))
            s = np.asarray(rows.get("seed", np.zeros((0, 3))), dtype=np.int64)
            g.create_dataset("seed", data=s, maxshape=(None, 3), chunks=(1024, 3))


def test_format1_file_with_an_interrupted_block_resumes(tmp_path, caplog):
    """The reported case: a format-1 file whose last block has zero seeds and t = 0."""
    path = tmp_path / "old.h5"
    good = [0, 1, 2]
    rows = {
        "toy_index": [*good, 3, 4],  # toy_index of the interrupted block was written ...
        "t": [1.5, 2.5, 3.5, 0.0, 0.0],  # ... the rest not (zeros)
        "n_bkg": [50, 51, 52, 0, 0],
        "n_sig": [0] * 5,
        "n_iter": [7] * 5,
        "seconds": [0.1] * 3 + [0, 0],
        "seed": [[0, 0, i] for i in good] + [[0, 0, 0]] * 2,
    }
    _write_format1(path, rows)
    with caplog.at_level(logging.WARNING, logger="contrastx.nplm.results"):
        res = read_toy_results(path)
    assert res["null"]["toy_index"].tolist() == good
    assert res["null"]["t"].tolist() == [1.5, 2.5, 3.5]
    assert "2 incomplete rows" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="contrastx.nplm.results"):
        with ToyResultsFile(path, KEY, KEY) as f:
            assert sorted(f.done(NULL).tolist()) == good  # toys 3, 4 are rerun
            f.append(block(NULL, [3, 4], t0=9.0))
    assert "dropped 2 incomplete rows" in caplog.text
    with h5py.File(path, "r") as h:
        assert h.attrs["format_version"] == 2 and h["null"].attrs[COMMITTED] == 5
    res = read_toy_results(path)["null"]
    assert res["toy_index"].tolist() == [0, 1, 2, 3, 4]
    assert res["t"].tolist() == [1.5, 2.5, 3.5, 9.0, 10.0]


def test_format1_complete_file_is_kept(tmp_path):
    path = tmp_path / "old.h5"
    rows = {
        "toy_index": [1, 0],
        "t": [2.0, 1.0],
        "n_bkg": [5, 6],
        "n_sig": [0, 0],
        "n_iter": [3, 3],
        "seconds": [0.1, 0.1],
        "seed": [[0, 0, 1], [0, 0, 0]],
    }
    _write_format1(path, rows)
    assert read_toy_results(path)["null"]["t"].tolist() == [1.0, 2.0]
    with ToyResultsFile(path, KEY, KEY) as f:
        assert sorted(f.done(NULL).tolist()) == [0, 1]


def test_append_refuses_bad_blocks(tmp_path):
    path = tmp_path / "r.h5"
    with ToyResultsFile(path, KEY, KEY) as f:
        f.append(block(NULL, [0, 1]))
        with pytest.raises(ValueError, match="toys 1 are already stored"):
            f.append(block(NULL, [1, 2]))
        bad = block(NULL, [2, 3])
        bad.t[1] = np.inf
        with pytest.raises(ValueError, match="toys 3: t is not finite; nothing written"):
            f.append(bad)
        with pytest.raises(ValueError, match="distinct and >= 0"):
            f.append(block(NULL, [-1]))
        assert f.done(NULL).tolist() == [0, 1]


def test_other_files_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h:
        h["data"] = np.arange(3)
    with pytest.raises(ValueError, match=r"other\.h5 is not a contrastx-nplm-toys file"):
        ToyResultsFile(other, KEY, KEY)
    with h5py.File(other, "r") as h:  # untouched
        assert list(h) == ["data"]
    newer = tmp_path / "newer.h5"
    ToyResultsFile(newer, KEY, KEY).close()
    with h5py.File(newer, "a") as h:
        h.attrs["format_version"] = 9
    with pytest.raises(ValueError, match="format_version 9, written by a newer contrastx"):
        read_toy_results(newer)
    blank = tmp_path / "blank.h5"  # a creation cut short: no attributes yet
    h5py.File(blank, "w").close()
    with ToyResultsFile(blank, KEY, KEY) as f:
        f.append(block(NULL, [0]))
    assert read_toy_results(blank)["null"]["toy_index"].tolist() == [0]
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5" * 100)
    with pytest.raises(OSError, match=r"garbage\.h5: cannot open as HDF5"):
        read_toy_results(garbage)
