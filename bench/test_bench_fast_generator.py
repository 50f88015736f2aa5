"""Throughput of the fast generator on a 100k-event ADC2021 background mixture.

Run with ``pytest bench/test_bench_fast_generator.py``; the rate is stored in
``extra_info["events_per_s"]`` (see ``--benchmark-json``).
"""

import pytest
from contrastx.events.generators import generate_process, generate_sample, mixture_counts
from contrastx.events.layout import ADC2021_MIXTURE, PROCESSES

N_EVENTS = 100_000


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


@pytest.mark.parametrize("process", PROCESSES)
def test_bench_single_process(benchmark, process):
    n = 20_000
    ev = benchmark.pedantic(generate_process, args=(process, n), rounds=3, iterations=1)
    assert len(ev) == n
    benchmark.extra_info["events_per_s"] = round(n / benchmark.stats.stats.mean)
