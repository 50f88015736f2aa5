"""Native CUDA kernels vs their torch references on one GPU (issue 4's GPU targets).

Run on a machine with a CUDA GPU (``.ci/gpu-check`` does)::

    python bench/gpu_timings.py [--json out.json]

For each op, both implementations run on the same GPU and the same inputs; times are the
median of ``--repeat`` CUDA-event-timed calls after warm-up. Rates are reported against
the work actually needed (kernel evaluations per second; multiply-adds per second for the
Gram), so they can be set against the device's ceilings.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys

import torch
from contrastx import _native
from contrastx.embed.losses.vicreg import vicreg_loss
from contrastx.ops import (
    gaussian_kernel_matvec,
    gaussian_kernel_t_matvec,
    gaussian_weighted_gram,
    supcon_loss_fused,
)

N, M, SIGMA = 200_000, 1_000, 1.0


def cuda_time(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` timed calls (after two warm-up calls)."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def both(fn, *args):
    """``fn(*args)`` with the native kernels and with the torch reference."""
    return tuple(functools.partial(fn, *args, backend=b) for b in ("native", "torch"))


def cases():
    g = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape, dtype):
        return torch.randn(*shape, generator=g, device="cuda", dtype=dtype)

    for dtype in (torch.float64, torch.float32):
        name = str(dtype)[6:]
        for d in (4, 16):
            x, c = randn(N, d, dtype=dtype), randn(M, d, dtype=dtype)
            for b in (1, 64):
                v, u = randn(M, b, dtype=dtype), randn(N, b, dtype=dtype)
                yield (
                    f"K@V {name} d={d} B={b}",
                    N * M,
                    *both(gaussian_kernel_matvec, x, c, v, SIGMA),
                )
                yield (
                    f"K^T U {name} d={d} B={b}",
                    N * M,
                    *both(gaussian_kernel_t_matvec, x, c, u, SIGMA),
                )
            yield f"Gram {name} d={d}", N * M * M // 2, *both(gaussian_weighted_gram, x, c, SIGMA)
    for m, d in ((8192, 4), (8192, 64)):
        z = randn(m, d, dtype=torch.float32).requires_grad_(True)
        y = torch.randint(0, 8, (m,), device="cuda", generator=g)

        def supcon(z=z, y=y, *, backend):
            supcon_loss_fused(z, y, backend=backend).backward()

        yield f"SupCon fwd+bwd f32 M={m} D={d}", m * m, *both(supcon)
    z1 = randn(2048, 64, dtype=torch.float32).requires_grad_(True)
    z2 = randn(2048, 64, dtype=torch.float32).requires_grad_(True)

    def vic(*, backend):
        vicreg_loss(z1, z2, backend=backend).backward()

    yield "VICReg fwd+bwd f32 N=2048 D=64", 2048 * 64 * 64, *both(vic)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    if not _native.cuda_available():
        print(f"no usable CUDA kernels: {_native.native_info()['cuda_runtime_error']}")
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    rows = []
    for name, work, native, reference in cases():
        tn = cuda_time(native, args.repeat)
        tr = cuda_time(reference, args.repeat)
        rows.append(
            {"op": name, "native_s": tn, "torch_s": tr, "speedup": tr / tn, "work_per_s": work / tn}
        )
        print(
            f"{name:<34} native {tn * 1e3:9.3f} ms  torch {tr * 1e3:9.3f} ms  "
            f"speed-up {tr / tn:6.2f}x  native {work / tn:.3g} units/s",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
