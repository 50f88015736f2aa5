"""NPLM shared-reference toys: setup and time per toy against N(B) and M, with their floors.

    python bench/nplm_scaling.py                      # the issue's table (~15 min, 2 cores)
    python bench/nplm_scaling.py --points 1e4:1000 1e5:2000 --toys 32 --json out.json

Each point ``N(B):M`` runs in its own process (so its peak RSS is its own): a Gaussian
background pool (d = 4) of N_R = 10 N(B) reference events plus a data pool, the engine's
setup (reference draw and centres, the reference's whitened Gram, the whitened data pool),
then one block of ``--toys`` null toys (a block as large as ``contrastx-toys`` reaches
after its first timed block). The data pool is ``--pool-factor`` x N(B) events (10, as
``contrastx-toys``), capped so that the stored pool fits ``--pool-gb`` (a larger pool
fraction N(B)/N_pool then: the table says which).

The floors are computed from the machine's rates measured in the same run: the float64
GEMM rate on all threads (4096^3 DGEMM) and the read bandwidth (a sum over a 1.6 GB
array).

* setup: the kernel tiles' exps aside, three products of N M^2 flops each at the GEMM
  rate (the reference's whitening K T^-1 and its Gram Z^T Z, the pool's whitening: a
  triangular product and a symmetric one; the code's blocked GEMMs do (1 + 256/M) and
  (1 + 1/8) times that);
* per toy: the data term (4 N_D M flops per CG pass, one pass per iteration plus one for
  the right-hand side) and sum_R e^f (2 N_R M flops) at the GEMM rate, or the data
  term's bytes at the read bandwidth if that is larger: the toys of a block share each
  chunk of the stored pool, so a pass reads the pool once per block, N_pool M itemsize /
  B bytes per toy for a block of B toys.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

D = 4


def machine_rates() -> dict[str, float]:
    import torch

    a = torch.randn(4096, 4096, dtype=torch.float64)
    b = torch.randn(4096, 4096, dtype=torch.float64)
    a @ b
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    gemm = 3 * 2 * 4096**3 / (time.perf_counter() - start)
    x = torch.ones(200_000_000, dtype=torch.float64)
    x.sum()
    start = time.perf_counter()
    x.sum()
    bandwidth = x.numel() * 8 / (time.perf_counter() - start)
    return {"gemm_flops_s": gemm, "read_bytes_s": bandwidth, "threads": torch.get_num_threads()}


def run_point(n_bkg: float, m: int, toys: int, pool_factor: float, pool_gb: float, dtype: str):
    from contrastx.nplm.toys import ToyConfig, ToyEngine

    n_ref = int(10 * n_bkg)
    itemsize = {"float64": 8, "float32": 4, "int16": 2}[dtype]
    n_pool = int(min(pool_factor * n_bkg, pool_gb * 2**30 / (m * itemsize)))
    rng = np.random.default_rng(0)
    background = rng.normal(size=(n_ref + n_pool, D))
    cfg = ToyConfig(
        n_ref=n_ref,
        n_bkg=n_bkg,
        M=m,
        seed=1,
        pool_dtype=dtype,
        strategy="pool",
        max_block=toys,
        memory_bytes=8 * 2**30,
        pool_memory_bytes=64 * 2**30,
    )
    eng = ToyEngine(background, config=cfg)
    start = time.perf_counter()
    eng.prepare()
    setup = time.perf_counter() - start
    start = time.perf_counter()
    blocks = list(eng.run(range(toys)))
    per_toy = (time.perf_counter() - start) / toys
    n_iter = np.concatenate([b.n_iter for b in blocks])
    return {
        "n_bkg": n_bkg,
        "n_ref": n_ref,
        "M": m,
        "n_pool": n_pool,
        "pool_fraction": n_bkg / n_pool,
        "pool_dtype": dtype,
        "toys": toys,
        "setup_s": setup,
        "setup_parts_s": dict(eng.setup_seconds_),
        "per_toy_s": per_toy,
        "cg_iterations_mean": float(n_iter.mean()),
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "itemsize": itemsize,
    }


def floors(p: dict, rates: dict) -> dict[str, float]:
    n_ref, n_pool, m, n_d = p["n_ref"], p["n_pool"], p["M"], p["n_bkg"]
    setup_flops = (2 * n_ref + n_pool) * m**2
    passes = p["cg_iterations_mean"] + 1
    toy_flops = passes * 4 * n_d * m + 2 * n_ref * m
    toy_bytes = passes * n_pool * m * p["itemsize"] / p["toys"]
    return {
        "setup_floor_s": setup_flops / rates["gemm_flops_s"],
        "toy_flops": toy_flops,
        "toy_floor_flops_s": toy_flops / rates["gemm_flops_s"],
        "toy_floor_bytes_s": toy_bytes / rates["read_bytes_s"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--points",
        nargs="+",
        default=["1e4:1000", "1e5:1000", "1e6:1000", "1e5:500", "1e5:2000", "1e5:4000"],
        help="N(B):M pairs (default: the issue's table)",
    )
    ap.add_argument("--toys", type=int, default=32, help="null toys per point (one block)")
    ap.add_argument("--pool-factor", type=float, default=10.0)
    ap.add_argument("--pool-gb", type=float, default=4.0, help="largest stored pool, GiB")
    ap.add_argument("--pool-dtype", default="float32", choices=["float64", "float32", "int16"])
    ap.add_argument("--json", help="write the points and rates here")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one point, JSON on stdout
    args = ap.parse_args(argv)
    if args.one:
        n_bkg, m = args.one.split(":")
        point = run_point(
            float(n_bkg), int(m), args.toys, args.pool_factor, args.pool_gb, args.pool_dtype
        )
        print(json.dumps(point))
        return 0
    rates = machine_rates()
    print(
        f"machine: DGEMM {rates['gemm_flops_s'] / 1e9:.0f} GFLOP/s, read "
        f"{rates['read_bytes_s'] / 1e9:.1f} GB/s, {rates['threads']} threads; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    points = []
    print(
        "| N(B) | N_R | M | data pool (f) | setup s (floor) | per toy s (floor) | CG iter | "
        "max RSS GB |\n|---|---|---|---|---|---|---|---|",
        flush=True,
    )
    for spec in args.points:
        cmd = [sys.executable, __file__, "--one", spec, "--toys", str(args.toys)]
        cmd += ["--pool-factor", str(args.pool_factor), "--pool-gb", str(args.pool_gb)]
        cmd += ["--pool-dtype", args.pool_dtype]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        p = json.loads(out.strip().splitlines()[-1])
        p.update(floors(p, rates))
        points.append(p)
        floor_toy = max(p["toy_floor_flops_s"], p["toy_floor_bytes_s"])
        print(
            f"| {p['n_bkg']:.0e} | {p['n_ref']:.0e} | {p['M']} | {p['n_pool']:.2g} "
            f"({p['pool_fraction']:.2f}) | {p['setup_s']:.1f} ({p['setup_floor_s']:.1f}) | "
            f"{p['per_toy_s']:.3f} ({floor_toy:.3f}) | {p['cg_iterations_mean']:.1f} | "
            f"{p['max_rss_gb']:.1f} |",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rates": rates, "points": points}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
