"""Pipeline progress: logged (not printed), one line per block off a terminal, bars on one."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from contrastx.pipeline import Pipeline, load_config, stages


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
def test_bars_only_on_a_terminal_and_when_not_silenced(monkeypatch, tiny_toml, terminal):
    monkeypatch.setattr(stages, "stderr_is_terminal", lambda: terminal)
    cfg = load_config(tiny_toml)
    assert Pipeline(cfg).bars is terminal
    assert Pipeline(cfg, log=lambda s: None).bars is False


def test_stage_messages_are_logged_not_printed(tiny_toml: Path, caplog, capsys, monkeypatch):
    monkeypatch.setattr(stages, "stderr_is_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="contrastx.pipeline.stages"):
        Pipeline(load_config(tiny_toml)).run(until="toys")
    assert capsys.readouterr().out == ""
    text = caplog.text
    assert "[events] running" in text and "[toys/raw57/draw0] finished" in text
    assert "[embed/raw57] embedding" in text
    # one line per block of toys, with the time to go (or done)
    blocks = re.findall(r"\[toys/raw57/draw0\] null\.h5: (\d+)/8 toys, \S+ \S+ elapsed, ", text)
    assert blocks and blocks[-1] == "8"
