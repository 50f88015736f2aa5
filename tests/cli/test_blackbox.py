"""contrastx-blackbox: bounds, saved scores, ADC2021 truth and label files, training
events left out of the reference, the pool checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from contrastx.cli import blackbox as cli
from contrastx.events import load_labels, read_events, write_events
from contrastx.events.generators import generate_sample, mixture_counts
from contrastx.events.layout import ADC2021_MIXTURE
from contrastx.nplm.blackbox import read_event_scores, read_truth, write_fast_black_box

SEARCH = ["--n-splits", "2", "--n-resample", "2", "--n-ref", "800", "--M", "30", "--n-null", "6"]
SEARCH += ["--map-method", "pca"]


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _black_box(tmp_path: Path, fraction: float = 0.05, n: int = 1500, seed: int = 0) -> Path:
    bb = tmp_path / "bb.h5"
    write_fast_black_box(
        bb, tmp_path / "bb.truth.h5", n_background=n, signal="Ato4l", fraction=fraction, seed=seed
    )
    return bb


def test_capped_global_z_printed_as_bound_and_null_in_json(tmp_path: Path, capsys) -> None:
    # Background only, and a sample (seed 6 of the fast generator 0.2) whose two splits both
    # fall below the null median: the Bonferroni p is capped at 1 (seeds 0-5 are not).
    bb = _black_box(tmp_path, fraction=0.0, n=1200, seed=6)
    out = tmp_path / "out"
    argv = ["--black-box", str(bb), "--model", "leading_pt", "--seed", "0", "--out", str(out)]
    assert cli.main([*argv, *SEARCH]) == 0
    text = capsys.readouterr().out
    assert "global Z (Bonferroni, k = 2) < 0 (Bonferroni p = 1)" in text
    assert "inf" not in text
    res = _strict((out / "blackbox.json").read_text())["result"]
    assert res["global_p"] == 1.0 and res["global_z"] is None and res["global_p_capped"]
    assert "< 0 (Bonferroni p = 1)" in (out / "table.md").read_text()


def test_scores_saved_top_events_listed_adc2021_truth(tmp_path: Path, capsys) -> None:
    bb = _black_box(tmp_path)
    tr = read_truth(tmp_path / "bb.truth.h5")
    # ADC2021-style key: the ids of the signal events only.
    key = tmp_path / "key.npz"
    np.savez(key, signal_EvtId=tr.event_ids[tr.is_signal])
    out = tmp_path / "out"
    argv = ["--black-box", str(bb), "--model", "leading_pt", "--truth", str(key)]
    assert cli.main([*argv, "--top-k", "5", "--out", str(out), *SEARCH]) == 0
    text = capsys.readouterr().out
    assert "top 5 events by NPLM score" in text and "event_scores.h5" in text
    summary = _strict((out / "blackbox.json").read_text())
    assert summary["truth"]["n_signal"] == 75 and summary["truth"]["top_events"] == 5
    assert summary["truth"]["file"] == str(key)
    assert sum(summary["truth"]["signal_per_split"]) == 75
    scores = read_event_scores(out / "event_scores.h5")
    ev = read_events(bb)
    assert scores["EvtId"].tolist() == ev.event_ids.tolist()
    best = np.argsort(-scores["score"], kind="stable")[:5]
    assert [e["row"] for e in summary["top_events"]] == best.tolist()
    assert [e["EvtId"] for e in summary["top_events"]] == scores["EvtId"][best].tolist()
    # A truth file that lacks some of the black box's ids is an error naming the file.
    short = tmp_path / "short.npz"
    np.savez(short, EvtId=tr.event_ids[:-1], is_signal=tr.is_signal[:-1].astype(int))
    assert cli.main([*argv[:-1], str(short), "--out", str(out), *SEARCH]) == 2
    assert "short.npz: 1 of the 1575 black-box event ids are not in" in capsys.readouterr().err


def _reference_file(tmp_path: Path, n: int = 3000) -> Path:
    ev = generate_sample(mixture_counts(n, ADC2021_MIXTURE), seed=77)
    return write_events(tmp_path / "ref.h5", ev)


def _model_trained_on(tmp_path: Path, ref: Path, rows: np.ndarray) -> Path:
    from contrastx.embed import LeadingPtBaseline, TrainingEvents, save_model
    from contrastx.embed.model_file import file_fingerprint

    record = TrainingEvents(
        path=str(ref.resolve()),
        fingerprint=file_fingerprint(ref),
        train_rows=rows[: rows.size // 2],
        validation_rows=rows[rows.size // 2 :],
    )
    path = tmp_path / "model.pt"
    save_model(path, LeadingPtBaseline(), {"kind": "leading_pt"}, training_events=record)
    return path


def test_training_events_left_out_of_the_reference(tmp_path: Path) -> None:
    bb = _black_box(tmp_path)
    ref = _reference_file(tmp_path)
    rows = np.arange(0, 3000, 3)  # 1000 rows the model "trained" on
    model = _model_trained_on(tmp_path, ref, rows)
    out = tmp_path / "out"
    argv = ["--black-box", str(bb), "--model", str(model), "--reference", str(ref), *SEARCH]
    assert cli.main([*argv, "--out", str(out)]) == 0
    info = _strict((out / "blackbox.json").read_text())["reference"]
    assert info["training_events"] == "excluded"
    assert info["n_training_rows_excluded"] == 1000 and info["n"] == 2000
    assert info["model_training_events"]["n_train"] == 500
    # The pool holds exactly the other rows.
    args = cli.build_parser().parse_args([*argv, "--out", str(out)])
    pool, _ = cli._reference_from_file(args, _training(model))
    keep = np.setdiff1d(np.arange(3000), rows)
    np.testing.assert_array_equal(pool.particles, read_events(ref).particles[keep])
    # --keep-training-events keeps them; --exclude-reference-rows leaves out others.
    assert cli.main([*argv, "--keep-training-events", "--out", str(out)]) == 0
    info = _strict((out / "blackbox.json").read_text())["reference"]
    assert info["n"] == 3000 and info["training_events"].startswith("kept")
    extra = tmp_path / "rows.txt"
    extra.write_text("\n".join(str(i) for i in range(1, 600, 3)))  # 200 rows
    argv2 = [*argv, "--keep-training-events", "--exclude-reference-rows", str(extra)]
    assert cli.main([*argv2, "--out", str(out)]) == 0
    info = _strict((out / "blackbox.json").read_text())["reference"]
    assert info["n"] == 2800 and info["n_excluded_rows"] == 200
    # A model trained on another file leaves the reference whole.
    other = tmp_path / "other.h5"
    write_events(other, generate_sample({"W": 100}, seed=1))
    model2 = _model_trained_on(tmp_path, other, np.arange(50))
    assert cli.main([*argv[:3], str(model2), *argv[4:], "--out", str(out)]) == 0
    info = _strict((out / "blackbox.json").read_text())["reference"]
    assert info["n"] == 3000 and info["training_events"].startswith("none")


def _training(model: Path):
    from contrastx.embed import training_events

    return training_events(model)


def test_exclude_rows_errors(tmp_path: Path, capsys) -> None:
    bb = _black_box(tmp_path)
    ref = _reference_file(tmp_path)
    rows = tmp_path / "rows.npy"
    np.save(rows, np.array([5, 3000]))
    argv = ["--black-box", str(bb), "--model", "leading_pt", "--reference", str(ref)]
    assert cli.main([*argv, "--exclude-reference-rows", str(rows), *SEARCH]) == 2
    assert "rows.npy: row 3000 is beyond the 3000 events" in capsys.readouterr().err
    bad = tmp_path / "rows.txt"
    bad.write_text("1\nx\n")
    assert cli.main([*argv, "--exclude-reference-rows", str(bad), *SEARCH]) == 2
    assert "rows.txt: not a readable row file" in capsys.readouterr().err


def test_pool_checked_before_anything_is_embedded(tmp_path: Path, capsys, monkeypatch) -> None:
    import contrastx.embed

    bb = _black_box(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("embedded before the pool check")

    monkeypatch.setattr(contrastx.embed, "embed", refuse)
    out = tmp_path / "out"
    argv = ["--black-box", str(bb), "--model", "leading_pt", "--out", str(out), *SEARCH]
    assert cli.main([*argv, "--n-reference-pool", "900"]) == 2
    err = capsys.readouterr().err
    assert "reference pool (--n-reference-pool) has 900 events; the search needs at least" in err
    # A reference file that is too small (after the background selection) also fails first.
    ref = _reference_file(tmp_path, n=1000)
    assert cli.main([*argv, "--reference", str(ref)]) == 2
    assert f"reference pool ({ref}) has 1000 events" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------ label side files
def _adc2021_file(tmp_path: Path, n: int = 2000) -> tuple[Path, np.ndarray]:
    ev = generate_sample(mixture_counts(n, ADC2021_MIXTURE), seed=5)
    path = tmp_path / "background_for_training.h5"
    with h5py.File(path, "w") as f:
        f["Particles"] = ev.adc2021_particles()
    return path, ev.labels


def test_label_side_file_npz_with_one_array(tmp_path: Path) -> None:
    path, labels = _adc2021_file(tmp_path)
    side = tmp_path / "background_IDs.npz"
    np.savez(side, background_ID=labels)
    ev = read_events(path, labels=side)
    assert ev.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(load_labels(side), labels)
    two = tmp_path / "two.npz"
    np.savez(two, a=labels, b=labels)
    with pytest.raises(ValueError, match=r"two\.npz: a label \.npz must hold one array .*: a, b"):
        load_labels(two)
    named = tmp_path / "named.npz"
    np.savez(named, labels=labels, other=labels[:3])
    np.testing.assert_array_equal(load_labels(named), labels)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"junk\.npz: not a readable \.npz label file"):
        load_labels(junk)
    floats = tmp_path / "floats.npz"
    np.savez(floats, x=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"floats\.npz: labels must be a 1-D integer array"):
        load_labels(floats)
    short = tmp_path / "short.npz"
    np.savez(short, x=labels[:-1])
    with pytest.raises(ValueError, match=r"has 2000 events \(label side file: .*short\.npz\)"):
        read_events(path, labels=short)


def test_cli_reference_with_npz_labels(tmp_path: Path, capsys) -> None:
    bb = _black_box(tmp_path)
    path, labels = _adc2021_file(tmp_path, n=3000)
    side = tmp_path / "background_IDs.npz"
    np.savez(side, background_ID=labels)
    out = tmp_path / "out"
    argv = ["--black-box", str(bb), "--model", "leading_pt", "--reference", str(path)]
    assert cli.main([*argv, "--reference-labels", str(side), "--out", str(out), *SEARCH]) == 0
    assert _strict((out / "blackbox.json").read_text())["reference"]["n"] == 3000
    two = tmp_path / "two.npz"
    np.savez(two, a=labels, b=labels)
    assert cli.main([*argv, "--reference-labels", str(two), "--out", str(out), *SEARCH]) == 2
    assert "two.npz: a label .npz must hold one array" in capsys.readouterr().err
