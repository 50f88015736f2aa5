"""Console helpers shared by the command-line tools and the long-running steps (torch-free).

- :func:`logging_to_stderr`: the library's log records on stderr while a command runs,
  each line prefixed with the command's name.
- :func:`stderr_is_terminal`: whether a person is probably watching (progress bars) or the
  output goes to a file (one log line per step).
- :func:`format_duration`: a rounded duration for progress messages.
- :class:`Progress`: items done of a total, with a tqdm bar or the elapsed time and the
  time to go for a log line.
- :func:`error_exit`: the one line a command prints for a bad input, and its exit status.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "Progress",
    "error_exit",
    "format_duration",
    "logging_to_stderr",
    "stderr_is_terminal",
]

USAGE_ERROR = 2
"""Exit status of a command refusing its input (as argparse's own errors)."""


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` is a terminal (False for a replaced or closed stream)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def format_duration(seconds: float) -> str:
    """A rounded duration for progress messages (``"8.2 s"``, ``"24 min"``, ``"1.5 h"``)."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def error_exit(prog: str, err: object) -> int:
    """Print ``<prog>: error: <err>`` on stderr and return the exit status for it."""
    print(f"{prog}: error: {err}", file=sys.stderr)
    return USAGE_ERROR


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (looked up on every record)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


class _CommandFormatter(logging.Formatter):
    """``<prog>: <message>``, with ``warning: ``/``error: `` before warnings and errors."""

    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return f"{self.prog}: {level}{record.getMessage()}"


@contextlib.contextmanager
def logging_to_stderr(prog: str, level: int = logging.INFO) -> Iterator[None]:
    """Send the library's log records (``level`` and above) to stderr while a command runs.

    Parameters
    ----------
    prog : str
        The command's name, the prefix of every line.
    level : int
        The lowest level shown (``logging.WARNING`` for a quiet run). The ``contrastx``
        logger's own level is lowered to it for the duration if it is higher or unset,
        and restored afterwards.
    """
    log = logging.getLogger("contrastx")
    handler = _StderrHandler()
    handler.setFormatter(_CommandFormatter(prog))
    handler.setLevel(level)
    previous = log.level
    log.addHandler(handler)
    if previous == logging.NOTSET or previous > level:
        log.setLevel(level)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


class Progress:
    """Items done of a total: a tqdm bar, or the numbers for one log line per update.

    The rate and the time to go count only the items done since this object was made
    (a resumed job's earlier items carry no timing).

    Parameters
    ----------
    total : int
        Items of the whole job.
    bar : bool
        Show a tqdm bar on stderr (with its own rate and ETA).
    desc : str
        The bar's label.
    unit : str
        The bar's name of one item.
    initial : int
        Items done before (a resumed job): the bar starts there and they are not to go.

    Attributes
    ----------
    done : int
        Items done since this object was made.
    bar : tqdm or None
        The bar, where one is shown (for ``bar.set_postfix``).
    """

    def __init__(
        self, total: int, *, bar: bool, desc: str = "", unit: str = "it", initial: int = 0
    ) -> None:
        self.total = int(total)
        self.initial = int(initial)
        self.done = 0
        self.t0 = time.perf_counter()
        self.bar: Any = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, desc=desc, unit=unit)

    @property
    def elapsed(self) -> float:
        """Seconds since this object was made."""
        return time.perf_counter() - self.t0

    @property
    def left(self) -> int:
        """Items still to do."""
        return self.total - self.initial - self.done

    def rate(self) -> float:
        """Items per second since this object was made."""
        return self.done / max(self.elapsed, 1e-9)

    def time_to_go(self) -> str:
        """The time to go at this session's rate, ``"done"`` or ``"unknown"`` (nothing done)."""
        if self.left <= 0:
            return "done"
        if self.done <= 0:
            return "unknown"
        return format_duration(self.elapsed / self.done * self.left)

    def update(self, n: int) -> None:
        """``n`` more items are done."""
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(int(n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
