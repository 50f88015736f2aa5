r"""Training one embedding over several processes (``torchrun``, one node or many).

A run launched by ``torchrun`` (the environment holds ``WORLD_SIZE`` > 1, ``RANK`` and
``LOCAL_RANK``, and the rendezvous address for ``env://``) trains with data
parallelism; without it (``WORLD_SIZE`` unset or 1) nothing here is used and training
is the single-process run. The rules, which make a run of W processes the
single-process run of the same seed up to floating-point rounding:

* **Batches are global.** Every process holds all events and draws the same global
  batches as one process would (``batch_size`` is the global batch); process ``r``
  takes the contiguous slice :meth:`World.shard` of every batch (sizes differ by at most
  one). Concatenated in rank order, the slices are the single-process batch.
* **Augmentations are global.** Every process augments the whole global batch with the
  same seeded generator, then keeps its slice, so every event gets the random numbers
  it gets in one process (augmenting is cheap next to the model).
* **Losses are global.** The model outputs of every process are gathered
  (:meth:`World.gather_rows`) and every process computes the loss of the whole batch;
  labels need no gathering (every process has the batch's labels).
* **Gradients are summed.** The gather's backward hands each process the gradient of
  the global loss with respect to its own rows only (every process computes the same
  loss, so that slice is already the full derivative; no communication in the
  backward); the parameter gradients, each the contribution of one process's events,
  are then summed over the processes (:meth:`World.all_reduce_gradients`, one
  all-reduce per step). The sum is the single-process gradient of the global batch.
  (``torch.distributed.nn.functional.all_gather`` instead sums every process's
  gradient of each slice in its backward, W identical copies, which
  ``DistributedDataParallel``'s averaging divides out again; the convention here
  needs neither, and works with gloo, which has no reduce-scatter.)
* **Batch norm is global.** Every batch norm of the model (the MLP encoder's and the
  projection head's, the particle transformer's over its pairs) takes its statistics
  over the rows of every process (:func:`synchronised_batch_norm`, on CPU and GPU
  alike; ``torch.nn.SyncBatchNorm`` supports GPUs only).

What differs from one process: random numbers drawn inside the model from torch's
global generator (dropout, the Gaussian output block's reparameterisation noise) are
drawn per process from a stream seeded by (seed, epoch, rank), so they are not the
single-process draws (the same distribution; a resumed run draws them again
identically).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

__all__ = [
    "SINGLE_PROCESS",
    "World",
    "batch_norm_over_ranks",
    "epoch_seed",
    "init_world",
    "launch_from_env",
    "process_device",
    "shutdown",
    "synchronised_batch_norm",
]

_created_group = False
"""Whether :func:`init_world` created the default process group (for :func:`shutdown`)."""


def _env_int(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(
            f"environment variable {name} must be a non-negative integer; got {value!r}"
        )
    return number


def launch_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` of a ``torchrun`` launch, or None without one.

    Parameters
    ----------
    env : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    tuple of int or None
        None when ``WORLD_SIZE`` is unset or 1 (a single process).

    Raises
    ------
    ValueError
        ``WORLD_SIZE``, ``RANK`` or ``LOCAL_RANK`` is not a non-negative integer, or
        ``RANK`` is missing or not below ``WORLD_SIZE``.
    """
    env = os.environ if env is None else env
    size = _env_int(env, "WORLD_SIZE", 1)
    if size == 0:
        raise ValueError("environment variable WORLD_SIZE must be at least 1; got '0'")
    if size == 1:
        return None
    rank = _env_int(env, "RANK")
    if rank is None:
        raise ValueError(f"WORLD_SIZE is {size} but RANK is not set (launch with torchrun)")
    if rank >= size:
        raise ValueError(f"environment variable RANK ({rank}) must be below WORLD_SIZE ({size})")
    local_rank = _env_int(env, "LOCAL_RANK")
    if local_rank is None:
        local_rank = rank
    return rank, size, local_rank


class _AllReduceSum(torch.autograd.Function):
    """All-reduce (sum) whose backward is the all-reduce (sum) of the incoming gradient.

    The sum feeds the rows of every process; each process's backward carries the part of
    the gradient that reached it through its own rows, and the gradient with respect to
    the sum is the total of those parts.
    """

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad):
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=ctx.group)
        return total, None


class _GatherRows(torch.autograd.Function):
    """All-gather of row blocks of unequal sizes; the backward keeps this process's rows."""

    @staticmethod
    def forward(ctx, local, counts, rank, group):
        width = max(counts)
        if local.shape[0] < width:
            pad = local.new_zeros((width - local.shape[0], *local.shape[1:]))
            local = torch.cat([local, pad])
        parts = [torch.empty_like(local) for _ in counts]
        dist.all_gather(parts, local.contiguous(), group=group)
        ctx.lo = sum(counts[:rank])
        ctx.hi = ctx.lo + counts[rank]
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.lo : ctx.hi], None, None, None


@dataclass(frozen=True)
class World:
    """The processes training together and this one's place among them.

    Parameters
    ----------
    rank : int
        This process (0 is the main process: it logs, writes checkpoints and the model).
    size : int
        Number of processes.
    local_rank : int
        This process on its node (its GPU is ``cuda:local_rank``).
    group : ProcessGroup or None
        The process group (None: the default one).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    group: Any = None

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def counts(self, n: int) -> list[int]:
        """Rows of an ``n``-row batch per process: ``n // size``, one more for the first ranks."""
        base, extra = divmod(int(n), self.size)
        return [base + (r < extra) for r in range(self.size)]

    def shard(self, n: int) -> slice:
        """This process's rows of an ``n``-row batch (contiguous; in rank order they tile it)."""
        counts = self.counts(n)
        lo = sum(counts[: self.rank])
        return slice(lo, lo + counts[self.rank])

    def gather_rows(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The rows of every process, in rank order: the ``n``-row tensor of the whole batch.

        Differentiable: the gradient that reaches ``local`` is the slice of the incoming
        gradient for this process's rows. Every process must therefore compute the same
        function of the gathered tensor (a loss of the whole batch), whose gradient with
        respect to its own rows is then complete; the parameter gradients are summed over
        the processes by :meth:`all_reduce_gradients`.

        Parameters
        ----------
        local : Tensor, shape (counts(n)[rank], ...)
            This process's rows (:meth:`shard` of the batch).
        n : int
            Rows of the whole batch.
        """
        if not self.distributed:
            return local
        counts = self.counts(n)
        if local.shape[0] != counts[self.rank]:
            raise ValueError(
                f"rank {self.rank} holds {counts[self.rank]} of the {n} rows; got {local.shape[0]}"
            )
        return _GatherRows.apply(local, counts, self.rank, self.group)

    def all_reduce_gradients(self, parameters: Iterable[torch.Tensor]) -> None:
        """Sum the gradients of ``parameters`` over the processes (one all-reduce per dtype).

        A parameter without a gradient on every process keeps none; one with a gradient
        on some process gets the sum (no gradient counts as zero).
        """
        if not self.distributed:
            return
        by_type: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for p in parameters:
            if p.requires_grad:
                by_type.setdefault((p.dtype, p.device), []).append(p)
        for (dtype, device), params in by_type.items():
            flags = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=device)
            grads = [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
            ]
            flat = torch.cat([*grads, flags])
            dist.all_reduce(flat, group=self.group)
            offset = 0
            for p, has_grad in zip(params, flat[-len(params) :].tolist(), strict=True):
                part = flat[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
                if has_grad:
                    p.grad = part.clone()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (pickled; the others pass anything)."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            dist.barrier(group=self.group)


SINGLE_PROCESS = World()
"""The world of a run without ``torchrun``."""


def init_world(device: str | torch.device = "cpu") -> World:
    """This process's :class:`World`, creating the default process group for ``torchrun``.

    Launched by ``torchrun`` (:func:`launch_from_env`), the default process group is
    created with the ``env://`` rendezvous (one node, or many with ``torchrun``'s
    ``--rdzv-endpoint``): the ``nccl`` backend for a CUDA ``device`` (after selecting
    ``cuda:LOCAL_RANK``), ``gloo`` otherwise. A default group that exists already (made
    by the caller, or by an earlier call) is used as it is. Without a launch and without
    a group the world is :data:`SINGLE_PROCESS` and no group is made.

    Parameters
    ----------
    device : str or torch.device
        The training device (``TrainConfig.device``); it picks the backend.

    Raises
    ------
    ValueError
        A malformed launch environment, or a process group of a different size than
        ``WORLD_SIZE``.
    RuntimeError
        The backend is not available in this torch.
    """
    global _created_group
    launch = launch_from_env()
    if dist.is_available() and dist.is_initialized():
        size, rank = dist.get_world_size(), dist.get_rank()
        if launch is not None and launch[1] != size:
            raise ValueError(
                f"the default process group has {size} processes but WORLD_SIZE is {launch[1]}"
            )
        if size == 1:
            return SINGLE_PROCESS
        local_rank = launch[2] if launch is not None else _env_int(os.environ, "LOCAL_RANK", 0)
        return World(rank=rank, size=size, local_rank=local_rank)
    if launch is None:
        return SINGLE_PROCESS
    rank, size, local_rank = launch
    cuda = torch.device(device).type == "cuda"
    backend = "nccl" if cuda else "gloo"
    available = dist.is_available() and (
        dist.is_nccl_available() if cuda else dist.is_gloo_available()
    )
    if not available:
        raise RuntimeError(
            f"training over {size} processes on {torch.device(device).type} needs the "
            f"{backend} backend of torch.distributed, which this torch lacks"
        )
    if cuda:
        torch.cuda.set_device(process_device(device, World(rank, size, local_rank)))
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=size)
    _created_group = True
    return World(rank=rank, size=size, local_rank=local_rank)


def shutdown() -> None:
    """Destroy the default process group if :func:`init_world` created it."""
    global _created_group
    if _created_group and dist.is_initialized():
        dist.destroy_process_group()
    _created_group = False


def process_device(device: str | torch.device, world: World) -> torch.device:
    """This process's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` over several processes.

    Raises
    ------
    ValueError
        Several processes and a device that names one GPU (``cuda:N``) for all of them.
    """
    dev = torch.device(device)
    if not world.distributed or dev.type != "cuda":
        return dev
    if dev.index is not None:
        raise ValueError(
            f"train.device {str(dev)!r} names one GPU for all {world.size} processes; use "
            "'cuda' (contrastx-train: --gpu without an index): each process takes the GPU "
            "of its LOCAL_RANK"
        )
    return torch.device("cuda", world.local_rank)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of a process's global torch generator for one epoch of a multi-process run."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0])


def batch_norm_over_ranks(
    x: torch.Tensor, norm: nn.modules.batchnorm._BatchNorm, world: World
) -> torch.Tensor:
    """Training-mode batch norm of the rows ``x`` (P, C) with the statistics of every process.

    The mean and the (biased) variance are those of the rows of all processes together,
    from one differentiable all-reduce of the row count and the sums of the rows and of
    their squares (in float64: the variance as the mean square less the squared mean
    then has a relative error of about 1e-16 mean^2 / variance), so the result is what
    :func:`torch.nn.functional.batch_norm` gives on the concatenated rows; the running
    statistics of ``norm`` are updated the same way (unbiased variance), identically on
    every process. A process may hold no rows. When all processes together hold at most
    one row there are no batch statistics and the running ones are used, unchanged.
    """
    c = x.shape[1]
    rows = x.double()
    count = rows.new_full((1,), x.shape[0])
    local = torch.cat([rows.sum(dim=0), rows.square().sum(dim=0), count])
    sums = _AllReduceSum.apply(local, world.group)
    n = int(sums[-1].item())
    if n <= 1:
        return F.batch_norm(
            x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
            training=False, momentum=0.0, eps=norm.eps,
        )  # fmt: skip
    mean = sums[:c] / n
    var = (sums[c : 2 * c] / n - mean.square()).clamp_min(0.0)
    mean, var = mean.to(x.dtype), var.to(x.dtype)
    centred = x - mean
    y = centred * torch.rsqrt(var + norm.eps)
    if norm.affine:
        y = y * norm.weight + norm.bias
    if norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            m = norm.momentum
            if m is None:
                m = 1.0 / float(norm.num_batches_tracked)
            norm.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            norm.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
    return y


def _batch_norm_forward(
    norm: nn.modules.batchnorm._BatchNorm, world: World, x: torch.Tensor
) -> torch.Tensor:
    """A batch-norm module's forward with :func:`batch_norm_over_ranks` in training mode."""
    if not norm.training:
        return type(norm).forward(norm, x)
    if x.dim() == 2:
        return batch_norm_over_ranks(x, norm, world)
    rows = x.movedim(1, -1)  # (N, C, *) -> (N, *, C): one row per position
    y = batch_norm_over_ranks(rows.reshape(-1, x.shape[1]), norm, world)
    return y.reshape(rows.shape).movedim(-1, 1)


@contextlib.contextmanager
def synchronised_batch_norm(model: nn.Module, world: World) -> Iterator[None]:
    """While training over several processes, batch norm takes the statistics of all of them.

    For the duration, every batch-norm module of ``model`` (``torch.nn.BatchNorm1d`` and
    its kin, in the MLP encoder and the projection head) normalises in training mode with
    :func:`batch_norm_over_ranks` (its ``forward`` is replaced on the instance; the
    parameters, buffers and state-dict keys stay as they are), and modules with a
    ``distributed_batch_norm`` attribute (the particle transformer's pair embedding,
    which normalises only its valid pairs) get that function bound to ``world``. A
    single process changes nothing.
    """
    if not world.distributed:
        yield
        return
    owners = [m for m in model.modules() if hasattr(m, "distributed_batch_norm")]
    owned = {id(n) for m in owners for n in m.modules() if n is not m}
    norms = [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in owned
    ]

    def norm_over_ranks(x: torch.Tensor, norm: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
        return batch_norm_over_ranks(x, norm, world)

    for m in owners:
        m.distributed_batch_norm = norm_over_ranks
    for m in norms:
        m.forward = functools.partial(_batch_norm_forward, m, world)
    try:
        yield
    finally:
        for m in owners:
            m.distributed_batch_norm = None
        for m in norms:
            del m.forward
