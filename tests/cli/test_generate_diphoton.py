"""``contrastx-generate --dataset diphoton``: flags, errors and a tiny Pythia run."""

from __future__ import annotations

import importlib.util

import pytest
from contrastx.cli.generate import main
from contrastx.events import DIPHOTON, read_events

HAVE_PYTHIA = all(importlib.util.find_spec(m) for m in ("pythia8mc", "fastjet"))


def test_list_processes(capsys):
    assert main(["--dataset", "diphoton", "--list-processes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names[:5] == ["gamma_gamma", "ggF", "VBF", "VH", "ttH"]
    assert "X_hh_500" in names and "t_ch" in names
    assert any("X_hh" in line.split()[1] and "h h" in line for line in lines)
    assert main(["--list-processes"]) == 0
    assert capsys.readouterr().out.split()[0] == "W"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dataset", "diphoton", "--fractions", "W=1"],
            "--fractions applies to --dataset adc2021",
        ),
        (["--dataset", "diphoton", "--n-background", "5"], "--n-background applies to"),
        (["--n-continuum", "5"], "--n-continuum applies to --dataset diphoton only"),
        (["--signal-groups", "X_hh", "--n-higgs", "3"], "--n-higgs, --signal-groups apply to"),
        (["--dataset", "diphoton", "--generator", "fast"], "has no fast generator"),
        (
            ["--dataset", "diphoton", "--signal-groups", "Zprime"],
            "--signal-groups: unknown diphoton process or group 'Zprime'",
        ),
        (["--dataset", "diphoton", "--n-higgs", "-1"], "--n-higgs must be >= 0; got -1"),
        (["--dataset", "diphoton", "--n-signal", "-2"], "event counts must be non-negative"),
    ],
)
def test_flags_of_the_other_dataset_are_errors(tmp_path, capsys, args, message):
    out = tmp_path / "d.h5"
    assert main(["--out", str(out), *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contrastx-generate: error: ") and err.count("\n") == 1
    assert message in err
    assert not out.exists()


@pytest.mark.skipif(not HAVE_PYTHIA, reason="needs pythia8mc and fastjet (contrastx[pythia])")
def test_tiny_diphoton_run_and_resume(tmp_path, capsys):
    out = tmp_path / "d.h5"
    args = ["--dataset", "diphoton", "--out", str(out), "--n-continuum", "12", "--n-higgs", "0"]
    args += ["--signal-groups", "t_ch", "--n-signal", "6", "--no-mpi", "--workers", "1"]
    args += ["--batch-size", "100", "--seed", "4", "--no-progress"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "pythia diphoton benchmark" in text and "sigma x BR [fb]" in text
    ev = read_events(out)
    assert ev.layout == DIPHOTON and ev.counts() == {"gamma_gamma": 12, "t_ch": 6}
    md = ev.metadata
    assert md["mpi"] is False and md["seed"] == 4 and md["command"].startswith("contrastx-generate")
    assert md["diphoton_options"]["signal_groups"] == ["t_ch"]
    assert md["cross_section_pb"]["t_ch"] > 0
    # the same command again: the finished file is resumed and left as it is
    assert main(args) == 0
    again = read_events(out)
    assert (again.particles == ev.particles).all() and len(again) == 18
