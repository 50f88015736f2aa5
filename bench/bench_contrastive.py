"""Contrastive losses, forward + backward: native kernels vs the torch reference losses.

* SupCon on one view of M rows (10 classes, float32, tau = 0.1) at M in {1,024, 8,192},
  D in {4, 64}: ``supcon_loss(z, y, backend="native" | "torch")``.
* VICReg of two views (float32, default weights) at N in {64, 2,048}, D = 64:
  ``vicreg_loss(z1, z2, backend="native" | "torch")``.

Each (loss, size) pair shares a benchmark group; the session summary prints the speed-ups.
Peak memory of one forward + backward is measured in a fresh subprocess per case as the
growth of ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` over the value after imports, inputs
and a small warm-up call (torch's CPU allocations are invisible to tracemalloc); it is stored
in ``extra_info["peak_rss_delta_mib"]`` (see ``--benchmark-json``) and printed by

    python bench/bench_contrastive.py            # memory table only
    pytest bench/bench_contrastive.py --benchmark-only
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import pytest
import torch
from contrastx import _native
from contrastx.embed.losses.supcon import supcon_loss
from contrastx.embed.losses.vicreg import vicreg_loss

pytestmark = pytest.mark.skipif(
    not _native.cpu_available(), reason=f"contrastx._C not importable: {_native.load_error()}"
)

TAU = 0.1
N_CLASSES = 10


@functools.lru_cache(maxsize=2)
def supcon_inputs(m: int, d: int):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(m, d, generator=g, dtype=torch.float32)
    y = torch.randint(0, N_CLASSES, (m,), generator=g)
    return z, y


@functools.lru_cache(maxsize=2)
def vicreg_inputs(n: int, d: int):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float32)
    z2 = z1 + 0.3 * torch.randn(n, d, generator=g, dtype=torch.float32)
    return z1, z2


def supcon_step(z: torch.Tensor, y: torch.Tensor, backend: str) -> torch.Tensor:
    z = z.detach().requires_grad_(True)
    supcon_loss(z, y, TAU, backend=backend).backward()
    return z.grad


def vicreg_step(z1: torch.Tensor, z2: torch.Tensor, backend: str) -> torch.Tensor:
    z1 = z1.detach().requires_grad_(True)
    z2 = z2.detach().requires_grad_(True)
    vicreg_loss(z1, z2, backend=backend).backward()
    return z1.grad


_CHILD = r"""
import gc, json, resource, sys, torch
sys.path.insert(0, {bench_dir!r})
import bench_contrastive as b
kind, impl, n, d, threads = {args!r}
torch.set_num_threads(threads)
if kind == "supcon":
    step, inputs = b.supcon_step, b.supcon_inputs
else:
    step, inputs = b.vicreg_step, b.vicreg_inputs
step(*inputs(64, d), impl)  # load kernels and libraries
big = inputs(n, d)
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step(*big, impl)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_rss_delta_mib": (after - before) / 1024.0}}))
"""


def peak_rss_delta_mib(kind: str, impl: str, n: int, d: int) -> float:
    """Peak resident-memory growth (MiB) of one forward + backward in a fresh process."""
    import pathlib

    code = _CHILD.format(
        bench_dir=str(pathlib.Path(__file__).resolve().parent),
        args=(kind, impl, n, d, torch.get_num_threads()),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_delta_mib"])


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("d", [4, 64])
@pytest.mark.parametrize("m", [1024, 8192])
def test_supcon_fwd_bwd(benchmark, record_time, m, d, impl):
    z, y = supcon_inputs(m, d)
    group = f"supcon f32 M={m} D={d} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(m=m, d=d, threads=torch.get_num_threads())
    benchmark.extra_info["peak_rss_delta_mib"] = peak_rss_delta_mib("supcon", impl, m, d)
    rounds = 3 if m > 2048 else 10
    grad = benchmark.pedantic(
        supcon_step, args=(z, y, impl), rounds=rounds, iterations=1, warmup_rounds=1
    )
    assert grad.shape == (m, d) and torch.isfinite(grad).all()
    record_time(group, impl, benchmark)


@pytest.mark.parametrize("impl", ["native", "torch"])
@pytest.mark.parametrize("n", [64, 2048])
def test_vicreg_fwd_bwd(benchmark, record_time, n, impl):
    d = 64
    z1, z2 = vicreg_inputs(n, d)
    group = f"vicreg f32 N={n} D={d} T={torch.get_num_threads()}"
    benchmark.group = group
    benchmark.extra_info.update(n=n, d=d, threads=torch.get_num_threads())
    benchmark.extra_info["peak_rss_delta_mib"] = peak_rss_delta_mib("vicreg", impl, n, d)
    grad = benchmark.pedantic(
        vicreg_step, args=(z1, z2, impl), rounds=50, iterations=5, warmup_rounds=2
    )
    assert grad.shape == (n, d)
    record_time(group, impl, benchmark)


if __name__ == "__main__":
    print(f"peak RSS growth of one forward + backward (MiB), T={torch.get_num_threads()}")
    for m in (1024, 8192):
        for d in (4, 64):
            r = {impl: peak_rss_delta_mib("supcon", impl, m, d) for impl in ("native", "torch")}
            print(f"supcon M={m:5d} D={d:2d}  native {r['native']:8.1f}  torch {r['torch']:8.1f}")
    for n in (64, 2048):
        r = {impl: peak_rss_delta_mib("vicreg", impl, n, 64) for impl in ("native", "torch")}
        print(f"vicreg N={n:5d} D=64  native {r['native']:8.1f}  torch {r['torch']:8.1f}")
