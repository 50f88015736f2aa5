import pytest
from contrastx.cli.generate import main
from contrastx.events import read_events


def test_generate_writes_labelled_sample(tmp_path, capsys):
    out = tmp_path / "s.h5"
    sample = ["--n-background", "1000", "--signals", "Ato4l=50,LQ_btau=20", "--seed", "3"]
    rc = main(["--out", str(out), *sample, "--no-progress"])
    assert rc == 0
    ev = read_events(out)
    assert ev.counts() == {"W": 592, "QCD": 338, "Z": 67, "ttbar": 3, "Ato4l": 50, "LQ_btau": 20}
    assert ev.metadata["generator"] == "contrastx.fast" and ev.metadata["seed"] == 3
    text = capsys.readouterr().out
    assert "1070 events" in text and "approximation" in text
    # refuses to overwrite, and is reproducible with --overwrite
    assert main(["--out", str(out), "--n-background", "10", "--no-progress"]) == 2
    rc = main(["--out", str(out), "--overwrite", *sample, "--no-progress"])
    assert rc == 0 and (read_events(out).particles == ev.particles).all()


def test_generate_rejects_unknown_process(tmp_path):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.h5"), "--signals", "Zprime=10"])


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        (
            "W=1,QCD=1",
            "argument --fractions: fractions must sum to 1 (within 1e-06); W=1, QCD=1 sum to 2",
        ),
        ("W=0.5,QCD=0.4", "W=0.5, QCD=0.4 sum to 0.9"),
        ("W=0.5,W=0.5", "W is given twice"),
        ("W=1.5,QCD=-0.5", "fractions must be finite and >= 0; got QCD=-0.5"),
        ("W=nan,QCD=1", "fractions must be finite and >= 0; got W=nan"),
    ],
)
def test_fractions_must_sum_to_one(tmp_path, capsys, fractions, message):
    out = tmp_path / "f.h5"
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(out), "--n-background", "100", "--fractions", fractions])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_fractions_summing_to_one_are_used_as_given(tmp_path):
    out = tmp_path / "f.h5"
    args = ["--out", str(out), "--n-background", "100", "--n-signal", "0", "--no-progress"]
    # within the tolerance of 1e-6: accepted as they are
    assert main([*args, "--fractions", "W=0.3,QCD=0.7000004"]) == 0
    assert read_events(out).counts() == {"W": 30, "QCD": 70}


def test_negative_signal_count_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "s.h5"), "--signals", "Ato4l=-5,LQ_btau=10"])
    assert "argument --signals: counts must be >= 0; got Ato4l=-5" in capsys.readouterr().err


def test_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "e.h5"
    out.write_text("x")
    assert main(["--out", str(out), "--n-background", "10", "--no-progress"]) == 2
    assert capsys.readouterr().err == f"contrastx-generate: error: {out} exists (use --overwrite)\n"
    args = ["--out", str(tmp_path / "z.h5"), "--n-background", "0", "--n-signal", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == "contrastx-generate: error: nothing to generate (all counts are zero)\n"


def test_help_prints_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "--worker-threads. (default: all cores)" in text  # --workers (ExecutorOptions)
    assert "(default: 500)" in text and "(default: True)" in text
    assert "random seed (default: 0)" in text
