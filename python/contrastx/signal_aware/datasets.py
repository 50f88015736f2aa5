r"""How the signal-aware study divides simulated events, and its pseudo-data.

As in Li, Nachman, Noll (Sec. II and III.1):

* every process of the event file is split at random into an **encoder half** and a
  **pseudo-data half** (:func:`split_rows`); the encoder half of every process is split
  again 60/20/20 into training, validation and test events (the encoder trains and
  validates on the first 80 %, 3:1, in :class:`~contrastx.embed.Trainer`; the test
  20 % is never trained on and serves as simulation: the SM Higgs part of the hybrid
  template and Appendix A's classifiers);
* a **pseudo-data instance** (:func:`draw_instance`) draws, from the pseudo-data half,
  every background process with its expected yield ``sigma x L`` after the selection
  (rounded; Pythia's events are unweighted, so the draw is uniform within a process),
  and injects a signal at strength :math:`r = S / \sqrt{B}`, with S and B the signal and
  background events of the instance in the signal region; the injected events of a
  larger r contain those of a smaller one (nested draws), and the signal's events
  outside the SR come along in the signal's own proportion;
* the pseudo-data-half events an instance does not use are its **evaluation events**
  (never in the encoder training, never in the data the classifier saw): background
  weighted to its expected yield per process, and the signal events never injected at
  any strength. SIC curves are measured on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PseudoDataInstance",
    "StudySplit",
    "draw_instance",
    "split_rows",
]

_SPLIT_TAG = 0x5A11
_INSTANCE_TAG = 0x1257


@dataclass(frozen=True)
class StudySplit:
    """File rows by role (each sorted).

    Attributes
    ----------
    encoder_train : ndarray of int64
        Encoder training and validation events (80 % of the used encoder half).
    encoder_test : ndarray of int64
        Encoder-half test events (20 %): simulation, never trained on.
    pseudo : ndarray of int64
        The pseudo-data half.
    unused : ndarray of int64
        Encoder-half events beyond ``max_encoder_events`` (used nowhere).
    """

    encoder_train: np.ndarray
    encoder_test: np.ndarray
    pseudo: np.ndarray
    unused: np.ndarray

    def save(self, path: str | Path) -> None:
        """Write the four row arrays to an ``.npz`` file."""
        np.savez(
            path,
            encoder_train=self.encoder_train,
            encoder_test=self.encoder_test,
            pseudo=self.pseudo,
            unused=self.unused,
        )

    @classmethod
    def load(cls, path: str | Path) -> StudySplit:
        """Read a file written by :meth:`save`."""
        with np.load(path) as f:
            return cls(f["encoder_train"], f["encoder_test"], f["pseudo"], f["unused"])


def split_rows(
    labels: np.ndarray,
    process_names: Sequence[str],
    *,
    seed: int,
    encoder_fraction: float = 0.5,
    test_fraction: float = 0.2,
    max_encoder_events: int | None = None,
) -> StudySplit:
    """Split every process's file rows into encoder half (train+validation / test) and
    pseudo-data half.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Process label of every file row (an index into ``process_names``).
    process_names : sequence of str
    seed : int
        Every process draws its own permutation from ``(seed, process index)``.
    encoder_fraction : float
        Share of every process in the encoder half (the paper: one half).
    test_fraction : float
        Share of the used encoder half kept as test events (the paper: 20 %).
    max_encoder_events : int, optional
        At most this many encoder-half events of a process are used (the paper: 100,000
        per process); the rest of the encoder half is left unused (never pseudo-data).

    Raises
    ------
    ValueError
        Labels outside the process list, or a process too small to give every role an
        event.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array; got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= len(process_names)):
        raise ValueError(
            f"labels must index the {len(process_names)} process names; found "
            f"{int(y.min())}..{int(y.max())}"
        )
    if not 0.0 < encoder_fraction < 1.0:
        raise ValueError(f"encoder_fraction must be in (0, 1); got {encoder_fraction}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": [], "pseudo": [], "unused": []}
    for k, name in enumerate(process_names):
        rows = np.flatnonzero(y == k)
        if rows.size == 0:
            continue
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_TAG, k]))
        rows = rows[rng.permutation(rows.size)]
        n_enc = round(encoder_fraction * rows.size)
        n_use = n_enc if max_encoder_events is None else min(n_enc, int(max_encoder_events))
        n_test = round(test_fraction * n_use)
        if min(n_test, n_use - n_test, rows.size - n_enc) < 1:
            raise ValueError(
                f"process {name!r} has {rows.size} events: too few to split into encoder "
                "training, encoder test and pseudo-data events"
            )
        parts["test"].append(rows[:n_test])
        parts["train"].append(rows[n_test:n_use])
        parts["unused"].append(rows[n_use:n_enc])
        parts["pseudo"].append(rows[n_enc:])

    def cat(key: str) -> np.ndarray:
        return np.sort(np.concatenate(parts[key])) if parts[key] else np.zeros(0, np.int64)

    return StudySplit(cat("train"), cat("test"), cat("pseudo"), cat("unused"))


@dataclass
class PseudoDataInstance:
    """One pseudo-data set and its evaluation events (file rows).

    Attributes
    ----------
    background : ndarray of int64
        Background events of the data (every background process at its expected yield).
    n_background_sr : int
        Background events of the data in the signal region (the B of S / sqrt(B)).
    eval_background, eval_background_weights : ndarray
        Pseudo-data-half background events not in the data, weighted so that each
        process sums to its expected yield.
    signal_rows : dict
        Per signal, its pseudo-half rows in injection order: signal-region rows first,
        then the rest (see :meth:`injected`).
    signal_sr_counts : dict
        Per signal, ``(n_sr, n_outside)`` events available in and outside the SR.
    injected_counts : dict
        Per signal, the (SR, outside) counts injected at each strength of ``injections``.
    injections : tuple of float
        The strengths r = S / sqrt(B) (SR counts) of this instance.
    """

    background: np.ndarray
    n_background_sr: int
    eval_background: np.ndarray
    eval_background_weights: np.ndarray
    injections: tuple[float, ...]
    signal_rows: dict[str, np.ndarray] = field(default_factory=dict)
    signal_sr_counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    injected_counts: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def injected(self, signal: str, injection: float) -> np.ndarray:
        """Rows of ``signal`` injected at strength ``injection`` (one of :attr:`injections`)."""
        n_sr, n_out = self._counts(signal, injection)
        rows = self.signal_rows[signal]
        n_sr_all = self.signal_sr_counts[signal][0]
        return np.sort(np.concatenate([rows[:n_sr], rows[n_sr_all : n_sr_all + n_out]]))

    def eval_signal(self, signal: str) -> np.ndarray:
        """SR rows of ``signal`` never injected at any strength (its evaluation events)."""
        n_max = max(c[0] for c in self.injected_counts[signal])
        n_sr_all = self.signal_sr_counts[signal][0]
        return np.sort(self.signal_rows[signal][n_max:n_sr_all])

    def _counts(self, signal: str, injection: float) -> tuple[int, int]:
        if signal not in self.injected_counts:
            raise KeyError(f"signal {signal!r} is not in this pseudo-data instance")
        for r, c in zip(self.injections, self.injected_counts[signal]):
            if math.isclose(r, injection, rel_tol=1e-12, abs_tol=1e-12):
                return c
        raise KeyError(f"injection {injection} is not one of {list(self.injections)}")

    def summary(self) -> dict[str, Any]:
        """Counts for the stage record (JSON)."""
        return {
            "n_background": int(self.background.size),
            "n_background_sr": int(self.n_background_sr),
            "n_eval_background": int(self.eval_background.size),
            "injected": {
                s: [
                    {"injection": r, "n_sr": c[0], "n_outside_sr": c[1]}
                    for r, c in zip(self.injections, counts)
                ]
                for s, counts in self.injected_counts.items()
            },
            "n_eval_signal": {s: int(self.eval_signal(s).size) for s in self.injected_counts},
        }

    def save(self, path: str | Path) -> None:
        """Write the instance to an ``.npz`` file."""
        arrays: dict[str, Any] = {
            "background": self.background,
            "n_background_sr": np.int64(self.n_background_sr),
            "eval_background": self.eval_background,
            "eval_background_weights": self.eval_background_weights,
            "injections": np.asarray(self.injections, dtype=np.float64),
            "signals": np.asarray(list(self.signal_rows), dtype=str),
        }
        for s in self.signal_rows:
            arrays[f"rows/{s}"] = self.signal_rows[s]
            arrays[f"sr_counts/{s}"] = np.asarray(self.signal_sr_counts[s], dtype=np.int64)
            arrays[f"injected/{s}"] = np.asarray(self.injected_counts[s], dtype=np.int64)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> PseudoDataInstance:
        """Read a file written by :meth:`save`."""
        with np.load(path) as f:
            signals = [str(s) for s in f["signals"]]
            return cls(
                background=f["background"],
                n_background_sr=int(f["n_background_sr"]),
                eval_background=f["eval_background"],
                eval_background_weights=f["eval_background_weights"],
                injections=tuple(float(r) for r in f["injections"]),
                signal_rows={s: f[f"rows/{s}"] for s in signals},
                signal_sr_counts={s: tuple(int(v) for v in f[f"sr_counts/{s}"]) for s in signals},
                injected_counts={
                    s: [tuple(int(v) for v in c) for c in f[f"injected/{s}"]] for s in signals
                },
            )


def draw_instance(
    labels: np.ndarray,
    process_names: Sequence[str],
    in_signal_region: np.ndarray,
    pseudo_rows: np.ndarray,
    expected_yields: Mapping[str, float],
    signals: Sequence[str],
    injections: Sequence[float],
    *,
    seed: int,
    instance: int,
    min_eval_signal: int = 100,
) -> PseudoDataInstance:
    """Draw pseudo-data instance ``instance`` from the pseudo-data half.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Process label of every file row.
    process_names : sequence of str
    in_signal_region : ndarray of bool, shape (N,)
        Whether each file row lies in the signal region.
    pseudo_rows : ndarray of int
        The pseudo-data half (:attr:`StudySplit.pseudo`).
    expected_yields : mapping
        Background process -> expected events after the selection at the study's
        luminosity (``sigma x L``); every background process of the data.
    signals : sequence of str
        The signals to prepare injections of.
    injections : sequence of float
        Strengths r = S / sqrt(B) in the SR, each >= 0.
    seed, instance : int
        The instance draws from ``(seed, instance)``.
    min_eval_signal : int
        Fewest SR signal events that must stay out of every injection (evaluation).

    Raises
    ------
    ValueError
        A background process with a larger expected yield than its pseudo-data-half
        events (lower the luminosity or generate more), or a signal with too few events
        for the largest injection and the evaluation events; the message names it.
    """
    y = np.asarray(labels)
    sr = np.asarray(in_signal_region, dtype=bool)
    pseudo = np.asarray(pseudo_rows)
    if sr.shape != y.shape:
        raise ValueError(f"in_signal_region has shape {sr.shape}; labels have {y.shape}")
    r_list = tuple(float(r) for r in injections)
    if any(not (math.isfinite(r) and r >= 0) for r in r_list):
        raise ValueError(f"injections must be finite and >= 0; got {list(r_list)}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _INSTANCE_TAG, int(instance)]))
    names = list(process_names)
    by_label = {k: pseudo[y[pseudo] == k] for k in range(len(names))}

    data, eval_rows, eval_w = [], [], []
    for p, mu in expected_yields.items():
        if p not in names:
            raise ValueError(f"background process {p!r} is not in the event file")
        rows = by_label[names.index(p)]
        n = round(float(mu))
        if n > rows.size - 1:
            raise ValueError(
                f"background {p!r}: the pseudo-data needs {n} events (expected yield "
                f"{float(mu):.1f}) but the pseudo-data half has {rows.size}, and some must "
                "stay for evaluation; lower the luminosity or generate more events of it"
            )
        pick = rng.permutation(rows.size)
        data.append(rows[pick[:n]])
        rest = rows[pick[n:]]
        eval_rows.append(rest)
        eval_w.append(np.full(rest.size, float(mu) / rest.size))
    background = np.sort(np.concatenate(data)) if data else np.zeros(0, np.int64)
    order = np.argsort(np.concatenate(eval_rows)) if eval_rows else np.zeros(0, np.int64)
    n_b_sr = int(sr[background].sum())
    inst = PseudoDataInstance(
        background=background,
        n_background_sr=n_b_sr,
        eval_background=np.concatenate(eval_rows)[order] if eval_rows else order,
        eval_background_weights=np.concatenate(eval_w)[order] if eval_w else order * 0.0,
        injections=r_list,
    )
    for s in signals:
        if s not in names:
            raise ValueError(f"signal {s!r} is not in the event file")
        rows = by_label[names.index(s)]
        rows_sr, rows_out = rows[sr[rows]], rows[~sr[rows]]
        rows_sr = rows_sr[rng.permutation(rows_sr.size)]
        rows_out = rows_out[rng.permutation(rows_out.size)]
        counts = []
        for r in r_list:
            n_sr = round(r * math.sqrt(n_b_sr))
            n_out = round(n_sr * rows_out.size / max(rows_sr.size, 1))
            counts.append((n_sr, min(n_out, rows_out.size)))
        n_max = max((c[0] for c in counts), default=0)
        if n_max + min_eval_signal > rows_sr.size:
            raise ValueError(
                f"signal {s!r}: the largest injection needs {n_max} signal-region events and "
                f"{min_eval_signal} more stay for evaluation, but its pseudo-data half has "
                f"{rows_sr.size} in the signal region; lower the injections or generate more"
            )
        inst.signal_rows[s] = np.concatenate([rows_sr, rows_out])
        inst.signal_sr_counts[s] = (int(rows_sr.size), int(rows_out.size))
        inst.injected_counts[s] = counts
    return inst
