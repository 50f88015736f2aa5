"""Training over several processes (torchrun / gloo on the CPU) equals the single-process run.

The multi-process tests start this file as a script in two processes with the
environment ``torchrun`` gives its workers (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``); each process writes its results to a file, and the
test compares them with the same computation done here in one process. One test runs
``contrastx-train`` under ``torchrun`` itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from contrastx.embed.distributed import (
    SINGLE_PROCESS,
    World,
    epoch_seed,
    launch_from_env,
    process_device,
    synchronised_batch_norm,
)
from torch import nn

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

WORLD_SIZE = 2
STEP_BATCH = 37  # odd: the two processes hold 19 and 18 rows
TINY_PARTICLE_TRANSFORMER = {
    "embed_dims": [16],
    "n_heads": 2,
    "ffn_ratio": 2,
    "n_particle_blocks": 1,
    "n_class_blocks": 1,
    "mlp_dims": [12],
    "dropout": 0.0,
    "attn_dropout": 0.0,
    "activation_dropout": 0.0,
    "interaction_columns": [0, 1, 2],  # pair features: a batch norm over the pairs
    "pair_embed_dims": [8],
}


def _sample():
    from contrastx.events.generators import generate_sample

    return generate_sample({"W": 100, "QCD": 100, "Z": 100, "ttbar": 100}, seed=0)


def _config(**overrides):
    from contrastx.embed.training import TrainConfig

    settings = {
        "latent_dim": 4,
        "epochs": 2,
        "batch_size": 64,
        "lr": 0.5,
        "warmup_epochs": 1,
        "progress": False,
        "seed": 3,
    }
    return TrainConfig(**{**settings, **overrides})


# ------------------------------------------------------------------ one step, float64
STEP_CASES = {
    "simclr": {"method": "simclr", "augmentation": "mask:0.5,smear"},
    "supcon": {"method": "supcon", "augmentation": "mask:0.5,rotate"},
    "supcon_one_view": {"method": "supcon", "augmentation": None},
    "vicreg": {"method": "vicreg", "augmentation": "mask:0.5,rotate"},
    "vicreg_ce": {"method": "vicreg_ce", "augmentation": "gauss"},
    # eval mode: the Gaussian block's sample is its mean (no per-process noise)
    "supcon_kl_eval": {"method": "supcon_kl", "augmentation": None},
    "particle_transformer": {
        "method": "supcon",
        "augmentation": "mask:0.3",
        "encoder": "particle_transformer",
        "preprocessing": "layout",
        "optimizer": "adam",
        "lr": 1e-3,
        "encoder_kwargs": TINY_PARTICLE_TRANSFORMER,
    },
}


def _one_step(name: str, world: World) -> dict:
    """Loss, gradients and batch-norm buffers of one float64 step of case ``name``."""
    from contrastx.embed.training import Trainer

    trainer = Trainer(_config(**STEP_CASES[name]))
    state = trainer._setup(_sample())
    model = state.model.double()
    model.train(not name.endswith("_eval"))
    rows = torch.from_numpy(np.random.default_rng(5).permutation(state.n_train)[:STEP_BATCH])
    x, y = state.x_tr[rows].double(), state.y_tr[rows]
    gen = torch.Generator().manual_seed(11)
    with synchronised_batch_norm(model, world):
        loss = trainer.compute_loss(model, x, y, state.augmentation, gen, world=world)
        loss.backward()
        world.all_reduce_gradients(model.parameters())
    return {
        "loss": loss.detach(),
        "grads": {k: p.grad for k, p in model.named_parameters() if p.grad is not None},
        "buffers": {k: b.clone() for k, b in model.named_buffers() if "running_" in k},
    }


# ------------------------------------------------------------------ training runs
# Two runs that differ by rounding (one process or two, or two thread counts) drift apart
# where training amplifies rounding. LARS, not Adam: Adam divides every gradient by its
# own running size, so a parameter whose gradient is zero in exact arithmetic (an
# attention key bias, a bias before a batch norm) moves by about lr per step on rounding
# noise alone. lr 0.03 for the particle transformer: at 0.1 its 8 steps can amplify the
# rounding of one step (1e-5 of the gradient) to 1e-3 in the weights.
FIT_CASES = {
    "simclr": {"method": "simclr", "augmentation": "mask:0.5"},
    "balanced_particle_transformer": {
        "method": "supcon",
        "sampling": "balanced",
        "augmentation": "mask:0.3",
        "encoder": "particle_transformer",
        "preprocessing": "layout",
        "lr": 0.03,
        "encoder_kwargs": TINY_PARTICLE_TRANSFORMER,
    },
}


class _Stop(Exception):
    pass


def _stop_after_first_epoch(epoch, record):
    if epoch == 0:
        raise _Stop


def _fit_results(trainer) -> dict:
    return {
        "model": {k: v.clone() for k, v in trainer.model_.state_dict().items()},
        "history": [(h["train_loss"], h["val_loss"], h["lr"]) for h in trainer.history_],
    }


def _fits(out: Path, rank: int) -> dict:
    """Per case: the uninterrupted 2-epoch run, and one interrupted after epoch 1 and resumed."""
    from contrastx.embed.training import Trainer

    events = _sample()
    results = {}
    for name, overrides in FIT_CASES.items():
        config = _config(**overrides)
        full = Trainer(config).fit(events, checkpoint=out / f"{name}-full.pt")
        try:
            Trainer(config).fit(
                events, checkpoint=out / f"{name}-cut.pt", on_epoch_end=_stop_after_first_epoch
            )
        except _Stop:
            pass
        else:
            raise AssertionError("the interrupted run was not interrupted")
        resumed = Trainer(config).fit(events, checkpoint=out / f"{name}-cut.pt", resume=True)
        results[name] = {"full": _fit_results(full), "resumed": _fit_results(resumed)}
    # a broken checkpoint: rank 0's error is raised by every process (none waits for it)
    broken = out / "broken.pt"
    if rank == 0:
        broken.write_bytes(b"not a checkpoint")
    dist.barrier()
    try:
        Trainer(_config(**FIT_CASES["simclr"])).fit(events, checkpoint=broken, resume=True)
    except ValueError as err:
        results["broken_checkpoint_error"] = str(err)
    return results


def _worker(case: str, out: Path) -> None:
    """One process of a multi-process test (run as a script by :func:`_run_processes`)."""
    from contrastx.embed.distributed import init_world, shutdown

    torch.set_num_threads(1)
    world = init_world("cpu")
    assert world.size == WORLD_SIZE and dist.is_initialized()
    if case == "step":
        result = {name: _one_step(name, world) for name in STEP_CASES}
    elif case == "fit":
        result = _fits(out, world.rank)
    else:
        raise ValueError(f"unknown case {case!r}")
    torch.save(result, out / f"rank{world.rank}.pt")
    shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    src = str(Path(__file__).resolve().parents[2] / "python")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _run_processes(case: str, out: Path, timeout: float = 240) -> list[dict]:
    """Run :func:`_worker` in two processes (torchrun's environment); their results."""
    port = str(_free_port())
    procs = []
    for rank in range(WORLD_SIZE):
        env = _process_env(
            WORLD_SIZE=str(WORLD_SIZE),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, case, str(out)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, (p, text) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, f"rank {rank} failed:\n{text}"
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]


@needs_gloo
def test_one_step_over_two_processes_equals_one_process(tmp_path):
    """Loss, gradients and batch-norm statistics of one float64 step over a global batch of
    37 events (19 + 18 per process): equal to the single-process step to 1e-12 (relative)
    for every method, with augmentations, and for the particle transformer's batch norm."""
    ranks = _run_processes("step", tmp_path)
    for name in STEP_CASES:
        single = _one_step(name, SINGLE_PROCESS)
        assert single["grads"], name
        for rank, res in enumerate(ranks):
            got = res[name]
            where = f"{name}, rank {rank}"
            torch.testing.assert_close(got["loss"], single["loss"], rtol=1e-12, atol=0, msg=where)
            assert got["grads"].keys() == single["grads"].keys(), where
            # absolute tolerance on the scale of the largest gradient: some are zero in
            # exact arithmetic (a bias before a batch norm) and rounding noise here
            scale = max(float(g.abs().max()) for g in single["grads"].values())
            for k, g in single["grads"].items():
                torch.testing.assert_close(
                    got["grads"][k], g, rtol=1e-12, atol=1e-12 * scale, msg=f"{where}: {k}"
                )
            assert got["buffers"].keys() == single["buffers"].keys(), where
            for k, b in single["buffers"].items():
                torch.testing.assert_close(got["buffers"][k], b, rtol=1e-12, atol=1e-14)
        # the two processes hold the very same gradient (it was summed over them)
        for k in single["grads"]:
            assert torch.equal(ranks[0][name]["grads"][k], ranks[1][name]["grads"][k])
    assert single["buffers"], "the particle transformer case has no batch norm"


@needs_gloo
def test_training_over_two_processes_equals_one_process_and_resumes(tmp_path):
    """Two epochs (8 steps, float32) over two processes: the model equals the single-process
    model to 3e-4 (the largest difference seen: 3e-6 on the fast generator 0.1 sample,
    1.2e-4 on a bias of size 0.14 on its 0.2 sample) and the losses to 1e-5 (relative);
    both processes hold the same model; a
    run interrupted after epoch 1 and resumed from rank 0's checkpoint equals the
    uninterrupted one bitwise; a broken checkpoint raises the same error on both."""
    from contrastx.embed.training import Trainer

    ranks = _run_processes("fit", tmp_path)
    events = _sample()
    for name, overrides in FIT_CASES.items():
        single = Trainer(_config(**overrides)).fit(events)
        a, b = ranks[0][name], ranks[1][name]
        for k, v in single.model_.state_dict().items():
            assert torch.equal(a["full"]["model"][k], b["full"]["model"][k]), (name, k)
            assert torch.equal(a["full"]["model"][k], a["resumed"]["model"][k]), (name, k)
            assert torch.equal(b["full"]["model"][k], b["resumed"]["model"][k]), (name, k)
            if v.is_floating_point():
                torch.testing.assert_close(
                    a["full"]["model"][k], v, rtol=1e-4, atol=3e-4, msg=f"{name}: {k}"
                )
            else:
                assert torch.equal(a["full"]["model"][k], v), (name, k)
        assert a["full"]["history"] == a["resumed"]["history"] == b["full"]["history"], name
        want = [(h["train_loss"], h["val_loss"], h["lr"]) for h in single.history_]
        np.testing.assert_allclose(a["full"]["history"], want, rtol=1e-5, err_msg=name)
        assert (tmp_path / f"{name}-full.pt").exists()
    for res in ranks:
        assert "broken.pt: not a contrastx checkpoint" in res["broken_checkpoint_error"]


@needs_gloo
def test_contrastx_train_under_torchrun_writes_one_model(tmp_path):
    """``torchrun --nproc-per-node 2 -m contrastx.cli.train`` on a fast-generator sample:
    rank 0 alone prints and writes the model, which equals the single-process model to 1e-4
    (float32; the largest difference seen is 2e-6)."""
    from contrastx.cli import train as train_cli
    from contrastx.embed.model_file import load_model

    args = [
        "--n-events", "500", "--epochs", "1", "--batch-size", "64", "--latent-dim", "4",
        "--warmup-epochs", "0", "--no-progress", "--seed", "2", "--lr", "0.2",
    ]  # fmt: skip
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    out = tmp_path / "torchrun" / "model.pt"
    out.parent.mkdir()
    run = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", str(WORLD_SIZE), "-m",
         "contrastx.cli.train", *args, "--out", str(out),
         "--checkpoint", str(out.parent / "ck.pt")],
        env=_process_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["ck.pt", "model.pt"]
    assert run.stdout.count("wrote") == 1, run.stdout
    assert run.stderr.count("500 events") == 1, run.stderr
    single = tmp_path / "single.pt"
    assert train_cli.main([*args, "--out", str(single)]) == 0
    got, want = load_model(out), load_model(single)
    assert got.train_config == want.train_config
    for (k, a), b in zip(
        got.model.state_dict().items(), want.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=k)


# ------------------------------------------------------------------ no processes needed
def test_shards_tile_the_batch_in_rank_order():
    for n, size in [(37, 2), (8, 3), (2, 4), (0, 2)]:
        worlds = [World(rank=r, size=size) for r in range(size)]
        counts = worlds[0].counts(n)
        assert sum(counts) == n and max(counts) - min(counts) <= 1
        covered = np.concatenate([np.arange(n)[w.shard(n)] for w in worlds])
        np.testing.assert_array_equal(covered, np.arange(n))
    x = torch.arange(6.0)
    assert SINGLE_PROCESS.gather_rows(x, 6) is x
    assert SINGLE_PROCESS.shard(6) == slice(0, 6) and not SINGLE_PROCESS.distributed


def test_launch_environment_is_read_strictly():
    assert launch_from_env({}) is None
    assert launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert launch_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == (3, 4, 1)
    assert launch_from_env({"WORLD_SIZE": "2", "RANK": "1"}) == (1, 2, 1)
    with pytest.raises(ValueError, match="WORLD_SIZE must be a non-negative integer; got 'two'"):
        launch_from_env({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="RANK is not set"):
        launch_from_env({"WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match=r"RANK \(2\) must be below WORLD_SIZE \(2\)"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(ValueError, match="LOCAL_RANK must be a non-negative integer"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"})


def test_each_process_takes_the_gpu_of_its_local_rank():
    two = World(rank=3, size=4, local_rank=1)
    assert process_device("cuda", two) == torch.device("cuda", 1)
    assert process_device("cpu", two) == torch.device("cpu")
    assert process_device("cuda:1", SINGLE_PROCESS) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"'cuda:0' names one GPU for all 4 processes"):
        process_device("cuda:0", two)


def test_gpu_flag_without_index_gives_each_process_its_gpu():
    from contrastx.cli import train as train_cli

    parser = train_cli.build_parser()
    assert train_cli._config(parser.parse_args(["--gpu"])).device == "cuda"
    assert train_cli._config(parser.parse_args(["--gpu", "1"])).device == "cuda:1"
    assert train_cli._config(parser.parse_args([])).device == "cpu"
    with pytest.raises(SystemExit):
        parser.parse_args(["--gpu", "-1"])


def test_epoch_seeds_differ_per_epoch_and_rank():
    seeds = {epoch_seed(0, e, r) for e in range(3) for r in range(2)}
    assert len(seeds) == 6 and epoch_seed(0, 1, 1) == epoch_seed(0, 1, 1)


def test_batch_norm_is_synchronised_only_while_training_over_processes():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    keys = list(model.state_dict())
    with synchronised_batch_norm(model, World(rank=0, size=2)):
        assert "forward" in vars(model[1])  # batch_norm_over_ranks in training mode
        assert list(model.state_dict()) == keys
        model.eval()  # eval mode: the running statistics, no communication
        x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(model(x), nn.Sequential(*model).eval()(x))
    assert "forward" not in vars(model[1])
    with synchronised_batch_norm(model, SINGLE_PROCESS):  # one process: nothing to do
        assert "forward" not in vars(model[1])


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
