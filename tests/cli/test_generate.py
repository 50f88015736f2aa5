import pytest
from contrastx.cli.generate import main
from contrastx.events import read_events


def test_generate_writes_labelled_sample(tmp_path, capsys):
    out = tmp_path / "s.h5"
    rc = main(
        [
            "--out",
            str(out),
            "--n-background",
            "1000",
            "--signals",
            "Ato4l=50,LQ_btau=20",
            "--seed",
            "3",
            "--no-progress",
        ]
    )
    assert rc == 0
    ev = read_events(out)
    assert ev.counts() == {"W": 592, "QCD": 338, "Z": 67, "ttbar": 3, "Ato4l": 50, "LQ_btau": 20}
    assert ev.metadata["generator"] == "contrastx.fast" and ev.metadata["seed"] == 3
    text = capsys.readouterr().out
    assert "1070 events" in text and "approximation" in text
    # refuses to overwrite, and is reproducible with --overwrite
    assert main(["--out", str(out), "--n-background", "10", "--no-progress"]) == 2
    rc = main(
        [
            "--out",
            str(out),
            "--overwrite",
            "--n-background",
            "1000",
            "--signals",
            "Ato4l=50,LQ_btau=20",
            "--seed",
            "3",
            "--no-progress",
        ]
    )
    assert rc == 0 and (read_events(out).particles == ev.particles).all()


def test_generate_rejects_unknown_process(tmp_path):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x.h5"), "--signals", "Zprime=10"])
