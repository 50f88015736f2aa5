"""Throughput of the fast generator.

Run with ``pytest bench/test_bench_fast_generator.py``; rates are stored in
``extra_info["events_per_s"]`` (see ``--benchmark-json``).

``test_bench_paper_mixture`` is ``contrastx-toys --paper``'s sample (2 million ADC2021
background events plus 10 000 Ato4l) scaled down by ``PAPER_SCALE``, with one worker
process and with two: the two-worker run shares every process's batches among the
workers, so its speed-up over one worker shows how well the work is balanced (with
one worker per process, the process with the most events to generate set the wall time).
"""

import pytest
from contrastx.events.generators import generate_process, generate_sample, mixture_counts
from contrastx.events.layout import ADC2021_MIXTURE, PROCESSES

N_EVENTS = 100_000
PAPER_SCALE = 4


def test_bench_adc2021_mixture(benchmark):
    counts = mixture_counts(N_EVENTS, ADC2021_MIXTURE)
    seeds = iter(range(1000))
    ev = benchmark.pedantic(
        lambda: generate_sample(counts, seed=next(seeds)), rounds=5, iterations=1, warmup_rounds=1
    )
    assert len(ev) == N_EVENTS
    rate = N_EVENTS / benchmark.stats.stats.mean
    benchmark.extra_info["events"] = N_EVENTS
    benchmark.extra_info["events_per_s"] = round(rate)
    print(f"\nfast generator: {rate:,.0f} selected events/s (ADC2021 mixture, {N_EVENTS} events)")


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_paper_mixture(benchmark, workers):
    counts = mixture_counts(2_000_000 // PAPER_SCALE, ADC2021_MIXTURE)
    counts["Ato4l"] = 10_000 // PAPER_SCALE
    total = sum(counts.values())
    ev = benchmark.pedantic(
        generate_sample, args=(counts,), kwargs={"workers": workers}, rounds=2, iterations=1
    )
    assert len(ev) == total
    rate = total / benchmark.stats.stats.min
    benchmark.extra_info["events"] = total
    benchmark.extra_info["workers"] = workers
    benchmark.extra_info["events_per_s"] = round(rate)
    print(f"\nfast generator, paper sample / {PAPER_SCALE}, {workers} worker(s): {rate:,.0f} evt/s")


@pytest.mark.parametrize("process", PROCESSES)
def test_bench_single_process(benchmark, process):
    n = 20_000
    ev = benchmark.pedantic(generate_process, args=(process, n), rounds=3, iterations=1)
    assert len(ev) == n
    benchmark.extra_info["events_per_s"] = round(n / benchmark.stats.stats.mean)
