"""Pipeline progress: logged (not printed), one line per block off a terminal, bars on one."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from contrastx.pipeline import Pipeline, load_config, stages

RAW_ONLY = """
[run]
out_dir = "{out}"
seed = 5

[events]
n_background = 2600
n_signal = 150
signals = ["Ato4l"]

[splits]
nplm_fraction = 0.6
linear_eval_events = 0

[nplm]
n_ref = 1000
n_bkg = 150
M = 20
n_toys = 8
n_toys_signal = 4
fractions = [0.1]

[results]
table_fraction = 0.1

[[embeddings]]
kind = "raw"
"""


def test_progress_lines_off_a_terminal():
    lines: list[str] = []
    p = stages._Progress(lines.append, "[toys/x] null.h5", 10, "toys", bar=False)
    p.update(4)
    p.update(6)
    p.close()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\[toys/x\] null\.h5: 4/10 toys, \S+ s elapsed, about \S+ s to go", lines[0]
    )
    assert re.fullmatch(r"\[toys/x\] null\.h5: 10/10 toys, \S+ s elapsed, done", lines[1])


def test_progress_bar_writes_no_lines(capsys):
    lines: list[str] = []
    p = stages._Progress(lines.append, "[toys/x] null.h5", 3, "toys", bar=True)
    p.update(3)
    p.close()
    assert lines == []
    assert "3/3" in capsys.readouterr().err  # the bar, on stderr


@pytest.mark.parametrize("terminal", [True, False])
def test_bars_only_on_a_terminal_and_when_not_silenced(monkeypatch, tmp_path, terminal):
    monkeypatch.setattr(stages, "stderr_is_terminal", lambda: terminal)
    cfg_path = tmp_path / "s.toml"
    cfg_path.write_text(RAW_ONLY.format(out=(tmp_path / "out").as_posix()))
    cfg = load_config(cfg_path)
    assert Pipeline(cfg).bars is terminal
    assert Pipeline(cfg, log=lambda s: None).bars is False


def test_stage_messages_are_logged_not_printed(tmp_path: Path, caplog, capsys, monkeypatch):
    monkeypatch.setattr(stages, "stderr_is_terminal", lambda: False)
    cfg_path = tmp_path / "s.toml"
    cfg_path.write_text(RAW_ONLY.format(out=(tmp_path / "out").as_posix()))
    with caplog.at_level(logging.INFO, logger="contrastx.pipeline.stages"):
        Pipeline(load_config(cfg_path)).run(until="toys")
    assert capsys.readouterr().out == ""
    text = caplog.text
    assert "[events] running" in text and "[toys/raw57] finished" in text
    assert "[embed/raw57] embedding" in text
    # one line per block of toys, with the time to go (or done)
    blocks = re.findall(r"\[toys/raw57\] null\.h5: (\d+)/8 toys, \S+ \S+ elapsed, ", text)
    assert blocks and blocks[-1] == "8"
