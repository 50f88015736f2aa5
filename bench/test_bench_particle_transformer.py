"""CPU throughput of the particle transformer encoder, training and inference, one thread.

Run with ``pytest bench/test_bench_particle_transformer.py``. Events in the diphoton
layout's size, 11 objects x 12 features (4 small-R jets, 2 large-R jets, 2 electrons,
2 muons, MET; a 5-way one-hot type among the features) and 2 event-level features, with
a realistic fill: each slot of a group filled with a fixed probability (small-R jets
0.55, large-R jets 0.3, leptons 0.1, MET always; about 4.2 filled objects per event),
the filled slots first, padded slots all zero.

For the paper's architecture (``default``: 4 + 2 blocks, d = 128) and the CPU preset's
(``cpu``: 2 + 1 blocks, d = 64), each with the Gaussian output block (D = 6) and the
projection head:

* ``test_bench_train_step``: one training step on a batch of 1024 events (forward,
  SupCon + KL, backward, Adam step; 13 classes, balanced);
* ``test_bench_inference``: the inference embedding (Gaussian mean, eval mode, no
  gradients) of 4096 events.

Both run on one thread (``torch.set_num_threads(1)``; restored afterwards).
``extra_info`` holds ``events_per_s``, the batch size, the thread count and the model's
parameter counts (all, and the inference part without the projection head).
"""

from __future__ import annotations

import pytest
import torch
from contrastx.embed.losses import supcon_kl_loss
from contrastx.embed.model import EmbeddingModel, build_model
from contrastx.embed.particle_transformer import CPU_ENCODER_KWARGS, PRESETS

N_OBJECTS, N_FEATURES, N_EVENT_FEATURES = 11, 12, 2
TRAIN_BATCH = 1024
INFERENCE_EVENTS = 4096
N_CLASSES = 13
GROUPS = (  # (slots, fill probability, one-hot type index)
    (4, 0.55, 0),  # small-R jets
    (2, 0.30, 1),  # large-R jets
    (2, 0.10, 2),  # electrons
    (2, 0.10, 3),  # muons
    (1, 1.00, 4),  # MET
)
ARCHITECTURES = {
    "default": PRESETS["supcon-kl-particle-transformer"]["encoder_kwargs"],
    "cpu": CPU_ENCODER_KWARGS,
}


def diphoton_like(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(objects (n, 11, 12), event features (n, 2), labels (n,)) with realistic padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, N_OBJECTS, N_FEATURES)
    start = 0
    for slots, p, kind in GROUPS:
        n_filled = torch.binomial(torch.full((n,), float(slots)), torch.full((n,), p), generator=g)
        filled = torch.arange(slots)[None, :] < n_filled[:, None]
        feats = torch.randn(n, slots, N_FEATURES - 5, generator=g)
        onehot = torch.zeros(n, slots, 5)
        onehot[..., kind] = 1.0
        x[:, start : start + slots] = torch.cat([feats, onehot], dim=-1) * filled[..., None]
        start += slots
    ev = torch.randn(n, N_EVENT_FEATURES, generator=g)
    labels = torch.arange(n) % N_CLASSES
    return x, ev, labels


def make_model(arch: str) -> EmbeddingModel:
    torch.manual_seed(0)
    return build_model(
        {
            "encoder": "particle_transformer",
            "latent_dim": 6,
            "gaussian": True,
            "head": "projection",
            "encoder_kwargs": {**ARCHITECTURES[arch], "n_event_features": N_EVENT_FEATURES},
        }
    )


def parameter_counts(model: EmbeddingModel) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    return {"parameters": total, "inference_parameters": total - head}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_bench_train_step(benchmark, arch):
    x, ev, y = diphoton_like(TRAIN_BATCH, seed=0)
    model = make_model(arch).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        out = model(x, event_features=ev)
        loss = supcon_kl_loss(out["projection"], y, out["mu"], out["logvar"], 0.1, 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    step_s = benchmark.stats.stats.min
    rate = TRAIN_BATCH / step_s
    benchmark.extra_info.update(
        events_per_s=round(rate),
        batch=TRAIN_BATCH,
        threads=torch.get_num_threads(),
        filled_objects_per_event=round(float((x != 0).any(-1).sum(1).float().mean()), 2),
        **parameter_counts(model),
    )
    print(
        f"\n{arch}: training {rate:,.0f} events/s ({step_s * 1e3:.0f} ms/step at batch "
        f"{TRAIN_BATCH}), {torch.get_num_threads()} thread(s), {parameter_counts(model)}"
    )


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_bench_inference(benchmark, arch):
    x, ev, _ = diphoton_like(INFERENCE_EVENTS, seed=1)
    model = make_model(arch).eval()

    def run():
        with torch.no_grad():
            return model.embed(x, event_features=ev)

    z = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert z.shape == (INFERENCE_EVENTS, 6) and torch.isfinite(z).all()
    run_s = benchmark.stats.stats.min
    rate = INFERENCE_EVENTS / run_s
    benchmark.extra_info.update(
        events_per_s=round(rate),
        batch=INFERENCE_EVENTS,
        threads=torch.get_num_threads(),
        **parameter_counts(model),
    )
    print(
        f"\n{arch}: inference {rate:,.0f} events/s ({run_s * 1e3:.0f} ms for "
        f"{INFERENCE_EVENTS} events), {torch.get_num_threads()} thread(s)"
    )
