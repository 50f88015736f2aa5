"""The encoder training configurations of the second paper: ID, IP, EP, background-only.

Li, Nachman, Noll train the contrastive encoder on the SM backgrounds and BSM signal
*groups* (every mass point of a model shares the group's label) and test how the
latent space serves a signal depending on what the encoder saw:

* **ID** (in dataset): every process group is in the training;
* **IP** (interpolation): one mass point of the tested signal's group is held out;
* **EP** (extrapolation): every mass point of the tested signal's group is held out;
* **background-only**: only the SM backgrounds.

:func:`training_configuration` turns a kind and a tested signal into a
:class:`TrainingConfiguration`: the processes the encoder trains on and those held out,
recorded in the model file so that the held-out events provably never reached it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CONFIGURATION_KINDS",
    "TrainingConfiguration",
    "training_configuration",
    "training_configurations",
]

CONFIGURATION_KINDS = ("ID", "IP", "EP", "background-only")
"""The four training configurations, in the paper's order."""


@dataclass(frozen=True)
class TrainingConfiguration:
    """Which processes an encoder trains on.

    Attributes
    ----------
    kind : str
        One of :data:`CONFIGURATION_KINDS`.
    held_out : tuple of str
        Processes (mass points) that never reach the encoder: the IP mass point, the EP
        group's mass points, or every signal for background-only; empty for ID.
    trained : tuple of str
        Processes of the encoder training, in the file's order.
    held_out_groups : tuple of str
        The process groups of :attr:`held_out`.
    signal : str or None
        The tested signal an IP or EP configuration was made for (None for ID and
        background-only, which serve every signal).
    """

    kind: str
    held_out: tuple[str, ...]
    trained: tuple[str, ...]
    held_out_groups: tuple[str, ...] = ()
    signal: str | None = None

    @property
    def name(self) -> str:
        """``ID``, ``background-only``, ``IP-<signal>`` or ``EP-<group of signal>``."""
        if self.signal is None:
            return self.kind
        if self.kind == "IP":
            return f"IP-{self.signal}"
        return "EP-" + "+".join(self.held_out_groups)

    def record(self) -> dict[str, Any]:
        """JSON-friendly description (stored in the model file and the stage settings)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "signal": self.signal,
            "held_out": list(self.held_out),
            "held_out_groups": list(self.held_out_groups),
            "trained": list(self.trained),
        }


def _make(
    kind: str,
    held: Sequence[str],
    processes: Sequence[str],
    groups: Mapping[str, str],
    signal: str | None,
) -> TrainingConfiguration:
    held_out = tuple(p for p in processes if p in set(held))
    return TrainingConfiguration(
        kind=kind,
        held_out=held_out,
        trained=tuple(p for p in processes if p not in set(held)),
        held_out_groups=tuple(dict.fromkeys(groups[p] for p in held_out)),
        signal=signal,
    )


def training_configuration(
    kind: str,
    processes: Sequence[str],
    groups: Mapping[str, str],
    backgrounds: Sequence[str],
    signal: str | None = None,
) -> TrainingConfiguration:
    """The processes an encoder of configuration ``kind`` trains on.

    Parameters
    ----------
    kind : str
        ``ID``, ``IP``, ``EP`` or ``background-only``.
    processes : sequence of str
        Every process of the event file (file order).
    groups : mapping
        Process -> process group (every mass point of a model shares its group).
    backgrounds : sequence of str
        The SM background processes (always trained on).
    signal : str, optional
        The tested signal (a mass point); required for IP and EP.

    Raises
    ------
    ValueError
        Unknown kind or signal, a background named as signal, IP for a group with a
        single mass point (nothing of the group would be left to interpolate from), or
        a configuration that leaves fewer than two training groups.
    """
    if kind not in CONFIGURATION_KINDS:
        raise ValueError(f"unknown configuration {kind!r}; choose from {CONFIGURATION_KINDS}")
    procs = list(processes)
    missing = [p for p in (*backgrounds, *([signal] if signal else [])) if p not in procs]
    if missing:
        raise ValueError(f"process {missing[0]!r} is not in the event file (it has {procs})")
    unknown = [p for p in procs if p not in groups]
    if unknown:
        raise ValueError(f"process {unknown[0]!r} has no process group")
    if signal is not None and signal in backgrounds:
        raise ValueError(f"{signal!r} is a background process, not a signal")
    signals = [p for p in procs if p not in backgrounds]
    if kind in ("IP", "EP"):
        if signal is None:
            raise ValueError(f"configuration {kind} holds out a tested signal: give the signal")
        group = groups[signal]
        members = [p for p in signals if groups[p] == group]
        if kind == "IP":
            if len(members) < 2:
                raise ValueError(
                    f"IP holds out one mass point of a group, but {signal!r} is the only "
                    f"process of group {group!r} in the file: use EP for it"
                )
            held = [signal]
        else:
            held = members
    elif kind == "background-only":
        held, signal = signals, None
    else:
        held, signal = [], None
    cfg = _make(kind, held, procs, groups, signal)
    n_groups = len({groups[p] for p in cfg.trained})
    if n_groups < 2:
        raise ValueError(
            f"configuration {cfg.name} leaves {n_groups} process group for the contrastive "
            "training; it needs at least two"
        )
    return cfg


def training_configurations(
    kinds: Sequence[str],
    signals: Sequence[str],
    processes: Sequence[str],
    groups: Mapping[str, str],
    backgrounds: Sequence[str],
) -> dict[str, dict[str, TrainingConfiguration]]:
    """The configuration of every (tested signal, kind), sharing ID and background-only.

    Returns
    -------
    dict
        ``{signal: {kind: TrainingConfiguration}}``. ID and background-only are the same
        object for every signal (one encoder set serves all); IP is left out, with a
        note in the log, for a signal whose group has a single mass point.
    """
    out: dict[str, dict[str, TrainingConfiguration]] = {}
    shared: dict[str, TrainingConfiguration] = {}
    for s in signals:
        out[s] = {}
        for k in kinds:
            if k in ("ID", "background-only"):
                if k not in shared:
                    shared[k] = training_configuration(k, processes, groups, backgrounds)
                out[s][k] = shared[k]
                continue
            members = [p for p in processes if p not in backgrounds and groups[p] == groups[s]]
            if k == "IP" and len(members) < 2:
                continue
            out[s][k] = training_configuration(k, processes, groups, backgrounds, s)
    return out
