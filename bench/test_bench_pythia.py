"""Pythia 8 generator throughput: kept (selected) events per CPU-second, MPI on and off.

Run with ``nice -n 19 pytest bench/test_bench_pythia.py -s`` (needs
``pip install "contrastx[pythia]"``). Each case is one batch
(:func:`~contrastx.events.generators.pythia.pythia_batch`: Pythia initialisation,
generation, FastJet clustering, smearing and the lepton selection) of
``CONTRASTX_BENCH_PYTHIA_EVENTS`` generated events (default 500, the default
batch size). CPU time is the process CPU time, so the rate does not depend on the
load of the machine; the wall-clock time per batch is what pytest-benchmark reports.
``extra_info`` holds ``kept_per_cpu_s``, ``generated_per_cpu_s`` and
``filter_efficiency`` (see ``--benchmark-json``); a table is printed at the end.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pythia8mc", reason="needs pythia8mc: pip install 'contrastx[pythia]'")
pytest.importorskip("fastjet", reason="needs fastjet: pip install 'contrastx[pythia]'")

from contrastx.events.generators.pythia import pythia_batch
from contrastx.events.layout import PROCESSES

N_EVENTS = int(os.environ.get("CONTRASTX_BENCH_PYTHIA_EVENTS", "500"))
_TABLE: dict[tuple[str, bool], tuple[float, float, float]] = {}


@pytest.mark.parametrize("mpi", [False, True], ids=["mpi_off", "mpi_on"])
@pytest.mark.parametrize("process", PROCESSES)
def test_bench_pythia_batch(benchmark, process, mpi):
    res = benchmark.pedantic(
        pythia_batch,
        args=(process, 0),
        kwargs={"seed": 1, "n_events": N_EVENTS, "mpi": mpi},
        rounds=1,
        iterations=1,
    )
    assert res.n_generated > 0
    kept = res.n_passed / res.cpu_seconds
    gen = res.n_generated / res.cpu_seconds
    eff = res.n_passed / res.n_generated
    benchmark.extra_info.update(
        kept_per_cpu_s=round(kept, 1),
        generated_per_cpu_s=round(gen, 1),
        filter_efficiency=round(eff, 4),
        n_events=N_EVENTS,
    )
    _TABLE[(process, mpi)] = (kept, gen, eff)


def test_zz_print_table():
    if not _TABLE:
        pytest.skip("no benchmark ran")
    lines = [
        f"\nPythia generator, batches of {N_EVENTS} events, per CPU-second (incl. init):",
        f"{'process':<10} {'kept MPI off':>13} {'kept MPI on':>12} {'gen off':>8} "
        f"{'gen on':>7} {'eff off':>8} {'eff on':>7}",
    ]
    for p in PROCESSES:
        off = _TABLE.get((p, False), (float("nan"),) * 3)
        on = _TABLE.get((p, True), (float("nan"),) * 3)
        lines.append(
            f"{p:<10} {off[0]:13.1f} {on[0]:12.1f} {off[1]:8.0f} {on[1]:7.0f} "
            f"{off[2]:8.3f} {on[2]:7.3f}"
        )
    print("\n".join(lines))
