"""Class-balanced mini-batches: every batch holds the same number of events per class."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class ClassBalancedBatchSampler:
    """Yield index batches with ``batch_size // n_classes`` events of every class.

    Within each class the indices are drawn without replacement from a fresh
    permutation that is renewed when exhausted, so rare classes are repeated and
    common ones are sub-sampled (the second paper's "uniform representation of each
    process group per batch"). Usable as a ``torch.utils.data.DataLoader``
    ``batch_sampler``.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Class of every event.
    batch_size : int
        Events per batch; a multiple of the number of classes unless
        ``allow_remainder``.
    n_batches : int, optional
        Batches per epoch; default ``N // batch_size``.
    seed : int
        Batches are a pure function of ``(seed, epoch)``; call :meth:`set_epoch`.
    allow_remainder : bool
        Accept a ``batch_size`` that the number of classes does not divide (the
        second paper's 8192 events over 13 classes): every batch holds
        ``batch_size // n_classes`` events of each class plus one more of
        ``batch_size % n_classes`` classes drawn at random per batch, so over an
        epoch the classes stay equally represented on average. ``batch_size`` must
        then be at least the number of classes.
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int,
        *,
        n_batches: int | None = None,
        seed: int = 0,
        allow_remainder: bool = False,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0:
            raise ValueError(f"labels must be a non-empty 1-D array; got shape {labels.shape}")
        self.classes = np.unique(labels)
        k = self.classes.size
        if allow_remainder:
            if batch_size < k:
                raise ValueError(
                    f"batch_size ({batch_size}) must be at least the number of classes ({k})"
                )
        elif batch_size <= 0 or batch_size % k:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of "
                f"the number of classes ({k}), or pass allow_remainder=True"
            )
        self.batch_size = batch_size
        self.per_class = batch_size // k
        self.remainder = batch_size % k
        self.by_class = [np.flatnonzero(labels == c) for c in self.classes]
        self.n_batches = max(labels.size // batch_size, 1) if n_batches is None else int(n_batches)
        if self.n_batches <= 0:
            raise ValueError(f"n_batches must be positive; got {n_batches}")
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        streams = []
        need = self.n_batches * (self.per_class + (1 if self.remainder else 0))
        for idx in self.by_class:
            reps = -(-need // idx.size)
            streams.append(
                np.concatenate([idx[rng.permutation(idx.size)] for _ in range(reps)])[:need]
            )
        if not self.remainder:
            for b in range(self.n_batches):
                lo, hi = b * self.per_class, (b + 1) * self.per_class
                batch = np.concatenate([s[lo:hi] for s in streams])
                yield batch[rng.permutation(batch.size)].tolist()
            return
        used = np.zeros(len(streams), dtype=np.int64)
        for _ in range(self.n_batches):
            take = np.full(len(streams), self.per_class, dtype=np.int64)
            take[rng.choice(len(streams), self.remainder, replace=False)] += 1
            batch = np.concatenate(
                [s[u : u + t] for s, u, t in zip(streams, used, take, strict=True)]
            )
            used += take
            yield batch[rng.permutation(batch.size)].tolist()
