"""pytest-benchmark suites: ``pytest bench/ --benchmark-only``.

Collects ``bench_*.py`` files (the default ``test_*.py`` pattern is left to ``tests/``) and
prints a native-vs-torch speed-up table at the end of the session.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

_RESULTS: dict[str, dict[str, float]] = defaultdict(dict)


def pytest_collect_file(file_path, parent):
    # Files named on the command line are collected by pytest itself whatever their name.
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def record_time():
    """``record_time(group, name, benchmark)``: keep the min time for the speed-up table."""

    def record(group: str, name: str, benchmark) -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            _RESULTS[group][name] = stats.stats.min

    return record


def pytest_terminal_summary(terminalreporter):
    rows = [(g, r) for g, r in sorted(_RESULTS.items()) if "native" in r and len(r) > 1]
    if not rows:
        return
    terminalreporter.section("native vs the torch reference or the previous path (min time)")
    for group, r in rows:
        others = "   ".join(
            f"{name} {t:8.4f} s ({t / r['native']:5.1f}x)"
            for name, t in sorted(r.items())
            if name != "native"
        )
        terminalreporter.write_line(f"{group:<40} native {r['native']:8.4f} s   {others}")
