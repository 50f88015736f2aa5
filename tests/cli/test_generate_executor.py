"""contrastx-generate's executor flags: built from ExecutorOptions, passed to the generator.

No Pythia run here (the generator is replaced by a stub that records its arguments);
the runs themselves are in tests/events/test_pythia_dask.py.
"""

from __future__ import annotations

import pytest
from contrastx.cli.generate import build_parser, main
from contrastx.distributed import ExecutorOptions
from contrastx.events.generators import diphoton, pythia


class Captured(Exception):
    """Raised by the stub generator (main does not catch it)."""


@pytest.fixture
def captured(monkeypatch):
    calls: list[dict] = []

    def stub(*args, **kwargs):
        calls.append(kwargs)
        raise Captured

    monkeypatch.setattr(pythia, "generate_pythia", stub)
    monkeypatch.setattr(diphoton, "generate_diphoton", stub)
    return calls


PYTHIA = ["--generator", "pythia", "--n-background", "0", "--signals", "Z=10", "--no-progress"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], ExecutorOptions(executor="processes")),
        (["--workers", "3"], ExecutorOptions(executor="processes", workers=3)),
        (["--workers", "1"], ExecutorOptions(executor="processes", workers=1)),
        (["--executor", "inline"], ExecutorOptions(executor="inline")),
        (
            ["--executor", "dask", "--scheduler", "tcp://h:8786", "--retries", "0"],
            ExecutorOptions(executor="dask", scheduler="tcp://h:8786", retries=0),
        ),
        (
            ["--executor", "dask", "--cluster", "slurm", "--jobs", "20", "--cores", "8"],
            ExecutorOptions(executor="dask", cluster="slurm", jobs=20, cores=8),
        ),
    ],
)
def test_flags_reach_the_generator_as_executor_options(tmp_path, captured, flags, expected):
    with pytest.raises(Captured):
        main(["--out", str(tmp_path / "p.h5"), *PYTHIA, *flags])
    (kwargs,) = captured
    assert "workers" not in kwargs
    assert kwargs["executor"] == expected


def test_diphoton_gets_the_executor_too(tmp_path, captured):
    flags = ["--dataset", "diphoton", "--signal-groups", "none", "--executor", "dask"]
    with pytest.raises(Captured):
        main(["--out", str(tmp_path / "d.h5"), *flags, "--workers", "2", "--no-progress"])
    assert captured[0]["executor"] == ExecutorOptions(executor="dask", workers=2)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1; got 0"),
        (["--scheduler", "tcp://h:8786"], "scheduler needs executor 'dask'"),
        (["--executor", "dask", "--scheduler", "h:8786"], "tcp://host:8786"),
    ],
)
def test_bad_executor_flags_are_one_line(tmp_path, captured, capsys, flags, message):
    assert main(["--out", str(tmp_path / "p.h5"), *PYTHIA, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("contrastx-generate: error: ") and message in err[0]
    assert captured == []


def test_fast_generator_refuses_executor_flags(tmp_path, capsys):
    out = tmp_path / "f.h5"
    rc = main(["--out", str(out), "--n-background", "10", "--executor", "dask", "--jobs", "2"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--executor, --jobs apply to the Pythia generator only" in err
    assert "(this run: --generator fast)" in err
    assert not out.exists()


def test_help_says_which_flags_apply():
    text = build_parser().format_help()
    assert "--executor {inline,processes,dask}" in text
    assert "--executor processes (the default) runs them on --workers local processes" in text
    assert "--shard-size" not in text and "--worker-threads WORKER_THREADS" not in text
