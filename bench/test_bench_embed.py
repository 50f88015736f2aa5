"""Training throughput of the contrastive encoders on CPU at the paper's batch sizes.

Run with ``pytest bench/test_bench_embed.py``. One training step (two naively masked
views, forward, SupCon loss, backward, optimiser step) at batch size 1024 (Table I)
for the MLP (LARS) and the Transformer (Table IV sizes, Adam). ``extra_info`` holds
``events_per_s`` and ``loss_share`` (the fraction of the step spent in the loss's
forward and backward, timed separately on the step's projections).
"""

from __future__ import annotations

import time

import pytest
import torch
from contrastx.embed.augmentations import NaiveMasking
from contrastx.embed.losses import supcon_loss
from contrastx.embed.model import build_model
from contrastx.embed.optim import LARS
from contrastx.events import Preprocessor
from contrastx.events.generators import generate_sample, mixture_counts
from contrastx.events.layout import ADC2021_MIXTURE

BATCH = 1024


@pytest.fixture(scope="module")
def batch():
    ev = generate_sample(mixture_counts(BATCH, ADC2021_MIXTURE), seed=0)
    return ev, torch.from_numpy(ev.particles), torch.from_numpy(ev.labels)


def _loss_seconds(proj: torch.Tensor, y: torch.Tensor, repeats: int = 5) -> float:
    p = proj.detach().requires_grad_()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        supcon_loss([p[:BATCH], p[BATCH:]], y, 0.1).backward()
        best = min(best, time.perf_counter() - t)
        p.grad = None
    return best


@pytest.mark.parametrize("encoder", ["mlp", "transformer"])
def test_bench_train_step(benchmark, batch, encoder):
    ev, x, y = batch
    torch.manual_seed(0)
    head = "projection" if encoder == "mlp" else "dino"
    pre = Preprocessor().fit(ev).state_dict()
    model = build_model({"encoder": encoder, "latent_dim": 8, "head": head, "preprocessing": pre})
    model.train()
    params = list(model.parameters())
    opt = (
        LARS(params, lr=1.2, weight_decay=1e-6)
        if encoder == "mlp"
        else torch.optim.Adam(params, lr=1e-3)
    )
    aug = NaiveMasking(0.5)
    gen = torch.Generator().manual_seed(0)
    last = {}

    def step():
        proj = model(torch.cat([aug(x, gen), aug(x, gen)]))["projection"]
        loss = supcon_loss([proj[:BATCH], proj[BATCH:]], y, 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last["proj"] = proj

    rounds = 5 if encoder == "mlp" else 3
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    step_s = benchmark.stats.stats.min
    loss_s = _loss_seconds(last["proj"], y)
    rate = BATCH / step_s
    benchmark.extra_info.update(
        events_per_s=round(rate),
        loss_share=round(loss_s / step_s, 3),
        threads=torch.get_num_threads(),
    )
    print(
        f"\n{encoder}: {rate:,.0f} events/s ({step_s * 1e3:.0f} ms/step at batch {BATCH}, "
        f"2 views), loss {loss_s * 1e3:.1f} ms = {loss_s / step_s:.1%} of the step, "
        f"{torch.get_num_threads()} threads"
    )
