"""Model files record the event file and rows a model was trained on."""

import numpy as np
import pytest
import torch
from contrastx.cli import train as train_cli
from contrastx.embed import Trainer, load_model
from contrastx.embed.model import build_model
from contrastx.embed.model_file import (
    TrainingEvents,
    file_fingerprint,
    save_model,
    training_events,
)
from contrastx.events import read_events, write_events
from contrastx.events.generators import generate_sample

CONFIG = {"kind": "embedding", "encoder": "mlp", "latent_dim": 4, "head": "projection"}


def _model():
    torch.manual_seed(0)
    return build_model({"encoder": "mlp", "latent_dim": 4, "head": "projection"})


def test_fingerprint_and_matches(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc" * 1000)
    fp = file_fingerprint(f)
    assert fp["size"] == 3000 and len(fp["sha256"]) == 64
    rec = TrainingEvents(str(f), fp, [5, 1, 3], [2])
    np.testing.assert_array_equal(rec.train_rows, [1, 3, 5])
    np.testing.assert_array_equal(rec.rows, [1, 2, 3, 5])
    copy = tmp_path / "b.bin"
    copy.write_bytes(f.read_bytes())
    assert rec.matches(copy)
    copy.write_bytes(b"abd" + b"abc" * 999)  # same size, other content
    assert not rec.matches(copy)
    with pytest.raises(FileNotFoundError, match="missing"):
        rec.matches(tmp_path / "missing")
    with pytest.raises(ValueError, match="train_rows"):
        TrainingEvents(str(f), fp, [-1], [])
    with pytest.raises(ValueError, match="sha256"):
        TrainingEvents(str(f), {"size": 3}, [1], [])


def test_record_round_trips_and_old_files_give_none(tmp_path):
    src = tmp_path / "ev.bin"
    src.write_bytes(b"x" * 10)
    rec = TrainingEvents(str(src), file_fingerprint(src), np.arange(0, 8, 2), [7, 9])
    path = save_model(tmp_path / "m.pt", _model(), CONFIG, training_events=rec)
    for got in (training_events(path), load_model(path).training_events):
        assert got.path == str(src) and got.fingerprint == rec.fingerprint
        np.testing.assert_array_equal(got.train_rows, [0, 2, 4, 6])
        np.testing.assert_array_equal(got.validation_rows, [7, 9])
    assert training_events(load_model(path)) is not None
    old = save_model(tmp_path / "old.pt", _model(), CONFIG)
    assert training_events(old) is None and load_model(old).training_events is None
    # a damaged record names the file
    payload = torch.load(path, weights_only=True)
    payload["training_events"] = "{not json"
    torch.save(payload, path)
    with pytest.raises(ValueError, match="training_events") as err:
        training_events(path)
    assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError):
        training_events(tmp_path / "none.pt")
    with pytest.raises(TypeError):
        training_events(3)


def test_cli_records_file_rows_of_the_selected_processes(tmp_path, capsys):
    ev = generate_sample({"W": 120, "QCD": 80, "Z": 60, "ttbar": 60, "Ato4l": 60}, seed=3)
    order = np.random.default_rng(0).permutation(len(ev))  # signal rows interleaved
    src = write_events(tmp_path / "ev.h5", ev[order])
    out = tmp_path / "m.pt"
    args = ["--events", str(src), "--out", str(out), "--latent-dim", "4", "--epochs", "1"]
    args += ["--batch-size", "64", "--warmup-epochs", "0", "--no-progress"]
    assert train_cli.main(args) == 0, capsys.readouterr().err
    rec = training_events(out)
    assert rec.path == str(src.resolve()) and rec.matches(src)
    file_labels = read_events(src).labels
    bkg = np.flatnonzero(np.isin(file_labels, [0, 1, 2, 3]))
    # 320 background events: 20 % test, the rest in 5 folds (one validation)
    assert rec.train_rows.size + rec.validation_rows.size == 256
    assert np.isin(rec.rows, bkg).all()  # file rows of background events only
    assert np.intersect1d(rec.train_rows, rec.validation_rows).size == 0
    meta = load_model(out).metadata
    assert meta["n_train"] == rec.train_rows.size
    assert meta["n_validation"] == rec.validation_rows.size


def test_fit_records_rows_and_checks_them(tiny_config, small_sample, tmp_path):
    src = write_events(tmp_path / "s.h5", small_sample)
    rows = np.arange(len(small_sample)) + 1000  # a selection of a larger file
    tr = Trainer(tiny_config(epochs=1)).fit(small_sample, event_file=src, event_rows=rows)
    np.testing.assert_array_equal(
        tr.training_events_.train_rows, np.sort(rows[tr.splits_.train(0)])
    )
    np.testing.assert_array_equal(
        tr.training_events_.validation_rows, np.sort(rows[tr.splits_.validation(0)])
    )
    assert Trainer(tiny_config(epochs=1)).fit(small_sample).training_events_ is None
    with pytest.raises(ValueError, match="event_rows must be 400 integers"):
        Trainer(tiny_config(epochs=1)).fit(small_sample, event_file=src, event_rows=rows[:5])
    with pytest.raises(ValueError, match="distinct"):
        Trainer(tiny_config(epochs=1)).fit(small_sample, event_file=src, event_rows=rows * 0)
    with pytest.raises(ValueError, match="needs event_file"):
        Trainer(tiny_config(epochs=1)).fit(small_sample, event_rows=rows)
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        Trainer(tiny_config(epochs=1)).fit(small_sample, event_file=tmp_path / "nope.h5")
