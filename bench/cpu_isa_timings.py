"""Native CPU kernels at every instruction-set level vs their torch references, one process.

    python bench/cpu_isa_timings.py [--repeat 5] [--json out.json]
    ATEN_CPU_CAPABILITY=avx2 python bench/cpu_isa_timings.py   # torch restricted to AVX2 too

The CPU kernels exist once per level (``avx512``, ``avx2``, ``baseline``, see
``contrastx.ops.cpu_isa_levels``); this times each op at every level this CPU supports, and
the torch reference once (at torch's own capability, printed; set ``ATEN_CPU_CAPABILITY`` to
compare like with like).  Times are the minimum of ``--repeat`` calls after one warm-up (the
torch references allocate 8 MiB chunks and vary by up to 4x between runs; the minimum is the
fair baseline).  Sizes are the NPLM ones: N = 2e5 rows, M = 1000 centres, d = 4, B = 1, and
the toy CG operator with 250 selections of 10 % of the rows.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from contrastx.ops import (
    RowSelection,
    cpu_isa_levels,
    gaussian_kernel_matvec,
    gaussian_kernel_t_matvec,
    gaussian_weighted_gram,
    selected_gram_matvec,
    use_cpu_isa,
)

N, M, D, SIGMA = 200_000, 1_000, 4, 1.0


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def both(fn: Callable[..., object], *args: object) -> tuple[Callable[[], object], ...]:
    """``fn(*args)`` with the native kernels and with the torch reference."""
    return tuple(functools.partial(fn, *args, backend=b) for b in ("native", "torch"))


def cases(dtype: torch.dtype) -> dict[str, tuple[Callable[[], object], ...]]:
    """name -> (native call, torch reference call)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=g, dtype=dtype)
    c = torch.randn(M, D, generator=g, dtype=dtype)
    v = torch.randn(M, 1, generator=g, dtype=dtype)
    u = torch.randn(N, 1, generator=g, dtype=dtype)
    name = str(dtype).removeprefix("torch.")
    out = {
        f"K @ v {name}": both(gaussian_kernel_matvec, x, c, v, SIGMA),
        f"K^T u {name}": both(gaussian_kernel_t_matvec, x, c, u, SIGMA),
    }
    if dtype == torch.float64:
        out[f"Gram {name}"] = both(gaussian_weighted_gram, x, c, SIGMA)
        rng = np.random.default_rng(0)
        z = torch.from_numpy(rng.normal(size=(N, M)))
        lists = [rng.choice(N, N // 10, replace=False) for _ in range(250)]
        sel = RowSelection.from_lists(lists, N)
        vs = torch.from_numpy(rng.normal(size=(M, 250)))
        out["selected CG operator B=250 float64"] = both(selected_gram_matvec, z, sel, vs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the timings here")
    args = parser.parse_args()
    levels = cpu_isa_levels()[::-1]
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__} (capability {capability}), {torch.get_num_threads()} threads")
    print(f"{'op':36s}" + "".join(f"{lv:>12s}" for lv in levels) + f"{'torch':>12s}  ratios")
    results = {}
    for dtype in (torch.float64, torch.float32):
        for name, (native, reference) in cases(dtype).items():
            row = {}
            for level in levels:
                with use_cpu_isa(level):
                    row[level] = best_time(native, args.repeat)
            row["torch"] = best_time(reference, max(2, args.repeat // 2))
            ratios = " ".join(f"{row['torch'] / row[lv]:.1f}x" for lv in levels)
            cells = "".join(f"{row[k] * 1e3:10.1f}ms" for k in [*levels, "torch"])
            print(f"{name:36s}{cells}  {ratios}", flush=True)
            results[name] = row
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seconds": results, "levels": levels}, fh, indent=2)


if __name__ == "__main__":
    main()
