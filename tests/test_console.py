"""The console helpers shared by the commands and the progress reports."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from contrastx import _console
from contrastx._console import Progress, format_duration, logging_to_stderr


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(8.24, "8.2 s"), (42.4, "42 s"), (90.0, "1.5 min"), (1440.0, "24 min"), (5400.0, "1.5 h")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_logging_to_stderr_prefixes_lines_and_restores_the_level(capsys):
    log = logging.getLogger("contrastx.some.module")
    root = logging.getLogger("contrastx")
    before = root.level
    with logging_to_stderr("contrastx-x"):
        log.info("halfway")
        log.debug("hidden")
        log.warning("odd input")
    assert root.level == before
    log.warning("after the command")  # no handler left behind
    assert capsys.readouterr().err == "contrastx-x: halfway\ncontrastx-x: warning: odd input\n"


def test_logging_to_stderr_quiet_level(capsys):
    with logging_to_stderr("contrastx-x", logging.WARNING):
        logging.getLogger("contrastx.m").info("progress")
        logging.getLogger("contrastx.m").error("broken")
    assert capsys.readouterr().err == "contrastx-x: error: broken\n"


def test_error_exit(capsys):
    assert _console.error_exit("contrastx-x", ValueError("bad.h5: no events")) == 2
    assert capsys.readouterr().err == "contrastx-x: error: bad.h5: no events\n"


def test_stderr_is_terminal_on_a_replaced_stream(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _console.stderr_is_terminal() is False
    monkeypatch.setattr(sys, "stderr", object())  # no isatty at all
    assert _console.stderr_is_terminal() is False


def test_progress_time_to_go_counts_this_session_only(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(_console.time, "perf_counter", lambda: now[0])
    p = Progress(10, bar=False, initial=4)
    assert p.left == 6 and p.time_to_go() == "unknown"
    now[0] += 4.0  # four seconds for the first two items: two seconds each
    p.update(2)
    assert p.left == 4 and p.done == 2
    assert p.time_to_go() == "8.0 s"
    p.update(4)
    assert p.time_to_go() == "done"
    p.close()


def test_progress_bar_on_stderr(capsys):
    p = Progress(3, bar=True, desc="job", unit="toy")
    p.update(3)
    p.close()
    assert "job" in capsys.readouterr().err and p.bar is not None
